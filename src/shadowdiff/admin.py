"""The admin listener: /metrics, /healthz, /readyz, the JSON API under /api/ and the web UI at /,
on its own (loopback) port. The API and the UI read a `sources` source: the store, or this
process's live statistics when the store is off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shadowdiff import control_api, log, ui
from shadowdiff.access import CSRF_HEADER, READS, SESSION_COOKIE, Access, Denied
from shadowdiff.controls import Controls
from shadowdiff.noise.verdict import VERDICTS
from shadowdiff.store.database import reason
from shadowdiff.sources import LiveSource, Range, RangeError, StoreSource

API = "/api/"
ROUTES = "/api/v1/routes"
FIELDS = "/api/v1/fields"
SAMPLES = "/api/v1/samples"
ENDPOINTS = (
    f"GET {ROUTES}, GET {FIELDS}?route=ROUTE, GET {SAMPLES}?route=ROUTE[&path=PATH], GET {SAMPLES}/ID, "
    f"GET and POST {control_api.CONTROLS}, POST {control_api.RELOAD} and GET {control_api.WHOAMI}"
)
ADMIN_BODY_LIMIT = 64 * 1024  # a change is a small JSON object


def _access_middleware(access: Access) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            request[control_api.CALLER] = access.check(
                request.method, request.path, request.headers.get("Authorization"),
                session=request.cookies.get(SESSION_COOKIE), csrf=CSRF_HEADER in request.headers,
            )  # fmt: skip
        except Denied as exc:
            if exc.caller is not None:
                request[control_api.CALLER] = exc.caller
            if request.method not in READS:
                control_api.audit(request, f"{request.method} {request.path}", None, None, f"refused: {exc}")
            response = _error(exc.status, str(exc))
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="shadowdiff"'
            return response
        return await handler(request)

    return check


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error under /api/ is JSON: an unknown path a 404, a wrong method a 405."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith(API) or exc.status < 400:
            raise
        if exc.status == 404:
            return _error(404, f"no such endpoint {request.path!r}; the API has {ENDPOINTS}")
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "GET, HEAD")
            response = _error(405, f"{request.method} is not allowed on {request.path}; use {allowed}")
            response.headers["Allow"] = allowed
            return response
        return _error(exc.status, exc.reason)
    except Exception as exc:  # the store is down or locked: say so, as JSON; the proxy is unaffected
        if not request.path.startswith(API):
            raise
        log.event("warning", "store_read_failed", path=request.path, error=reason(exc))
        return _error(503, f"the store cannot be read right now ({reason(exc)}); clients are still served")


def create_admin_app(
    exposition: Callable[[], Awaitable[bytes]],
    *,
    ready: Callable[[], bool],
    detail: Callable[[], str] = lambda: "",
    source: LiveSource | StoreSource | None = None,
    controls: Controls | None = None,
    access: Access | None = None,
) -> web.Application:
    """`await exposition()` gives /metrics (a `scrape.SharedRender`'s `get`: never a render on
    the loop); `ready()` says whether the proxy is accepting traffic (false while starting
    or draining); `detail()` adds a line to /readyz; `source` is what the API and the UI read
    (the store, or the live field statistics); without it the API answers 503; `controls` are
    the live settings the change endpoints reach (control_api); `access` who may do what
    (everything open without it)."""

    async def metrics_handler(request: web.Request) -> web.Response:
        response = web.Response(body=await exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        extra = detail()
        extra = extra + "\n" if extra else ""
        if ready():
            return web.Response(text="ready\n" + extra)
        return web.Response(status=503, text="not ready\n" + extra)

    def span(request: web.Request) -> Range:
        try:
            return Range.parse(request.query)
        except RangeError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None

    async def routes(request: web.Request) -> web.Response:
        if source is None:
            return _error(503, "noise detection is not running")
        return json_response(await source.routes(span(request)))

    async def route_fields(request: web.Request) -> web.Response:
        if source is None:
            return _error(503, "noise detection is not running")
        route = request.query.get("route")
        if route is None:
            return _error(400, f"say which route: GET {FIELDS}?route=/orders/{{id}} (GET {ROUTES} lists the routes seen)")
        only = request.query.get("verdict")
        if only is not None and only not in VERDICTS:
            return _error(400, f"verdict must be one of {', '.join(VERDICTS)}, got {only!r}")
        view = await source.fields(route, span(request), only)
        if view is None:
            return _error(404, f"no comparisons seen on route {route!r} yet; GET {ROUTES} lists the routes seen")
        return json_response(view)

    async def samples(request: web.Request) -> web.Response:
        if source is None or not source.stored:
            return _error(503, "samples are kept in the store, and the store is off (store.enabled: false)")
        route = request.query.get("route")
        if route is None:
            return _error(400, f"say which route: GET {SAMPLES}?route=/orders/{{id}}[&path=$.total] (GET {ROUTES} lists them)")
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _error(400, "limit must be a whole number (at most 100)")
        found = await source.samples(route, request.query.get("part"), request.query.get("path"), limit, span(request))
        return json_response({"route": route, "path": request.query.get("path"), "samples": found or []})

    async def sample(request: web.Request) -> web.Response:
        if source is None or not source.stored:
            return _error(503, "samples are kept in the store, and the store is off (store.enabled: false)")
        try:
            sample_id = int(request.match_info["id"])
        except ValueError:
            return _error(400, f"a sample id is a whole number, got {request.match_info['id'][:40]!r}")
        found = await source.sample(sample_id)
        if found is None:
            return _error(404, f"no sample {sample_id} (retention may have deleted it); GET {SAMPLES}?route=ROUTE lists them")
        return json_response(found)

    access = access or Access([])
    app = web.Application(middlewares=[_json_errors, _access_middleware(access)], client_max_size=ADMIN_BODY_LIMIT)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(ROUTES, routes)
    app.router.add_get(FIELDS, route_fields)
    app.router.add_get(SAMPLES, samples)
    app.router.add_get(SAMPLES + "/{id}", sample)
    control_api.add_routes(app, controls, access)
    ui.add_routes(app, source, controls=controls, access=access)
    return app

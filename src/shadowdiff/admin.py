"""The admin listener: /metrics, /healthz, /readyz and the JSON API under /api/, on its own (loopback) port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shadowdiff.noise.verdict import VERDICTS
from shadowdiff.noise.views import fields_view, routes_view

API = "/api/"
ROUTES = "/api/v1/routes"
FIELDS = "/api/v1/fields"


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
            return _error(404, f"no such endpoint {request.path!r}; the API has GET {ROUTES} and GET {FIELDS}?route=ROUTE")
        if exc.status == 405:
            response = _error(405, f"{request.method} is not allowed on {request.path}; use GET")
            response.headers["Allow"] = exc.headers.get("Allow", "GET, HEAD")
            return response
        return _error(exc.status, exc.reason)


def create_admin_app(
    exposition: Callable[[], Awaitable[bytes]],
    *,
    ready: Callable[[], bool],
    detail: Callable[[], str] = lambda: "",
    fields: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """`await exposition()` gives /metrics (a `scrape.SharedRender`'s `get`: never a render on
    the loop); `ready()` says whether the proxy is accepting traffic (false while starting
    or draining); `detail()` adds a line to /readyz; `fields()` gives the field statistics
    snapshot (one worker's, or the supervisor's merge) the API reads; without it the API
    answers 503."""

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

    async def routes(request: web.Request) -> web.Response:
        if fields is None:
            return _error(503, "noise detection is not running")
        return json_response(routes_view(fields()))

    async def route_fields(request: web.Request) -> web.Response:
        if fields is None:
            return _error(503, "noise detection is not running")
        route = request.query.get("route")
        if route is None:
            return _error(400, f"say which route: GET {FIELDS}?route=/orders/{{id}} (GET {ROUTES} lists the routes seen)")
        only = request.query.get("verdict")
        if only is not None and only not in VERDICTS:
            return _error(400, f"verdict must be one of {', '.join(VERDICTS)}, got {only!r}")
        view = fields_view(fields(), route, only=only)
        if view is None:
            return _error(404, f"no comparisons seen on route {route!r} yet; GET {ROUTES} lists the routes seen")
        return json_response(view)

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(ROUTES, routes)
    app.router.add_get(FIELDS, route_fields)
    return app

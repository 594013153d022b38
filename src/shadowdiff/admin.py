"""The admin listener: /metrics, /healthz, /readyz, on its own (loopback) port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def create_admin_app(
    exposition: Callable[[], Awaitable[bytes]], *, ready: Callable[[], bool], detail: Callable[[], str] = lambda: ""
) -> web.Application:
    """`await exposition()` gives /metrics (a `scrape.SharedRender`'s `get`: never a render on
    the loop); `ready()` says whether the proxy is accepting traffic (false while starting
    or draining); `detail()` adds a line to /readyz."""

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

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app

"""The UI tests' backends: the demo's primary and candidate (a /users regression, /orders noise,
a tolerated /recommendations drift, a new /products field), plus a route that answers what
a hostile client or backend would send, and the traffic that makes all of them appear."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from shadowdiff.demo import _demo_app

HOSTILE = "<script>alert('route')</script>"
HOSTILE_ROUTE = f"/evil/{HOSTILE}"
HOSTILE_BODY = "<img src=x onerror=alert('body')>"
HOSTILE_HEADER = "<b onmouseover=alert('header')>bold</b>"


def backend(candidate: bool) -> web.Application:
    """The demo app of that side, with /evil/...: a JSON string, a header and a key that are markup,
    which the candidate changes."""
    app = _demo_app(candidate)

    async def evil(request: web.Request) -> web.Response:
        body = {"note": HOSTILE_BODY if candidate else "plain", "</pre><script>": 1, "odd key": [1, {"deep": candidate}]}
        return web.json_response(body, headers={"X-Note": HOSTILE_HEADER if candidate else "plain"})

    app.router.add_get("/evil/{tail:.*}", evil)
    return app


def demo_paths() -> list[str]:
    """Fixed traffic: every seventh user's plan changed (18 of 126), the /orders timestamp on every
    call, the /products field on every call, the tolerated scores, matches on /health."""
    paths = [f"/users/{n}" for n in range(1, 127)]
    paths += [f"/orders/{n}" for n in range(1000, 1060)]
    paths += [f"/products/{n}" for n in range(1, 31)]
    paths += [f"/recommendations?user={n}" for n in range(1, 41)]
    paths += ["/health"] * 12
    paths += [f"/evil/{HOSTILE}"] * 3
    return paths


async def send(proxy_url: str, paths: list[str], *, concurrency: int = 8) -> None:
    """Send every path through the proxy, `concurrency` at a time; each must get a 200."""
    queue = list(reversed(paths))
    async with aiohttp.ClientSession() as client:

        async def worker() -> None:
            while queue:
                path = queue.pop()
                async with client.get(proxy_url + path) as response:
                    assert response.status == 200, path
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

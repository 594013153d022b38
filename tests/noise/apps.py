"""A service with the primary's own noise and a candidate with known real changes, for noise tests.

Volatility comes from a per-instance token and call counter (`ts`, unlike a clock, never
repeats): two answers of the same instance, or of two instances, differ there on every call.
"""

from __future__ import annotations

import itertools
import random

from aiohttp import web

_instances = itertools.count()
SEEN = web.AppKey("seen", list)


def noisy_app(*, candidate: bool = False) -> web.Application:
    calls = {"n": 0, "rare": 0}
    instance = next(_instances)
    rng = random.Random(instance)

    def ts() -> str:
        return f"{instance}-{calls['n']}"

    seen: list[tuple[str, str, str | None]] = []  # (method, path, marker) of every request

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        seen.append((request.method, request.path, request.headers.get("X-Shadow-Request")))
        return await handler(request)

    async def stamp(request: web.Request) -> web.Response:
        """A volatile `ts` (noise) and nothing else that changes."""
        return web.json_response({"id": request.match_info["id"], "ts": ts(), "v": 1})

    async def plan(request: web.Request) -> web.Response:
        """A real change on every call in the candidate, a volatile `ts` besides."""
        return web.json_response({"plan": "team" if candidate else "pro", "ts": ts()})

    async def flaky(request: web.Request) -> web.Response:
        """`rank` differs between two primary answers half the time; the candidate breaks it every time."""
        rank = "broken" if candidate else rng.choice("ab")
        return web.json_response({"rank": rank})

    async def gone(request: web.Request) -> web.Response:
        """The candidate drops a field the primary always sends (a volatile one)."""
        body = {"v": 1} if candidate else {"v": 1, "extra": ts()}
        body["ts"] = ts()
        return web.json_response(body)

    async def rare(request: web.Request) -> web.Response:
        """The candidate differs on one call in fifty: below an absolute floor of 5 %."""
        calls["rare"] += 1
        wrong = candidate and calls["rare"] % 50 == 0
        return web.json_response({"total": 11 if wrong else 10})

    async def links(request: web.Request) -> web.Response:
        """Absolute URLs built from the Host the request came with (as Datasette and Django do)."""
        base = f"http://{request.host}"
        response = web.json_response({"self": f"{base}/links/1", "next": f"{base}/links/2"})
        response.headers["Location"] = f"{base}/links/1"
        return response

    async def wide(request: web.Request) -> web.Response:
        """25 volatile fields and one real change."""
        body = {f"f{i:02}": ts() for i in range(25)}
        body["z"] = "new" if candidate else "old"
        return web.json_response(body)

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "ts": ts()})

    app = web.Application(middlewares=[count])
    app[SEEN] = seen
    for path, handler in (
        ("/stamp/{id}", stamp), ("/plan/{id}", plan), ("/flaky/{id}", flaky), ("/gone/{id}", gone),
        ("/rare/{id}", rare), ("/links/{id}", links), ("/wide/{id}", wide),
    ):  # fmt: skip
        app.router.add_get(path, handler)
    app.router.add_route("*", "/echo", echo)
    return app

"""A primary and a candidate with known differences on known routes: exact metrics and log lines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.backends import serve_app
from tests.conftest import StartProxy, metrics, settle, url_of

N = 6


def _app(candidate: bool) -> web.Application:
    calls = {"n": 0}

    async def same(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "ok": True})

    async def plan(request: web.Request) -> web.Response:
        return web.json_response({"id": 1, "plan": "team" if candidate else "pro"})

    async def score(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"items": [{"sku": "a", "score": 0.5 + (0.0004 if candidate else 0)}]})

    async def stamp(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"v": 1, "meta": {"generated_at": f"{calls['n']}-{candidate}"}})

    async def added(request: web.Request) -> web.Response:
        body = {"v": 1, "currency": "EUR"} if candidate else {"v": 1}
        return web.json_response(body)

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500) if candidate else web.json_response({"v": 1})

    app = web.Application()
    for path, handler in (("/same/{id}", same), ("/plan", plan), ("/score", score), ("/stamp", stamp), ("/added", added), ("/broken", broken)):
        app.router.add_get(path, handler)
    return app


@pytest.fixture
async def pair() -> AsyncIterator[tuple[str, str]]:
    primary, primary_url = await serve_app(_app(candidate=False))
    candidate, candidate_url = await serve_app(_app(candidate=True))
    yield primary_url, candidate_url
    await primary.cleanup()
    await candidate.cleanup()


RULES = [
    {"kind": "tolerance", "path": "$.items[*].score", "absolute": 0.001, "reason": "the new model drifts a little"},
    {"kind": "ignore", "path": "$.meta.generated_at", "reason": "generation time", "routes": ["/stamp"]},
]
EXPECTED = {  # route: (outcome, differences by part, paths in the log)
    "/same/{id}": ("match", {}, set()),
    "/plan": ("mismatch", {"body": N}, {"$.plan"}),
    "/score": ("ignored", {}, set()),
    "/stamp": ("ignored", {}, set()),
    "/added": ("mismatch", {"body": N}, {"$.currency"}),
    "/broken": ("mismatch", {"status": N, "body": 2 * N}, {"status", "$.error", "$.v"}),  # two body paths each
}


async def test_known_differences_give_exact_counts_and_log_lines(
    pair: tuple[str, str], start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """After N requests per route, /metrics shows exactly the expected outcomes and differences, and each mismatch line names the changed paths."""
    proxy = await start_proxy(*pair, compare={"rules": RULES})
    async with aiohttp.ClientSession() as client:
        for i in range(N):
            for path in (f"/same/{i + 1}", "/plan", "/score", "/stamp", "/added", "/broken"):
                async with client.get(url_of(proxy) + path) as response:
                    await response.read()
    await settle(proxy)

    m = metrics(proxy)
    for route, (outcome, parts, _) in EXPECTED.items():
        assert m.value("shadowdiff_mirrored_total", route=route) == N, route
        assert m.value("shadowdiff_comparisons_total", route=route, outcome=outcome) == N, route
        assert m.value("shadowdiff_comparisons_total", route=route) == N, route
        for part in ("status", "header", "body"):
            assert m.value("shadowdiff_differences_total", route=route, part=part) == parts.get(part, 0), (route, part)

    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"event":"mismatch"' in line]
    assert len(lines) == 3 * N
    for route, (_, _, expected_paths) in EXPECTED.items():
        logged = [line for line in lines if line["route"] == route]
        assert len(logged) == (N if expected_paths else 0), route
        for line in logged:
            assert {d["path"] for d in line["differences"]} == expected_paths, route

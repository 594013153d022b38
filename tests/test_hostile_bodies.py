"""Hostile bodies through a real proxy: a backtracking-prone mask pattern, deep nesting and big
numbers end as mismatches, logged, with no traceback and no stalled event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.backends import serve_app
from tests.conftest import StartProxy, metrics, settle, until, url_of

Bodies = dict[str, tuple[bytes, bytes]]  # path -> (primary's body, shadow's body)

BODIES: Bodies = {
    # `(a+)+$` on 30 a's and a "!" is exponential for a backtracking engine (minutes); "user-aaa" is masked.
    "/backtrack": (
        orjson.dumps({"s": "a" * 30 + "!", "tail": "user-aaa"}),
        orjson.dumps({"s": "a" * 29 + "!", "tail": "user-a"}),
    ),
    "/deep-removed": (b'{"v": 1, "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"v": 1}'),
    "/deep-parsed": (b'{"v": 1, "deep": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}", b'{"v": 1}'),
    "/big-number": (b'{"balance": 12345678901234567890123}', b'{"balance": 12345678901234567890124}'),
}


def _app(side: int) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=BODIES[request.path][side], content_type="application/json")

    app = web.Application()
    for path in BODIES:
        app.router.add_get(path, answer)
    return app


@pytest.fixture
async def pair() -> AsyncIterator[tuple[str, str]]:
    primary, primary_url = await serve_app(_app(0))
    candidate, candidate_url = await serve_app(_app(1))
    yield primary_url, candidate_url
    await primary.cleanup()
    await candidate.cleanup()


MASK = {"rules": [{"kind": "mask", "pattern": "(a+)+$", "reason": "a pattern copied from the web"}]}


def _mismatches(out: str) -> dict[str, dict]:
    lines = [orjson.loads(line) for line in out.splitlines() if '"event":"mismatch"' in line]
    return {line["path"]: line for line in lines}


async def _get_all(proxy, paths) -> None:
    async with aiohttp.ClientSession() as client:
        for path in paths:
            async with client.get(url_of(proxy) + path) as response:
                assert response.status == 200
                await response.read()


async def test_a_backtracking_mask_pattern_costs_milliseconds(
    pair: tuple[str, str], start_proxy: StartProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    """A mask `(a+)+$` on a 30-character near-match (minutes for `re`) is compared inline and logged within
    a generous 5 s: the masked string is equal, the other is a `changed` difference."""
    proxy = await start_proxy(*pair, compare=MASK)
    await _get_all(proxy, ["/backtrack"])
    await until(lambda: metrics(proxy).value("shadowdiff_comparisons_total", route="/backtrack", outcome="mismatch") == 1, 5.0)
    [line] = _mismatches(capfd.readouterr().out).values()
    assert [(d["path"], d["kind"]) for d in line["differences"]] == [("$.s", "changed")]


@pytest.mark.parametrize("offload_bytes", [1 << 30, 0], ids=["inline", "worker"])
async def test_deep_nesting_and_big_numbers_are_logged_mismatches(
    pair: tuple[str, str], start_proxy: StartProxy, capfd: pytest.CaptureFixture[str], offload_bytes: int
) -> None:
    """100,000-deep and 1,000-deep removed subtrees and a balance past 64 bits are each one mismatch line,
    inline and in the comparison worker, with no traceback anywhere in stdout or stderr."""
    paths = ["/deep-removed", "/deep-parsed", "/big-number"]
    proxy = await start_proxy(*pair, compare={"offload_bytes": offload_bytes, "max_body_bytes": 1 << 20})
    await _get_all(proxy, paths)
    await settle(proxy)
    m = metrics(proxy)
    for path in paths:
        assert m.value("shadowdiff_comparisons_total", route=path, outcome="mismatch") == 1, path
    assert m.value("shadowdiff_compare_failures_total") == 0
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = _mismatches(captured.out)
    assert set(lines) == set(paths)
    assert [d["path"] for d in lines["/deep-parsed"]["differences"]] == ["$.deep"]
    [balance] = lines["/big-number"]["differences"]
    assert (balance["primary"], balance["shadow"]) == ("12345678901234567890123", "12345678901234567890124")

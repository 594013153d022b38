"""Large bodies are compared in a worker process, with the same results as inline."""

from __future__ import annotations

import orjson

from shadowdiff.comparator import Comparator
from shadowdiff.compare import Exchange, compare
from shadowdiff.compare.model import IGNORED, MISMATCH
from shadowdiff.config import CompareConfig, RuleConfig
from tests.compare.test_engine import request, seen

DOC = {"items": [{"id": i, "score": i / 7, "name": f"item {i}"} for i in range(2000)]}


async def test_large_bodies_are_compared_in_a_worker_with_the_same_result() -> None:
    """Over offload_bytes the comparison runs in the worker process and agrees with the inline one."""
    changed = orjson.loads(orjson.dumps(DOC))
    changed["items"][1500]["name"] = "renamed"
    changed["items"][10]["score"] += 0.0001
    rules = (RuleConfig(kind="tolerance", path="$.items[*].score", absolute=0.001, reason="drift"),)
    comparator = Comparator(CompareConfig(offload_bytes=1024, rules=rules))
    exchange = Exchange(request(), seen("primary", DOC), seen("shadow", changed))
    try:
        offloaded = await comparator.compare(exchange)
        assert comparator._pool is not None  # it went to the worker
        inline = compare(exchange, comparator.rules.for_route("/r"), comparator.limits)
        assert offloaded == inline
        assert offloaded.outcome == MISMATCH
        assert [d.path for d in offloaded.differences] == ["$.items[1500].name"]

        drift_only = orjson.loads(orjson.dumps(DOC))
        drift_only["items"][3]["score"] += 0.0001
        result = await comparator.compare(Exchange(request(), seen("primary", DOC), seen("shadow", drift_only)))
        assert result.outcome == IGNORED
    finally:
        comparator.close()


async def test_small_bodies_stay_inline() -> None:
    """At or under offload_bytes no worker process is started."""
    comparator = Comparator(CompareConfig(offload_bytes=1 << 20))
    result = await comparator.compare(Exchange(request(), seen("primary", {"a": 1}), seen("shadow", {"a": 2})))
    assert result.outcome == MISMATCH
    assert comparator._pool is None


async def test_worker_past_its_deadline_is_replaced_and_the_failure_raised() -> None:
    """A comparison over compare.timeout raises CompareFailed, the stuck worker is killed, and the next one works."""
    import pytest

    from shadowdiff.comparator import CompareFailed

    comparator = Comparator(CompareConfig(offload_bytes=0, timeout=0.001))
    changed = orjson.loads(orjson.dumps(DOC))
    changed["items"][0]["name"] = "x"
    exchange = Exchange(request(), seen("primary", DOC), seen("shadow", changed))
    try:
        with pytest.raises(CompareFailed, match="compare.timeout"):
            await comparator.compare(exchange)
        assert comparator._pool is None  # killed, not left running the job
        comparator._timeout = 30
        assert (await comparator.compare(exchange)).outcome == MISMATCH
    finally:
        comparator.close()


async def test_encoded_bodies_go_to_the_worker() -> None:
    """A small gzip body is compared in the worker (its decoded size is unknown until decoded)."""
    import gzip

    comparator = Comparator(CompareConfig(offload_bytes=1 << 20))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    p = seen("primary", gzip.compress(b'{"a": 1}'), headers=headers)
    s = seen("shadow", gzip.compress(b'{"a": 2}'), headers=headers)
    try:
        result = await comparator.compare(Exchange(request(), p, s))
        assert comparator._pool is not None
        assert [d.path for d in result.differences] == ["$.a"]
    finally:
        comparator.close()


async def test_failed_comparison_is_counted_and_never_mirrored(start_proxy, capsys) -> None:
    """Through the proxy: a comparison past its deadline counts compare_failures, one log line, and no mirrored/outcome pair."""
    from tests.backends import Backend
    from tests.conftest import metrics, settle, url_of

    import aiohttp

    primary, shadow = await Backend("primary").start(), await Backend("shadow").start()
    try:
        proxy = await start_proxy(primary.url, shadow.url, compare={"offload_bytes": 0, "timeout": 1e-6})
        async with aiohttp.ClientSession() as client:
            async with client.get(url_of(proxy) + "/whoami") as response:
                assert response.status == 200
        await settle(proxy)
    finally:
        await primary.stop()
        await shadow.stop()
    m = metrics(proxy)
    assert m.value("shadowdiff_compare_failures_total") == 1
    assert m.value("shadowdiff_mirrored_total") == 0 == m.value("shadowdiff_comparisons_total")
    out = capsys.readouterr().out
    assert out.count('"event":"compare_failed"') == 1 and "Traceback" not in out

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

"""The comparator: inline or in the comparison worker, each job's deadline from its own start, a bounded queue."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import time

import aiohttp
import orjson
import pytest

from shadowdiff.compare import compare
from shadowdiff.compare.body import compare_bodies
from shadowdiff.compare.engine import views
from shadowdiff.compare.rules import EMPTY, Rules
from shadowdiff.config import CompareConfig, RuleConfig
from shadowdiff.experiment.comparator import CompareFailed, Comparator, ComparisonQueueFull
from shadowdiff.model import IGNORED, MISMATCH, SHADOW, Exchange
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, settle, url_of
from tests.values import exchange, seen


def document(items: int) -> dict:
    return {"items": [{"id": i, "score": i / 7, "name": f"item {i}"} for i in range(items)]}


def changed_pair(items: int) -> Exchange:
    """A control and a shadow whose JSON differs in one field: parsing both is the cost."""
    doc = document(items)
    other = orjson.loads(orjson.dumps(doc))
    other["items"][items // 2]["name"] = "renamed"
    return exchange(seen("primary", doc, limit=1 << 30), seen("shadow", other, limit=1 << 30))


def inline_seconds(pair: Exchange) -> float:
    """What comparing `pair` costs on this machine, measured here (the median of three)."""
    pair_views = views(pair, SHADOW)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        compare_bodies(*pair_views, EMPTY, Comparator(CompareConfig()).limits)
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


@pytest.fixture
async def comparators():
    made: list[Comparator] = []

    def make(**settings) -> Comparator:
        comparator = Comparator(CompareConfig(**settings))
        made.append(comparator)
        return comparator

    yield make
    for comparator in made:
        await comparator.close()


async def test_large_bodies_are_compared_in_the_worker_with_the_same_result(comparators) -> None:
    """Over offload_bytes the comparison runs in the worker process and agrees with the inline one, redacted."""
    doc = document(2000)
    changed = orjson.loads(orjson.dumps(doc))
    changed["items"][1500]["name"] = "renamed"
    changed["items"][10]["score"] += 0.0001
    rules = (RuleConfig(kind="tolerance", path="$.items[*].score", absolute=0.001, reason="drift"),)
    comparator = comparators(offload_bytes=1024, rules=rules)
    ruleset = Rules(rules).for_route("/r")
    pair = exchange(seen("primary", doc), seen("shadow", changed))
    offloaded = await comparator.compare(pair, SHADOW, ruleset)
    assert comparator.worker_pid is not None  # it went to the worker
    inline = compare(pair, SHADOW, ruleset, comparator.limits)
    redacted = tuple(comparator.redactor.difference(d) for d in inline.differences)
    assert (offloaded.outcome, offloaded.differences) == (inline.outcome, redacted)
    assert offloaded.outcome == MISMATCH and [d.path for d in offloaded.differences] == ["$.items[1500].name"]
    assert offloaded.duration > 0

    drift_only = orjson.loads(orjson.dumps(doc))
    drift_only["items"][3]["score"] += 0.0001
    result = await comparator.compare(exchange(seen("primary", doc), seen("shadow", drift_only)), SHADOW, ruleset)
    assert result.outcome == IGNORED


async def test_the_worker_redacts_and_cuts_what_it_finds(comparators) -> None:
    """Differences found in the worker come back already redacted and cut: secrets and long values never reach the loop."""
    doc = document(2000)
    changed = orjson.loads(orjson.dumps(doc))
    changed["items"][3]["note"] = "token=abcdef123456 " + "x" * 5000
    changed["items"][4]["apiKey"] = "k-999999"
    comparator = comparators(offload_bytes=1024)
    pair = exchange(seen("primary", doc), seen("shadow", changed))
    offloaded = await comparator.compare(pair, SHADOW, EMPTY)
    assert comparator.worker_pid is not None
    values = {d.path: d.candidate for d in offloaded.differences}
    assert all(d.redacted for d in offloaded.differences)
    assert values["$.items[4].apiKey"] == "[REDACTED]"
    assert "abcdef123456" not in values["$.items[3].note"] and len(values["$.items[3].note"]) < 300


async def test_the_worker_keeps_host_explained_paths_and_the_cut_flag(comparators) -> None:
    """In the worker (inline=False) the shadow's own authority is explained as inline, and a listing past
    max_found comes back cut with max_found differences: both survive the trip through the worker process."""
    comparator = comparators()
    doc = {"self": "https://api.example.com/r", **{f"k{i}": i for i in range(comparator.limits.max_found + 50)}}
    changed = {"self": "https://127.0.0.1:8002/r", **{f"k{i}": -i - 1 for i in range(comparator.limits.max_found + 50)}}
    pair = exchange(seen("primary", doc), seen("shadow", changed))
    pair.request.client_host, pair.candidates[SHADOW].host = "api.example.com", "127.0.0.1:8002"
    result = await comparator.compare(pair, SHADOW, EMPTY, inline=False)
    assert comparator.worker_pid is not None  # it went to the worker
    assert result.host_explained == (("body", "$.self"),)
    assert (len(result.differences), result.cut) == (comparator.limits.max_found, True)
    assert result.outcome == MISMATCH


async def test_small_bodies_stay_inline(comparators) -> None:
    """At or under offload_bytes no worker process is started."""
    comparator = comparators(offload_bytes=1 << 20)
    result = await comparator.compare(exchange(seen("primary", {"a": 1}), seen("shadow", {"a": 2})), SHADOW, EMPTY)
    assert result.outcome == MISMATCH
    assert comparator.worker_pid is None


async def test_encoded_bodies_go_to_the_worker(comparators) -> None:
    """A small gzip body is compared in the worker (its decoded size is unknown until decoded)."""
    comparator = comparators(offload_bytes=1 << 20)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    p = seen("primary", gzip.compress(b'{"a": 1}'), headers=headers)
    s = seen("shadow", gzip.compress(b'{"a": 2}'), headers=headers)
    result = await comparator.compare(exchange(p, s), SHADOW, EMPTY)
    assert comparator.worker_pid is not None
    assert [d.path for d in result.differences] == ["$.a"]


async def test_the_deadline_starts_when_the_job_starts(comparators) -> None:
    """Eight jobs queued at once, each well within compare.timeout but together far past it: every one is compared,
    and each one's duration is its own comparing time, not its wait in the queue."""
    pair = changed_pair(20_000)
    timeout = 4 * inline_seconds(pair)
    comparator = comparators(offload_bytes=0, timeout=timeout, max_queued=16)
    await comparator.compare(pair, SHADOW, EMPTY)  # the worker is started and warm
    started = time.perf_counter()
    results = await asyncio.gather(*(comparator.compare(pair, SHADOW, EMPTY) for _ in range(8)))
    waited = time.perf_counter() - started
    assert waited > timeout  # the premise: the last jobs waited past the deadline before they started
    assert [r.outcome for r in results] == [MISMATCH] * 8
    assert max(r.duration for r in results) < waited / 2


async def test_only_the_overdue_job_is_lost(comparators) -> None:
    """A job past compare.timeout fails and its worker is replaced; the jobs queued behind it are compared."""
    small, large = changed_pair(2_000), changed_pair(200_000)
    comparator = comparators(offload_bytes=0, timeout=max(0.2, 5 * inline_seconds(small)), max_queued=16)
    await comparator.compare(small, SHADOW, EMPTY)
    first_worker = comparator.worker_pid
    overdue, *after = await asyncio.gather(
        comparator.compare(large, SHADOW, EMPTY),
        comparator.compare(small, SHADOW, EMPTY),
        comparator.compare(small, SHADOW, EMPTY),
        return_exceptions=True,
    )
    assert isinstance(overdue, CompareFailed) and "compare.timeout" in str(overdue)
    assert [r.outcome for r in after] == [MISMATCH, MISMATCH]
    assert comparator.worker_pid not in (None, first_worker)


async def test_the_queue_is_bounded(comparators) -> None:
    """With compare.max_queued 2, one running and two waiting jobs are compared and the rest refused at once."""
    pair = changed_pair(20_000)
    comparator = comparators(offload_bytes=0, max_queued=2)
    await comparator.compare(pair, SHADOW, EMPTY)
    results = await asyncio.gather(*(comparator.compare(pair, SHADOW, EMPTY) for _ in range(6)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, ComparisonQueueFull)]
    assert len(refused) == 3
    assert [r.outcome for r in results if not isinstance(r, BaseException)] == [MISMATCH] * 3


async def test_a_worker_that_dies_fails_its_job_and_is_replaced(comparators) -> None:
    """The worker killed mid-job: that comparison fails as `died`, and the next one runs on a new worker."""
    pair = changed_pair(200_000)
    comparator = comparators(offload_bytes=0, timeout=30)
    await comparator.compare(changed_pair(10), SHADOW, EMPTY)
    victim = comparator.worker_pid
    assert victim is not None
    job = asyncio.ensure_future(comparator.compare(pair, SHADOW, EMPTY))
    await asyncio.sleep(0.05)  # it is running, or about to: either way the worker dies under it
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(CompareFailed, match="died"):
        await job
    assert (await comparator.compare(changed_pair(10), SHADOW, EMPTY)).outcome == MISMATCH
    assert comparator.worker_pid not in (None, victim)


async def test_failed_comparison_is_counted_and_never_mirrored(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the proxy: a comparison past its deadline counts compare_failures, one log line, and no mirrored/outcome pair."""
    proxy = await start_proxy(primary.url, shadow.url, compare={"offload_bytes": 0, "timeout": 1e-6})
    async with aiohttp.ClientSession() as client:
        async with client.get(url_of(proxy) + "/whoami") as response:
            assert response.status == 200
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_compare_failures_total") == 1 == m.value("shadowdiff_compare_failures_total", reason="timeout")
    assert m.value("shadowdiff_mirrored_total") == 0 == m.value("shadowdiff_comparisons_total")
    out = capsys.readouterr().out
    assert out.count('"event":"compare_failed"') == 1 and "Traceback" not in out


async def test_every_comparison_is_counted_when_the_worker_is_killed_with_others_queued(
    start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offloaded comparisons queued behind one another, the worker killed mid-job (twice): every mirrored
    request ends as an outcome or a failure counted with its reason, worker_died (mirrored == outcomes;
    requests == mirrored + failures), and the jobs queued behind run on a new worker."""
    from aiohttp import web

    from tests.backends import serve_app

    def app(name: str) -> web.Application:
        body = orjson.dumps({**document(6000), "from": name})  # ~400 KB: some ms per job in the worker

        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        application = web.Application()
        application.router.add_get("/big", answer)
        return application

    runners = [await serve_app(app(name)) for name in ("primary", "shadow")]
    try:
        proxy = await start_proxy(runners[0][1], runners[1][1], compare={"max_queued": 64, "timeout": 30})
        comparator = proxy.mirror.comparator
        requests = 24
        async with aiohttp.ClientSession() as client:

            async def get() -> None:
                async with client.get(url_of(proxy) + "/big") as response:
                    assert response.status == 200
                    await response.read()

            await asyncio.gather(*(get() for _ in range(requests)))
            for _ in range(2):  # kill whichever worker is busy while others wait, twice
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while not (comparator.worker_pid and comparator.busy and comparator.queued) and loop.time() < deadline:
                    await asyncio.sleep(0.001)
                if comparator.worker_pid and comparator.queued:
                    os.kill(comparator.worker_pid, signal.SIGKILL)
                    await asyncio.sleep(0.05)
        await settle(proxy, timeout=60)
    finally:
        for runner, _ in runners:
            await runner.cleanup()
    m = metrics(proxy)
    mirrored = m.value("shadowdiff_mirrored_total", route="/big")
    outcomes = sum(m.value("shadowdiff_comparisons_total", route="/big", outcome=o) for o in ("match", "mismatch", "ignored", "shadow_error"))
    failures = m.value("shadowdiff_compare_failures_total")
    skipped = sum(m.value("shadowdiff_mirror_skipped_total", reason=r) for r in ("compare_queue_full", "overload"))
    assert mirrored == outcomes
    assert 1 <= failures
    assert mirrored + failures + skipped == requests, (mirrored, failures, skipped)
    assert m.value("shadowdiff_compare_failures_total", reason="worker_died") == failures
    assert capsys.readouterr().out.count('"event":"compare_failed"') == failures


async def test_a_comparison_past_the_inline_budget_is_made_in_the_worker(comparators) -> None:
    """60 KB of short strings under a mask (~140 ms of masking) is not compared on the loop: compare_now()
    gives up within its budget and the worker makes the same comparison as an unbounded compare_bodies()."""
    a = orjson.dumps({"v": [f"a{i % 10}" for i in range(12_000)]})
    b = orjson.dumps({"v": [f"a{(i + 1) % 10}" for i in range(12_000)]})
    pair = exchange(seen("primary", a), seen("shadow", b))
    ruleset = Rules([RuleConfig(kind="mask", pattern="[0-9]", reason="digits")]).for_route("/r")
    comparator = comparators()
    assert comparator.compare_now(pair, SHADOW, ruleset) is None
    result = await comparator.compare(pair, SHADOW, ruleset, inline=False)
    assert result.outcome == IGNORED
    pair_views = views(pair, SHADOW)
    assert compare_bodies(*pair_views, ruleset, comparator.limits).excused


def test_small_comparisons_with_rules_stay_inline(comparators) -> None:
    """A 2 KB document with every rule kind is compared inline, within the budget."""
    rules = Rules(
        [
            RuleConfig(kind="ignore", path="$.items[*].id", reason="ids"),
            RuleConfig(kind="mask", pattern="[0-9a-f]{8}", reason="hashes"),
            RuleConfig(kind="tolerance", absolute=0.01, reason="drift"),
            RuleConfig(kind="unordered", path="$.tags", reason="a set"),
        ]
    ).for_route("/r")
    doc = document(30)
    other = orjson.loads(orjson.dumps(doc))
    other["items"][3]["name"] = "renamed"
    comparison = comparators().compare_now(exchange(seen("primary", doc), seen("shadow", other)), SHADOW, rules)
    assert comparison is not None and comparison.outcome == MISMATCH

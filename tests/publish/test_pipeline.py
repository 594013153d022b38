"""The publish pipeline: stages, the counts kept in one place, one redaction, sinks that cannot break the proxy."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from shadowdiff.config import LoggingConfig
from shadowdiff.metrics import Metrics
from shadowdiff.model import IGNORED, MATCH, MISMATCH, SHADOW, Comparison, Difference
from shadowdiff.publish.pipeline import OffLoopSink, Publisher
from shadowdiff.publish.redact import REDACTED, Redactor, Report
from shadowdiff.publish.sinks import LogSink
from tests.metrics_text import MetricsReader
from tests.values import Recorder, exchange, seen


def comparison(outcome: str = MISMATCH, *differences: Difference, route: str = "/r") -> Comparison:
    pair = exchange(seen("primary", {"a": 1}), seen("shadow", {"a": 2}, status=500), route=route)
    return Comparison(pair, SHADOW, outcome, differences)


def publisher(*sinks, stages=(), metrics: Metrics | None = None) -> tuple[Publisher, Metrics]:
    metrics = metrics or Metrics()
    return Publisher(metrics, Redactor(LoggingConfig()), sinks, stages=stages), metrics


def test_mismatch_line_has_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """A mismatch is one JSON line with ts, level, event and every field the contract names."""
    pipeline, _ = publisher(LogSink())
    pipeline.publish(comparison(MISMATCH, Difference("body", "$.a", "changed", 1, 2), route="/users/{id}"))
    (line,) = capsys.readouterr().out.splitlines()
    record = orjson.loads(line)
    for key in ("ts", "level", "event", "request_id", "method", "route", "path", "primary_status",
                "shadow_status", "primary_ms", "shadow_ms", "differences"):  # fmt: skip
        assert key in record, key
    assert (record["event"], record["route"], record["shadow_status"]) == ("mismatch", "/users/{id}", 500)
    assert record["differences"] == [{"part": "body", "path": "$.a", "kind": "changed", "primary": 1, "shadow": 2}]


def test_redaction_happens_once_before_the_fan_out() -> None:
    """Every sink that wants a comparison gets the same redacted Report; a sink that does not want it gets nothing."""
    first, second, uninterested = Recorder("first"), Recorder("second"), Recorder("none", wants=False)
    pipeline, _ = publisher(first, second, uninterested)
    pipeline.publish(comparison(MISMATCH, Difference("body", "$.password", "changed", "hunter2", "hunter3")))
    (report,) = first.reports
    assert second.reports == [report] and second.reports[0] is report
    assert uninterested.reports == []
    assert (report.differences[0].control, report.differences[0].candidate) == (REDACTED, REDACTED)


def test_a_failing_sink_does_not_stop_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    """A sink that raises is logged; the sinks after it still run."""

    class Broken(Recorder):
        def __call__(self, report: Report) -> None:
            raise RuntimeError("sink down")

    after = Recorder()
    pipeline, _ = publisher(Broken("broken"), after)
    pipeline.publish(comparison(MATCH))
    assert [r.comparison.outcome for r in after.reports] == [MATCH]
    assert '"event":"sink_failed"' in capsys.readouterr().out


def test_mirrored_is_counted_with_each_outcome() -> None:
    """Whatever the outcomes, mirrored equals their sum per route, and differences are counted by part."""
    pipeline, metrics = publisher()
    for outcome in (MATCH, MISMATCH, IGNORED, MISMATCH):
        pipeline.publish(comparison(outcome, *([Difference("status", "status", "changed", 200, 500)] if outcome == MISMATCH else [])))
    m = MetricsReader(metrics.exposition().decode())
    assert m.value("shadowdiff_mirrored_total", route="/r") == 4 == m.value("shadowdiff_comparisons_total", route="/r")
    assert m.value("shadowdiff_comparisons_total", outcome="mismatch") == 2
    assert m.value("shadowdiff_differences_total", part="status") == 2


def test_stages_may_reclassify_or_suppress() -> None:
    """A stage's new outcome is what is counted and sent; a stage returning None keeps a comparison out of both."""
    sink = Recorder()

    def excuse_routes_under_test(c: Comparison) -> Comparison | None:
        if c.request.route == "/test":
            return None
        return Comparison(c.exchange, c.lane, IGNORED) if c.outcome == MISMATCH else c

    pipeline, metrics = publisher(sink, stages=[excuse_routes_under_test])
    pipeline.publish(comparison(MISMATCH))
    pipeline.publish(comparison(MISMATCH, route="/test"))
    m = MetricsReader(metrics.exposition().decode())
    assert [r.comparison.outcome for r in sink.reports] == [IGNORED]
    assert m.value("shadowdiff_comparisons_total", outcome="ignored") == 1
    assert m.value("shadowdiff_mirrored_total") == 1


def test_an_off_loop_sink_never_blocks_and_counts_what_it_drops() -> None:
    """A sink stuck on its I/O costs publish() nothing: past its queue, reports are dropped and counted in the metrics."""
    busy, release = threading.Event(), threading.Event()

    class Stuck(Recorder):
        def __call__(self, report: Report) -> None:
            busy.set()
            release.wait(10)
            super().__call__(report)

    stuck = Stuck("stuck")
    off_loop = OffLoopSink(stuck, capacity=3)
    pipeline, metrics = publisher(off_loop)
    started = time.perf_counter()
    pipeline.publish(comparison(MATCH))
    assert busy.wait(5)  # the sink's thread holds the first report
    for _ in range(9):
        pipeline.publish(comparison(MATCH))
    assert time.perf_counter() - started < 1.0  # the sink itself would take 10 s for the first one
    release.set()
    off_loop.close(timeout=5)
    # One report was being handled when the queue filled: 1 + 3 reached the sink, 6 were dropped.
    assert len(stuck.reports) == 4
    assert MetricsReader(metrics.exposition().decode()).value("shadowdiff_sink_dropped_total", sink="stuck") == 6


def test_the_mismatch_line_keeps_the_query_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The request's query string is a field of its own in the mismatch line, with its secrets hidden; a request with
    none has `query: null`."""
    from shadowdiff.model import Exchange
    from tests.values import request

    pipeline, _ = publisher(LogSink())
    pair = exchange(seen("primary", {"a": 1}), seen("shadow", {"a": 2}))
    with_query = Exchange(request(target="/r?page=2&access_token=abc123456"), pair.control, pair.candidates)
    pipeline.publish(Comparison(with_query, SHADOW, MISMATCH, (Difference("body", "$.a", "changed", 1, 2),)))
    pipeline.publish(comparison(MISMATCH, Difference("body", "$.a", "changed", 1, 2)))
    first, second = (orjson.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["path"], first["query"]) == ("/r", "page=2&access_token=[REDACTED]")
    assert second["query"] is None

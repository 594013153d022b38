"""One publish pipeline for every comparison: stages, counts, redaction, sinks.

`Publisher.publish(comparison)`:
1. **stages** run in order; each may pass the comparison on, return another (a
   reclassified outcome: the noise stage's `noise`), or None to keep it out of the
   counts and the sinks;
2. **counts**: the metrics for what is left, in this one place, so that for the
   shadow's lane `mirrored == match + mismatch + ignored + noise + shadow_error`
   holds by construction (mirrored is counted with its outcome, never apart). A
   `noise` comparison's differences are not counted; A/A lanes' comparisons are
   counted under their source (`shadowdiff_aa_comparisons_total`), never as outcomes;
3. **redaction**, once, and only if some sink wants this comparison, of the first
   `listed` differences (compare.max_differences; the comparison holds all it found);
4. **sinks** get the same redacted `Report`. A sink that does I/O runs behind
   `OffLoopSink`: a bounded queue and a thread, so the event loop never waits on
   it; past the queue's bound reports are dropped and counted.

A stage or a sink that fails is logged (`stage_failed`, `sink_failed`) and skipped; it never takes
the proxy or the other sinks down with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from shadowdiff import log
from shadowdiff.metrics import Metrics
from shadowdiff.model import AA_LANES, IGNORED, MATCH, NOISE, SHADOW, SHADOW_ERROR, Comparison
from shadowdiff.offloop import OffLoop
from shadowdiff.publish.redact import Redactor, Report

Stage = Callable[[Comparison], "Comparison | None"]


_AA_OUTCOMES = {MATCH: "match", IGNORED: "ignored", SHADOW_ERROR: "error"}


class Sink(Protocol):
    name: str

    def wants(self, comparison: Comparison) -> bool:
        """Whether this comparison is for this sink (asked before anything is redacted)."""

    def __call__(self, report: Report) -> None: ...


class OffLoopSink:
    """Runs `sink` on its own thread behind a bounded queue (drops counted in `dropped`)."""

    def __init__(self, sink: Sink, *, capacity: int = 1000) -> None:
        self.name = sink.name
        self._sink = sink
        self._thread = OffLoop(f"shadowdiff-sink-{sink.name}", sink, capacity, on_error=self._failed)

    def wants(self, comparison: Comparison) -> bool:
        return self._sink.wants(comparison)

    def __call__(self, report: Report) -> None:
        self._thread.put(report)

    @property
    def dropped(self) -> int:
        return self._thread.dropped

    def _failed(self, exc: Exception) -> None:
        log.event("error", "sink_failed", sink=self.name, exc_info=exc)

    def close(self, timeout: float = 2.0) -> None:
        self._thread.close(timeout)


class Publisher:
    def __init__(
        self, metrics: Metrics, redactor: Redactor, sinks: Sequence[Sink], *, stages: Sequence[Stage] = ()
    ) -> None:
        self._metrics = metrics
        self.redactor = redactor  # replaced on a live config change
        self.listed = 20  # differences a report lists (compare.max_differences; set with the config)
        self._sinks = tuple(sinks)
        self._stages = tuple(stages)
        for sink in self._sinks:
            if isinstance(sink, OffLoopSink):
                metrics.watch_sink(sink.name, lambda sink=sink: sink.dropped)

    def close(self, timeout: float = 2.0) -> None:
        """Let sinks with a thread of their own write what they hold (up to `timeout` each)."""
        for sink in self._sinks:
            if isinstance(sink, OffLoopSink):
                sink.close(timeout)

    def publish(self, comparison: Comparison) -> None:
        for stage in self._stages:
            try:
                result = stage(comparison)
            except Exception as exc:  # a broken stage passes the comparison on unchanged
                log.event("error", "stage_failed", stage=getattr(stage, "__name__", type(stage).__name__), exc_info=exc)
                continue
            if result is None:
                return
            comparison = result
        self._count(comparison)
        report: Report | None = None
        for sink in self._sinks:
            try:
                if not sink.wants(comparison):
                    continue
                if report is None:  # redacted once, for every sink that wants it
                    report = self.redactor.report(comparison, listed=self.listed)
                sink(report)
            except Exception as exc:  # a broken sink is reported, never raised into the proxy
                log.event("error", "sink_failed", sink=sink.name, exc_info=exc)

    def _count(self, comparison: Comparison) -> None:
        metrics, outcome = self._metrics, comparison.outcome
        if comparison.lane != SHADOW:
            if comparison.lane in AA_LANES:  # evidence, not an outcome
                label = _AA_OUTCOMES.get(outcome, "differ")
                metrics.aa_comparisons.labels(comparison.lane, label).inc()
            return
        route = comparison.request.route
        metrics.mirrored.labels(route).inc()  # with its outcome, so the two always agree
        metrics.comparisons.labels(route, outcome).inc()
        if outcome != NOISE:
            for difference in comparison.differences:
                metrics.differences.labels(route, difference.part).inc()
        for side in comparison.oversized:
            metrics.bodies_too_large.labels(side).inc()
        if comparison.outcome != SHADOW_ERROR:  # nothing was compared
            metrics.compare_duration.observe(comparison.duration)

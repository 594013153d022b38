"""Where a Comparison goes: metrics and the JSON log, each sink isolated.

A sink that fails is logged and skipped; it never takes the proxy or the other
sinks down with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shadowdiff import log
from shadowdiff.compare import Comparison
from shadowdiff.compare.model import MISMATCH, SHADOW_ERROR
from shadowdiff.metrics import Metrics

Sink = Callable[[Comparison, float], None]


class Publisher:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = tuple(sinks)

    def publish(self, comparison: Comparison, duration: float) -> None:
        for sink in self._sinks:
            try:
                sink(comparison, duration)
            except Exception as exc:  # a broken sink is reported, never raised into the proxy
                log.event("error", "sink_failed", sink=getattr(sink, "__name__", repr(sink)), exc_info=exc)


def metrics_sink(metrics: Metrics) -> Sink:
    def record(comparison: Comparison, duration: float) -> None:
        route = comparison.exchange.request.route
        metrics.comparisons.labels(route, comparison.outcome).inc()
        for difference in comparison.differences:
            metrics.differences.labels(route, difference.part).inc()
        metrics.compare_duration.observe(duration)

    record.__name__ = "metrics"
    return record


def log_sink(comparison: Comparison, duration: float) -> None:
    """One JSON line per mismatch (and, at debug level, per shadow error)."""
    if comparison.outcome == MISMATCH:
        level = "warning"
    elif comparison.outcome == SHADOW_ERROR and log.enabled("debug"):
        level = "debug"
    else:
        return
    exchange = comparison.exchange
    request, primary, shadow = exchange.request, exchange.primary, exchange.shadow
    fields = {
        "request_id": request.request_id,
        "method": request.method,
        "route": request.route,
        "path": request.path,
        "primary_status": primary.status,
        "shadow_status": shadow.status,
        "primary_ms": round(primary.elapsed * 1000, 3),
        "shadow_ms": round(shadow.elapsed * 1000, 3),
    }
    if comparison.outcome == SHADOW_ERROR:
        log.event(level, "shadow_error", **fields, error=shadow.error, detail=shadow.detail)
        return
    fields["differences"] = [
        {"part": d.part, "path": d.path, "kind": d.kind, "primary": d.primary, "shadow": d.shadow}
        for d in comparison.differences
    ]
    log.event(level, "mismatch", **fields)

"""The sinks a comparison can reach: today the JSON log."""

from __future__ import annotations

from typing import Any

from shadowdiff import log
from shadowdiff.model import MISMATCH, SHADOW, SHADOW_ERROR, Comparison
from shadowdiff.publish.redact import Report


class LogSink:
    """One JSON line per shadow mismatch (and, at debug level, per shadow error).

    The line's `primary_*` / `shadow_*` fields and each difference's `primary` and
    `shadow` values are the contract's names for the control and the shadow lane.
    Each difference carries its `verdict` once the noise stage judged it. The line
    lists compare.max_differences differences at most: `differences_found` says how
    many the comparison held when there were more, and `listing_cut` that the engine
    itself stopped looking (past its MAX_FOUND).
    Lines go through the log's own bounded writer thread, so this sink never waits.
    """

    name = "log"

    def wants(self, comparison: Comparison) -> bool:
        if comparison.lane != SHADOW:
            return False
        return comparison.outcome == MISMATCH or (comparison.outcome == SHADOW_ERROR and log.enabled("debug"))

    def __call__(self, report: Report) -> None:
        comparison = report.comparison
        control, shadow = comparison.control, comparison.candidate
        fields: dict[str, Any] = {
            "request_id": report.request_id,
            "method": comparison.request.method,
            "route": report.route,
            "path": report.path,
            "query": report.query,
            "primary_status": control.status,
            "shadow_status": shadow.status,
            "primary_ms": round(control.elapsed * 1000, 3),
            "shadow_ms": round(shadow.elapsed * 1000, 3),
        }
        if comparison.outcome == SHADOW_ERROR:
            log.event("debug", "shadow_error", **fields, error=shadow.error, detail=shadow.detail[:300])
            return
        listed = report.differences
        fields["differences"] = [difference_fields(d) for d in listed]
        for entry, verdict in zip(fields["differences"], report.verdicts):
            entry["verdict"] = verdict
        if report.found > len(listed):
            fields["differences_found"] = report.found
        if comparison.cut:
            fields["listing_cut"] = True
        log.event("warning", "mismatch", **fields)


def difference_fields(d: Any) -> dict[str, Any]:
    """A (redacted) difference as the log line shows it."""
    return {"part": d.part, "path": d.path, "kind": d.kind, "primary": d.control, "shadow": d.candidate}

"""Where a Comparison goes: metrics and the JSON log, each sink isolated.

A sink that fails is logged and skipped; it never takes the proxy or the other
sinks down with it. The log sink is the one place values leave the process, so
redaction and truncation happen there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shadowdiff import log
from shadowdiff.compare import Comparison, Difference
from shadowdiff.compare import paths as field_paths
from shadowdiff.compare.model import MISMATCH, SHADOW_ERROR
from shadowdiff.config import LoggingConfig
from shadowdiff.metrics import Metrics

Sink = Callable[[Comparison, float], None]
REDACTED = "[REDACTED]"


class Publisher:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = tuple(sinks)

    def publish(self, comparison: Comparison, duration: float) -> None:
        for sink in self._sinks:
            try:
                sink(comparison, duration)
            except Exception as exc:  # a broken sink is reported, never raised into the proxy
                log.event("error", "sink_failed", sink=type(sink).__name__, exc_info=exc)


def metrics_sink(metrics: Metrics) -> Sink:
    def record(comparison: Comparison, duration: float) -> None:
        route = comparison.exchange.request.route
        metrics.comparisons.labels(route, comparison.outcome).inc()
        for difference in comparison.differences:
            metrics.differences.labels(route, difference.part).inc()
        for upstream in comparison.oversized:
            metrics.bodies_too_large.labels(upstream).inc()
        metrics.compare_duration.observe(duration)

    return record


class Redactor:
    """Hides configured header values and body fields, and shortens long values."""

    def __init__(self, config: LoggingConfig) -> None:
        self._headers = frozenset(name.lower() for name in config.redact_headers)
        self._fields = frozenset(name.lower() for name in config.redact_fields)
        self._max = config.max_value_chars
        names = "|".join(re.escape(name) for name in sorted(self._fields))
        # name, an optional closing quote, : or =, then the value: quoted (with escapes) or bare.
        value = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&,;}]+)"""
        self._text_fields = (
            re.compile(rf"""((?:{names})["']?\s*[:=]\s*){value}""", re.IGNORECASE) if names else None
        )

    def difference(self, d: Difference) -> dict[str, Any]:
        secret = self._is_secret(d)
        primary, shadow = d.primary, d.shadow
        if d.part == "body":  # text lines, excerpts of non-JSON bodies, string values
            primary, shadow = self._scrub_text(primary), self._scrub_text(shadow)
        return {
            "part": d.part,
            "path": d.path,
            "kind": d.kind,
            "primary": self._value(primary, secret),
            "shadow": self._value(shadow, secret),
        }

    def _scrub_text(self, value: Any) -> Any:
        """`password=x`, `"token": "y"`, `api_key: z` in text keep their name, lose their value."""
        if not isinstance(value, str) or self._text_fields is None:
            return value
        return self._text_fields.sub(lambda m: m.group(1) + REDACTED, value)

    def _is_secret(self, d: Difference) -> bool:
        if d.part == "header":
            name, _, cookie = d.path.partition(":")
            return name in self._headers and not cookie  # set-cookie:NAME says only "set"
        if d.part == "body" and d.path.startswith("$"):
            try:
                segments = field_paths.parse(d.path)
            except field_paths.PathError:
                return False
            return any(isinstance(s, str) and s.lower() in self._fields for s in segments)
        return False

    def _value(self, value: Any, secret: bool) -> Any:
        if value is None:
            return None
        if secret:
            return REDACTED
        if isinstance(value, (dict, list)):
            value = self._scrub(value)
            try:
                text = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:  # nested past orjson's limit
                return "<value too deeply nested to log>"
            return value if len(text) <= self._max else self._cut(text)
        if isinstance(value, str):
            return self._cut(value)
        return value

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k.lower() in self._fields else self._scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        return value

    def _cut(self, text: str) -> str:
        return text if len(text) <= self._max else text[: self._max] + f"...(+{len(text) - self._max} chars)"


class LogSink:
    """One JSON line per mismatch (and, at debug level, per shadow error)."""

    def __init__(self, config: LoggingConfig) -> None:
        self._redactor = Redactor(config)

    def __call__(self, comparison: Comparison, duration: float) -> None:
        if comparison.outcome == MISMATCH:
            level = "warning"
        elif comparison.outcome == SHADOW_ERROR and log.enabled("debug"):
            level = "debug"
        else:
            return
        exchange = comparison.exchange
        request, primary, shadow = exchange.request, exchange.primary, exchange.shadow
        fields: dict[str, Any] = {
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
        fields["differences"] = [self._redactor.difference(d) for d in comparison.differences]
        log.event(level, "mismatch", **fields)

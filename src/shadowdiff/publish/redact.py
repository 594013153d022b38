"""Redaction and truncation: what a comparison may say once it leaves the process.

The publish pipeline calls `Redactor.report()` once per comparison that some sink
will write, before the fan-out: every sink (the log today, the store and the
recorder tomorrow) gets the same redacted `Report`, and none redacts on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from shadowdiff.compare import paths as field_paths
from shadowdiff.config import LoggingConfig
from shadowdiff.model import Comparison, Difference

REDACTED = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class Report:
    """A comparison as sinks may write it.

    `comparison` is there for what is not a value (route, outcome, statuses, timings,
    request id); its raw differences and bodies are never to be written. What a sink
    writes of the differences comes from `differences`: redacted, values cut.
    """

    comparison: Comparison
    differences: tuple[Difference, ...]


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

    def report(self, comparison: Comparison) -> Report:
        return Report(comparison, tuple(self.difference(d) for d in comparison.differences))

    def difference(self, d: Difference) -> Difference:
        """`d` with its values redacted and cut."""
        secret = self._is_secret(d)
        control, candidate = d.control, d.candidate
        if d.part == "body":  # text lines, excerpts of non-JSON bodies, string values
            control, candidate = self._scrub_text(control), self._scrub_text(candidate)
        return Difference(d.part, d.path, d.kind, self._value(control, secret), self._value(candidate, secret))

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

"""The vocabulary of an experiment: an exchange, its differences, its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shadowdiff.forward import CapturedRequest, Observation

MATCH = "match"
MISMATCH = "mismatch"
IGNORED = "ignored"
SHADOW_ERROR = "shadow_error"


@dataclass(slots=True)  # built per request: not frozen (1 us cheaper), never mutated
class Exchange:
    """One request and what each upstream answered to it."""

    request: CapturedRequest
    primary: Observation
    shadow: Observation


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the shadow's answer differs from the primary's.

    `part` is status, header or body; `path` is `$.a.b[0]` for JSON bodies, the
    header name for headers; `kind` is changed, added, removed or type_changed.
    """

    part: str
    path: str
    kind: str
    primary: Any
    shadow: Any


@dataclass(slots=True)  # built per request: not frozen (1 us cheaper), never mutated
class Comparison:
    """The verdict on one exchange.

    Outcome is mismatch if any difference counts, ignored if differences existed
    and rules excused all of them, match if there were none, shadow_error if the
    shadow gave nothing to compare. `oversized` names the sides whose decoded
    body passed compare.max_decoded_bytes (compared as sent instead).
    """

    exchange: Exchange
    outcome: str
    differences: tuple[Difference, ...] = ()
    oversized: tuple[str, ...] = ()

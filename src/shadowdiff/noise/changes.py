"""How the statistics summarise a changed value: numbers by how far they moved, strings and
flags by what they changed from and to, any value cut to a bounded size.

Numbers are JSON numbers (int or float, never bool) and strings written as JSON numbers (what
`compare.numbers.loggable()` makes of exact values: big integers, long decimals), read with
`Decimal` so that no precision is lost. A string of digits the service sends as a string
counts as a number too: the statistics cannot tell it from an exact number, and the
distribution of its change is what a reader wants from it anyway.

Buckets are fixed (bounded, mergeable across workers by adding); a change lands in the first
bucket whose upper bound it does not pass, else in the last, open one:
- absolute |b - a|: <=1e-06, <=0.001, <=0.01, <=0.1, <=1, <=10, <=100, <=1000, <=1e+06, >1e+06
- relative |b - a| / |a|: <=0.0001, <=0.001, <=0.01, <=0.05, <=0.1, <=0.2, <=0.5, <=1, >1
  (a change from 0 is relatively infinite: it lands in >1).
"""

from __future__ import annotations

import bisect
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

ABSOLUTE_BOUNDS = (1e-6, 1e-3, 0.01, 0.1, 1, 10, 100, 1000, 1e6)
RELATIVE_BOUNDS = (1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 1)
_ABSOLUTE = tuple(Decimal(repr(b)) for b in ABSOLUTE_BOUNDS)
_RELATIVE = tuple(Decimal(repr(b)) for b in RELATIVE_BOUNDS)


def labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """Bucket labels: one `<=bound` per bound, then `>last`."""
    return (*(f"<={b:g}" for b in bounds), f">{bounds[-1]:g}")


ABSOLUTE_LABELS = labels(ABSOLUTE_BOUNDS)
RELATIVE_LABELS = labels(RELATIVE_BOUNDS)

# Kept values: examples cut to EXAMPLE_CHARS, transitions to TRANSITION_CHARS, at most
# MAX_TRANSITIONS distinct ones per path (more go to "other").
EXAMPLE_CHARS = 200
TRANSITION_CHARS = 40
MAX_TRANSITIONS = 10
CUT = "…"

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def number(value: Any) -> Decimal | None:
    """`value` as an exact number, or None when it is not one (bools, NaN and infinities are not)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, float):
            exact = Decimal(repr(value))
        elif isinstance(value, Decimal):
            exact = value
        elif isinstance(value, str) and len(value) <= 400 and _JSON_NUMBER.fullmatch(value):
            exact = Decimal(value)
        else:
            return None
    except (InvalidOperation, ValueError):
        return None
    return exact if exact.is_finite() else None


def buckets(before: Decimal, after: Decimal) -> tuple[int, int, Decimal]:
    """(absolute bucket, relative bucket, |after - before|) of one numeric change."""
    change = abs(after - before)
    absolute = bisect.bisect_left(_ABSOLUTE, change)
    relative = len(_RELATIVE) if before == 0 else bisect.bisect_left(_RELATIVE, change / abs(before))
    return absolute, relative, change


def transition_value(value: Any) -> str | bool | None:
    """What a transition keeps of a string or a flag (strings cut); None for any other value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= TRANSITION_CHARS else value[: TRANSITION_CHARS - 1] + CUT
    return None


def example_value(value: Any) -> Any:
    """A value as an example keeps it: as it is if its JSON is short, else its JSON text cut."""
    if isinstance(value, str):
        return value if len(value) <= EXAMPLE_CHARS else value[: EXAMPLE_CHARS - 1] + CUT
    if value is None or isinstance(value, (bool, int, float)):
        return value if not isinstance(value, int) or -(2**63) <= value < 2**64 else example_value(str(value))
    try:
        text = orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:  # nested past orjson's limit, or a key it cannot write
        text = str(value)[: EXAMPLE_CHARS + 1]
    if len(text) <= EXAMPLE_CHARS:
        return orjson.loads(text)  # plain JSON data, whatever the value held (a Decimal, a tuple)
    return text[: EXAMPLE_CHARS - 1] + CUT

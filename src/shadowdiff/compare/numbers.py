"""JSON numbers by their exact value, and JSON values that any sink can write.

orjson reads an integer past 64 bits or a decimal with more digits than a double
holds as the nearest double: `12345678901234567890123` and `...124` would compare
equal, and so would `0.1000000000000000055511151231257827` and `0.1`; `1e400` it
refuses. A cheap C-level scan of the raw bytes (`needs_exact()`: a run of 16 or more
digits, or an exponent of 3 digits) finds the documents where that can happen; only
those are parsed by `loads_exact()`, every number as a `Decimal` (exact, and `1` and
`1.0` stay equal; `sort_key` makes equal values sort alike for unordered arrays).
Documents whose numbers all fit keep orjson's speed.

`loggable()` makes a value safe to carry in a Difference: depth-bounded (deeper
levels become a short placeholder string, so pickle, orjson and redaction never
recurse deeply) and with every number orjson cannot write (a `Decimal`, an integer
past 64 bits) given as its exact text, a str.
"""

from __future__ import annotations

import decimal
import json
import re
from decimal import Decimal
from typing import Any

NUMBER = (int, float, Decimal)
# Values in a Difference are cut below this many levels (see loggable()).
MAX_VALUE_DEPTH = 32
DEEPER = f"<nested deeper than {MAX_VALUE_DEPTH}>"

# 16+ digits (dots allowed among them: a 16-significant-digit decimal), or a 3-digit
# exponent: the only shapes a double can get wrong. Digits inside strings also match;
# that costs the slower parse, never a wrong answer. Found with bytes.translate and
# substring searches (C, ~20 us for 64 KiB): a regex takes ~80 ns a byte on digits.
_INEXACT = re.compile(rb"[0-9][0-9.]{16}|[eE][-+]?[0-9]{3}")  # the same, for one number's text
_SIGNS = (b"0" * 17, b"e000", b"e+000")
# digits and '.' -> '0', e/E -> 'e', +/- -> '+', anything else -> ' ' (a separator)
_SHAPE_TABLE = bytes(
    ord("0") if c in b"0123456789." else ord("e") if c in b"eE" else ord("+") if c in b"+-" else ord(" ") for c in range(256)
)
_INT64 = (-(2**63), 2**64)  # what orjson (and so the log) writes as an integer
# Tolerances on numbers any size: no rounding surprises, no Overflow for 1e999999999.
_CONTEXT = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.InvalidOperation])


_FAST = (float, int)
_EXACT_INT = 2**53


class NotJSON(ValueError):
    """The text is not JSON (NaN and Infinity included: JSON has no such numbers)."""


def needs_exact(raw: bytes) -> bool:
    """Whether a document may hold a number a double cannot represent exactly."""
    shapes = raw.translate(_SHAPE_TABLE)
    return any(sign in shapes for sign in _SIGNS)


def _constant(name: str) -> Any:
    raise NotJSON(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal, parse_constant=_constant)


def loads_exact(raw: bytes) -> Any:
    """Parse JSON keeping every number exact. Raises NotJSON, or RecursionError if nested too deep."""
    try:
        text = raw.decode("utf-8")
        return _DECODER.decode(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJSON(str(exc)) from None
    except decimal.InvalidOperation:  # an exponent past 10**18 digits: compared as text
        raise NotJSON("a number past Decimal's exponent range") from None


def is_number(value: Any) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool)


def within(a: Any, b: Any, absolute: float, relative: float) -> bool:
    """|a - b| <= max(absolute, relative * max(|a|, |b|)), exactly for numbers of any size."""
    if type(a) in _FAST and type(b) in _FAST and -_EXACT_INT < a < _EXACT_INT and -_EXACT_INT < b < _EXACT_INT:
        return abs(a - b) <= max(absolute, relative * max(abs(a), abs(b)))  # doubles (and ints a double holds)
    with decimal.localcontext(_CONTEXT):
        x, y = Decimal(a), Decimal(b)  # exact from an int, a float or a Decimal
        return abs(x - y) <= max(Decimal(absolute), Decimal(relative) * max(abs(x), abs(y)))


def sort_key(value: Any) -> Any:
    """orjson's `default=` for sort keys: a Decimal as the text of its value (`2` and `2.0` alike)."""
    if isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)  # a precision that rounds nothing away
        return str(value.normalize(decimal.Context(prec=digits, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)))
    raise TypeError(f"{type(value).__name__} is not JSON")


def loggable(value: Any, depth: int = MAX_VALUE_DEPTH) -> Any:
    """`value` with levels past `depth` replaced by DEEPER and exact numbers as text (str).

    A number a double cannot hold exactly (more digits than a double, `1e400`) or an
    integer past 64 bits is given as the text of its exact value (`str(Decimal)`: the
    literal's digits, `1E+400` for `1e400`): orjson, and so the log, cannot write either
    as a number. Other numbers of an exactly parsed document come back as int or float.
    Returns `value` itself when nothing needed changing.
    """
    if isinstance(value, (str, bool, float)) or value is None:
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value < _INT64[1] else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if depth <= 0:
        return DEEPER if isinstance(value, (dict, list)) and value else value
    if isinstance(value, dict):
        out = {key: loggable(item, depth - 1) for key, item in value.items()}
        return value if all(out[key] is item for key, item in value.items()) else out
    if isinstance(value, list):
        items = [loggable(item, depth - 1) for item in value]
        return value if all(new is old for new, old in zip(items, value)) else items
    return value


def _decimal(value: Decimal) -> int | float | str:
    """An exact-path number as the log would write it: an int or a float when that is exact, else its text."""
    text = str(value)
    if not value.is_finite():
        return text
    if value.as_tuple().exponent == 0 and _INT64[0] <= value < _INT64[1]:
        return int(value)
    if _INEXACT.search(text.encode()) is None and "E" not in text:
        return float(value)  # few digits, no exponent: the float prints as the same number
    return text

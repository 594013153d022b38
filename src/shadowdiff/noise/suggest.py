"""A suggested compare rule for a noise path, as YAML text a user pastes under `compare.rules`.

yaml is not importable here (noise/ is pure logic), so the text is built by hand: a block
mapping whose every string is a double-quoted scalar escaped as YAML reads it (printable
ASCII as it is, anything else as \\uXXXX or \\UXXXXXXXX), numbers in plain decimal notation
(PyYAML reads `1e-06` as a string). tests/noise/test_views.py parses every shape with
yaml.safe_load and validates it with config.from_mapping.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shadowdiff.compare.paths import PathError, parse
from shadowdiff.noise import changes

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A numeric noise path gets a tolerance when every change it showed was numeric and within this share.
SMALL_RELATIVE = 0.1


def quote(text: str) -> str:
    """`text` as a YAML double-quoted scalar (also a JSON string when it is plain ASCII)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _decimal(value: float) -> str:
    return format(Decimal(repr(float(value))), "f")


def _template(route: str) -> bool:
    """Whether `route` can stand in a rule's `routes` (config checks the same)."""
    return route.startswith("/") and not any(c.isspace() or not c.isprintable() for c in route)


def tolerance_bound(numeric: dict[str, Any] | None, non_numeric: int) -> float | None:
    """The `absolute` of a tolerance rule for a path whose changes were all numeric and small
    (every one within SMALL_RELATIVE of its value, none in the open absolute bucket): the upper
    bound of the largest absolute bucket that holds any; else None."""
    if numeric is None or non_numeric:
        return None
    absolute, relative = numeric["absolute"], numeric["relative"]
    if not any(absolute) or absolute[-1]:
        return None
    small = changes.RELATIVE_BOUNDS.index(SMALL_RELATIVE) + 1
    if any(relative[small:]):
        return None
    largest = max(i for i, n in enumerate(absolute) if n)
    return float(changes.ABSOLUTE_BOUNDS[largest])


def rule(route: str, part: str, path: str, evidence: str, *, numeric: dict[str, Any] | None, non_numeric: int) -> str | None:
    """The YAML of a rule that would excuse this noise path on `route`, or None when no rule kind
    fits (status, text lines, a path a rule cannot name, a route that is no template)."""
    if not _template(route):
        return None
    reason = f"differs between two answers of the primary: {evidence}"
    if part == "body" and path.startswith("$") and path != "$":
        try:
            parse(path)
        except PathError:
            return None
        bound = tolerance_bound(numeric, non_numeric)
        if bound is not None:
            lines = ['kind: "tolerance"', f"path: {quote(path)}", f"absolute: {_decimal(bound)}"]
        else:
            lines = ['kind: "ignore"', f"path: {quote(path)}"]
    elif part == "header":
        name = path.partition(":")[0]  # set-cookie:NAME is the set-cookie header
        if not name or not set(name) <= _TOKEN:
            return None
        lines = ['kind: "ignore_header"', f"header: {quote(name)}"]
    else:
        return None
    lines += [f"routes: [{quote(route)}]", f"reason: {quote(reason)}"]
    return "\n".join(lines) + "\n"

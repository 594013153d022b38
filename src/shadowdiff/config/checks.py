"""Checks for config values: each returns an error message (or a list of them) or None.

`bound_problem()` bounds every numeric key by what its name says it measures;
`mask_credentials()` keeps a password out of any message about an upstream URL.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable

from yarl import URL

SECRET_MASK = "**********"

# Upper bounds by what a numeric key measures, read from its name (tests/config checks
# that every numeric key is one of these): durations (`*timeout`, `*cooldown`, `*_window`) in
# seconds, sizes (`*_bytes`), and counts (every other whole number). Past them a value
# is a typo, not a setting, and would overflow later (a timer, an allocation).
MAX_SECONDS = 86_400  # a day
MAX_BYTES = 1 << 40  # 1 TiB
MAX_COUNT = 1_000_000


def bound_problem(name: str, value: float) -> str | None:
    """The upper bound a numeric key `name` has by what it measures (see MAX_SECONDS), broken or not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name.endswith(("timeout", "cooldown", "_window")):
        limit, unit = MAX_SECONDS, " seconds (a day)"
    elif name.endswith("_bytes"):
        limit, unit = MAX_BYTES, " bytes (1 TiB)"
    elif isinstance(value, int):
        limit, unit = MAX_COUNT, ""
    else:
        return None  # fractions and tolerances: their own checks
    if value <= limit:
        return None
    shown = str(value) if isinstance(value, float) or value.bit_length() < 80 else f"a number of {value.bit_length()} bits"
    return f"must be at most {limit}{unit}, got {shown}"


def mask_credentials(text: str) -> str:
    """`text` (a message, a URL yarl may not even parse) with, on each line, everything before
    the last `@` masked from the last `//` before it (or, without one, from the start of the
    word holding it):
    an error message about an upstream URL never prints its password, even one with quotes,
    spaces or `@` in it."""
    lines = []
    for line in text.split("\n"):
        at = line.rfind("@")
        if at >= 0:
            scheme = line.rfind("//", 0, at)  # masking too much of a message beats printing a password
            start = scheme + 2 if scheme >= 0 else max(line.rfind(c, 0, at) for c in " '\"{(=") + 1
            line = line[:start] + SECRET_MASK + line[at:]
        lines.append(line)
    return "\n".join(lines)


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value}"


def fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be between 0 and 1, got {value}"


def upstream_url(value: str) -> str | None:
    try:
        url = URL(value)
    except ValueError as exc:
        return f"not a valid URL ({exc}): {value!r}"
    if url.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {value!r}"
    if not url.host:
        return f"must name a host, got {value!r}"
    if url.query_string or url.fragment:
        return f"must not carry a query or fragment, got {value!r}"
    return None


def header_name(value: str) -> str | None:
    allowed = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if value and set(value) <= allowed:
        return None
    return f"must be an HTTP header name, got {value!r}"


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def http_methods(value: tuple[str, ...]) -> str | None:
    bad = [m for m in value if not m.isalpha() or m != m.upper()]
    return f"must be upper-case HTTP method names, got {bad}" if bad else None


def route_templates(value: tuple[str, ...]) -> str | None:
    bad = [t for t in value if not t.startswith("/")]
    if bad:
        return f"templates must start with '/', got {bad}"
    # A template is a metric label and a log field as it is: printable, no spaces.
    unprintable = [t for t in value if any(c.isspace() or not c.isprintable() for c in t)]
    return f"templates must not hold spaces or control characters, got {unprintable}" if unprintable else None


def json_path(value: str) -> str | None:
    from shadowdiff.compare.paths import PathError, parse

    try:
        parse(value)
    except PathError as exc:
        return str(exc)
    return None


def regex(value: str) -> str | None:
    """A user's regex must run on RE2 (linear time): see shadowdiff.compare.patterns."""
    from shadowdiff.compare.patterns import PatternError, check

    try:
        check(value)
    except PatternError as exc:
        return str(exc)
    return None


def regexes(value: tuple[str, ...]) -> list[str]:
    """Each entry a pattern RE2 can run; problems name the entry."""
    return [f"[{index}]: {message}" for index, pattern in enumerate(value) if (message := regex(pattern))]


def networks(value: tuple[str, ...]) -> list[str]:
    """Each entry an IP network in CIDR form (or one address); problems name the entry."""
    out = []
    for index, entry in enumerate(value):
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            out.append(f"[{index}]: not an IP network in CIDR form ({exc}): {entry!r}")
    return out


def lower_names(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if header_name(v)]
    return f"must be header names, got {bad}" if bad else None

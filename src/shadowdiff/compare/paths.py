"""Field paths in `$.a.b[*].c` syntax: parsing patterns, matching, formatting.

A concrete path is a tuple of keys (str) and indexes (int). A pattern is a tuple
of segments: a key, an index, `ANY_INDEX` (`[*]`) or `ANY_KEY` (`.*`).
Keys that are not identifiers are written `['odd key']`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence


class Wildcard(enum.Enum):
    """Pattern segments that match any index or any key (never a key named "[*]")."""

    ANY_INDEX = "[*]"
    ANY_KEY = ".*"


ANY_INDEX = Wildcard.ANY_INDEX
ANY_KEY = Wildcard.ANY_KEY

Pattern = tuple[str | int | Wildcard, ...]

_TOKEN = re.compile(
    r"""\.(?P<key>[A-Za-z_$@][\w$@-]*)      # .name
      | \.(?P<star>\*)                     # .*
      | \[(?P<index>\d+)\]                  # [3]
      | \[(?P<all>\*)\]                     # [*]
      | \[(?P<q>['"])(?P<quoted>(?:\\.|(?!(?P=q)).)*)(?P=q)\]   # ['odd key'], \' and \\ escaped
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_$@][\w$@-]*")


class PathError(ValueError):
    pass


def parse(text: str) -> Pattern:
    """`$.items[*].id` -> ("items", ANY_INDEX, "id"). Raises PathError."""
    if not text.startswith("$"):
        raise PathError(f"must start with '$', got {text!r}")
    segments: list[str | int | Wildcard] = []
    pos = 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise PathError(f"cannot read {text[pos:]!r} in {text!r} (use $.a.b[0], [*], .* or ['key'])")
        if match["key"] is not None:
            segments.append(match["key"])
        elif match["star"] is not None:
            segments.append(ANY_KEY)
        elif match["index"] is not None:
            segments.append(int(match["index"]))
        elif match["all"] is not None:
            segments.append(ANY_INDEX)
        else:
            segments.append(_UNESCAPE.sub(r"\1", match["quoted"]))
        pos = match.end()
    return tuple(segments)


def matches(pattern: Pattern, path: Sequence[str | int]) -> bool:
    """Whether a concrete path matches a pattern exactly (same length)."""
    if len(pattern) != len(path):
        return False
    for want, have in zip(pattern, path):
        if want == ANY_INDEX:
            if not isinstance(have, int):
                return False
        elif want == ANY_KEY:
            if not isinstance(have, str):
                return False
        elif want != have or type(want) is not type(have):
            return False
    return True


def format_path(path: Sequence[str | int]) -> str:
    """("items", 0, "id") -> "$.items[0].id"."""
    out = ["$"]
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _IDENTIFIER.fullmatch(segment):
            out.append(f".{segment}")
        else:
            out.append("['" + segment.replace("\\", "\\\\").replace("'", "\\'") + "']")
    return "".join(out)

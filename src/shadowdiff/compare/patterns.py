"""Regular expressions a user writes (mask rules), run on RE2: linear in the text, always.

Python's `re` backtracks: a pattern with nested quantifiers (`(a+)+$`, the kind copied
from the web) takes exponential time on a short string that almost matches, and it
would run on the event loop. RE2 (`google-re2`) never backtracks; the price is that it
refuses what needs backtracking (backreferences `\\1`, lookaround `(?=`, `(?<!`,
possessive and atomic groups) and that its `\\d`, `\\w`, `\\s` and `\\b` are ASCII-only.

A `UserPattern` pickles as its text and compiles again in the process that unpickles
it (the comparison worker): a compiled RE2 object is a C++ one. `sub()` drives
google-re2's pybind11 `RE2` object directly (one C call per match, on UTF-8 bytes):
the package's Python-level `sub()` costs ~15 us a match, ten times more
(tests/compare/test_patterns.py pins what is used).
"""

from __future__ import annotations

import functools

import re2
from re2 import _re2

from shadowdiff.compare.budget import UNBOUNDED, Budget

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED

MAX_PATTERN_CHARS = 10_000  # RE2 would take longer ones; a config has no use for them

_HINT = (
    "RE2 runs in linear time and so has no backreferences (\\1), lookahead or lookbehind "
    "((?=, (?!, (?<=, (?<!), atomic or possessive groups, or \\Z (use \\z): rewrite the "
    "pattern without them (a mask usually needs none: match the volatile part itself)"
)


class PatternError(ValueError):
    """RE2 cannot run this pattern; the message says why and how to fix it."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error reaches the user once, as our message, not on stderr too
    options.never_capture = True  # a mask replaces whole matches: no groups to extract
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re2._Regexp:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"RE2 cannot run this pattern ({reason}); {_HINT}") from None


def check(pattern: str) -> None:
    """Raise PatternError if RE2 cannot run `pattern`."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    _compiled(pattern)


class UserPattern:
    """A checked user pattern; `sub()` replaces every match, in time linear in the text."""

    __slots__ = ("_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        check(pattern)
        self.pattern = pattern
        self._regex = _compiled(pattern)._regexp  # the pybind11 RE2 object (see the module's docstring)

    def sub(self, replacement: str, text: str, budget: Budget = UNBOUNDED) -> str:
        """`text` with every match replaced by `replacement` (taken literally: no group references).
        Budget steps: one per call, and per match three, plus one per 4 KiB of text (each C call is
        handed the whole text again)."""
        budget.spend(2 + len(text) // 4096)
        data = text.encode("utf-8", "surrogatepass")
        end = len(data)
        match = self._regex.Match
        (start, stop), *_ = match(_UNANCHORED, data, 0, end)
        if start < 0:  # the common case: one C call
            return text
        pieces, kept, new = [], 0, replacement.encode("utf-8", "surrogatepass")
        per_match = 3 + end // 4096
        while start >= 0:
            budget.spend(per_match)
            pieces += (data[kept:start], new)
            kept = pos = stop
            if stop == start:  # an empty match: step over one whole character
                pos += 1
                while pos < end and data[pos] & 0xC0 == 0x80:
                    pos += 1
                if pos > end:
                    break
            (start, stop), *_ = match(_UNANCHORED, data, pos, end)
        pieces.append(data[kept:])
        return b"".join(pieces).decode("utf-8", "surrogatepass")

    def spans(self, data: bytes, pos: int) -> list[tuple[int, int]]:
        """The next match in UTF-8 `data` from byte `pos`: (start, end) of the match and of each
        group, (-1, -1) for a group that took no part; [(-1, -1), ...] when there is none."""
        return self._regex.Match(_UNANCHORED, data, pos, len(data))

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text` (one C call: ~1 us, where google-re2's
        own `search()` costs ~5)."""
        data = text.encode("utf-8", "surrogatepass")
        (start, _), *_ = self._regex.Match(_UNANCHORED, data, 0, len(data))
        return start >= 0

    def __reduce__(self) -> tuple[type[UserPattern], tuple[str]]:
        return (UserPattern, (self.pattern,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"UserPattern({self.pattern!r})"

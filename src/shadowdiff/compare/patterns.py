"""Regular expressions a user writes (mask rules), run on RE2: linear in the text, always.

Python's `re` backtracks: a pattern with nested quantifiers (`(a+)+$`, the kind copied
from the web) takes exponential time on a short string that almost matches, and it
would run on the event loop. RE2 (`google-re2`) never backtracks; the price is that it
refuses what needs backtracking (backreferences `\\1`, lookaround `(?=`, `(?<!`,
possessive and atomic groups) and that its `\\d`, `\\w`, `\\s` and `\\b` are ASCII-only.

A `UserPattern` pickles as its text and compiles again in the process that unpickles
it (the comparison worker): a compiled RE2 object is a C++ one.
"""

from __future__ import annotations

import functools

import re2

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

    __slots__ = ("pattern", "_regex")

    def __init__(self, pattern: str) -> None:
        check(pattern)
        self.pattern = pattern
        self._regex = _compiled(pattern)

    def sub(self, replacement: str, text: str) -> str:
        """`text` with every match replaced by `replacement` (taken literally: no group references)."""
        regex = self._regex
        if regex.search(text) is None:  # the common case, and a third of the cost of sub()
            return text
        return regex.sub(lambda _match: replacement, text)

    def __reduce__(self) -> tuple[type[UserPattern], tuple[str]]:
        return (UserPattern, (self.pattern,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"UserPattern({self.pattern!r})"

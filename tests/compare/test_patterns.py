"""User regexes on RE2: what it runs, what it refuses, and that a rule set survives pickling."""

from __future__ import annotations

import pickle
import time

import pytest

from shadowdiff.compare.patterns import PatternError, UserPattern, check
from shadowdiff.compare.rules import MASKED, compile_rules
from tests.compare.test_engine import rule


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"foo(?=bar)", r"foo(?!bar)", r"(?<=x)y", r"(?<!x)y", r"a++", r"(?>a+)b", r"end\Z", "[unclosed"],
)
def test_patterns_re2_cannot_run_are_refused_with_a_hint(pattern: str) -> None:
    """Backreferences, lookaround, possessive/atomic groups, \\Z and broken syntax raise PatternError saying RE2."""
    with pytest.raises(PatternError, match="RE2 cannot run this pattern .*rewrite the pattern"):
        check(pattern)


def test_nested_quantifiers_run_in_linear_time() -> None:
    """`(a+)+$` on 30 a's and a mismatch (exponential for a backtracking engine) is masked in well under a second."""
    started = time.perf_counter()
    out = UserPattern(r"(a+)+$").sub(MASKED, "a" * 30 + "!")
    assert time.perf_counter() - started < 0.5  # generous: RE2 takes microseconds, `re` takes minutes
    assert out == "a" * 30 + "!"
    assert UserPattern(r"(a+)+$").sub(MASKED, "b" + "a" * 30) == "b" + MASKED


def test_replacement_is_literal() -> None:
    """The replacement is never read as a group reference."""
    assert UserPattern(r"(\d+)").sub(r"<\1>", "id 42") == r"id <\1>"


def test_a_rule_set_pickles_and_masks_the_same_after() -> None:
    """A compiled RuleSet crosses to the comparison worker by pickle and masks as before."""
    rules = compile_rules([rule("mask", pattern=r"[0-9a-f]{8}", path="$.id")])
    again = pickle.loads(pickle.dumps(rules))
    assert again == rules
    assert again.masks[0].regex.sub(MASKED, "id deadbeef") == f"id {MASKED}"


def test_the_pybind11_re2_api_we_drive() -> None:
    """What patterns.py uses of google-re2 beyond its public API: _re2.RE2.Match(anchor, bytes, pos, end)
    returning [(start, end)], and the compiled object's `_regexp` (a new google-re2 must keep both)."""
    import re2
    from re2 import _re2

    compiled = re2.compile("b+")._regexp
    assert isinstance(compiled, _re2.RE2)
    assert compiled.Match(_re2.RE2.Anchor.UNANCHORED, b"abbc", 0, 4)[0] == (1, 3)
    assert compiled.Match(_re2.RE2.Anchor.UNANCHORED, b"ac", 0, 2)[0] == (-1, -1)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("x*", "abxd"), ("[0-9]", "a1b22c"), ("é", "caféé!"), ("$", "ab"), ("a|", "bab"), (r"\d+", "\ud800 12"), ("", "日本")],
)
def test_sub_replaces_as_python_re_does(pattern: str, text: str) -> None:
    """Replacements, empty matches and non-ASCII text give what re.sub gives (for patterns both engines take)."""
    import re

    assert UserPattern(pattern).sub(MASKED, text) == re.sub(pattern, MASKED, text)

"""Deep nesting anywhere in a body is a difference, never a RecursionError, and what a difference
carries is shallow enough for pickle and orjson."""

from __future__ import annotations

import pickle

import orjson
import pytest

from shadowdiff.compare.numbers import DEEPER, MAX_VALUE_DEPTH
from shadowdiff.model import MISMATCH
from tests.compare.test_engine import rule, run
from tests.values import JSON, seen


def nested(levels: int, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * levels + b"1" + b"]" * levels
    return b'{"a":' * levels + b"1" + b"}" * levels


def depth(value: object) -> int:
    level = 0
    while isinstance(value, (list, dict)) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        level += 1
    return level


# (primary, shadow) with a deep subtree removed, added, changed, on both sides, on one.
def shapes(levels: int, kind: str) -> dict[str, tuple[bytes, bytes]]:
    deep, deeper = nested(levels, kind), nested(levels + 1, kind)
    return {
        "removed": (b'{"v": 1, "deep": ' + deep + b"}", b'{"v": 1}'),
        "added": (b'{"v": 1}', b'{"v": 1, "deep": ' + deep + b"}"),
        "changed": (b'{"v": 1, "deep": ' + deep + b"}", b'{"v": 1, "deep": ' + deeper + b"}"),
        "both, elsewhere changed": (b'{"v": 1, "deep": ' + deep + b"}", b'{"v": 2, "deep": ' + deep + b"}"),
        "one side is all deep": (deep, b'{"v": 1}'),
    }


CASES = [
    (levels, kind, name, exact)
    for levels in (300, 1000, 100_000)  # past orjson's encoder (255), Python's recursion limit, orjson's parser (1024)
    for kind in ("array", "object")
    for name in shapes(3, kind)
    for exact in (False, True)  # True: a big number elsewhere sends the document to the exact parser
]


@pytest.mark.parametrize(("levels", "kind", "name", "exact"), CASES)
def test_deep_subtrees_are_differences(levels: int, kind: str, name: str, exact: bool) -> None:
    """Each shape at each depth is a mismatch whose differences pickle and serialize with orjson,
    with no value deeper than MAX_VALUE_DEPTH (+1 for the placeholder)."""
    a, b = shapes(levels, kind)[name]
    if exact:
        a, b = b'{"n": 123456789012345678901234, "x": ' + a + b"}", b'{"n": 123456789012345678901234, "x": ' + b + b"}"
    comparison = run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON))
    assert comparison.outcome == MISMATCH
    assert comparison.differences
    pickle.loads(pickle.dumps(comparison.differences))
    for difference in comparison.differences:
        orjson.dumps([difference.control, difference.candidate])
        assert depth(difference.control) <= MAX_VALUE_DEPTH + 1 and depth(difference.candidate) <= MAX_VALUE_DEPTH + 1


def test_a_removed_subtree_is_cut_to_a_placeholder() -> None:
    """A removed 500-deep subtree (orjson parses it) is reported at its path, cut at MAX_VALUE_DEPTH."""
    a, b = shapes(500, "array")["removed"]
    [difference] = run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON)).differences
    assert (difference.path, difference.kind) == ("$.deep", "removed")
    value = difference.control
    for _ in range(MAX_VALUE_DEPTH):
        [value] = value
    assert value == DEEPER


@pytest.mark.parametrize("rules", [(rule("mask", pattern="1"),), (rule("unordered", path="$.deep"),), (rule("ignore", path="$.v"),)])
def test_rules_on_deep_documents_do_not_recurse(rules: tuple) -> None:
    """Masking, sorting and ignoring in a 900-deep document (parsed by orjson) end in an outcome, not an error."""
    a, b = shapes(900, "object")["both, elsewhere changed"]
    comparison = run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON), *rules)
    assert comparison.outcome in ("mismatch", "ignored")

"""Properties of the JSON comparison, checked on generated documents."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from deepdiff import DeepDiff
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.compare.body import BodyView, Limits, compare_bodies
from shadowdiff.compare.paths import format_path, matches, parse
from shadowdiff.compare.rules import EMPTY
from shadowdiff.model import Body

LIMITS = Limits(max_decoded_bytes=1 << 20, max_differences=10_000)

# Exact binary fractions: deepdiff rounds floats near zero together (0 == 2.2e-16); JSON does not.
numbers_and_text = (
    st.none() | st.integers(-(2**53), 2**53) | st.integers(-(10**6), 10**6).map(lambda n: n / 8) | st.text(max_size=8)
)
scalars = numbers_and_text | st.booleans()
any_floats = st.floats(allow_nan=False, allow_infinity=False)


def _trees(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5),
        max_leaves=30,
    )


documents = _trees(scalars)
# deepdiff and JSON disagree on True == 1 (covered by the engine's table tests): no booleans here.
documents_without_booleans = _trees(numbers_and_text)


def _view(value: Any, pretty: bool = False) -> BodyView:
    raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
    return BodyView(Body(size=len(raw), data=raw), "application/json", "")


@given(_trees(scalars | any_floats))
@settings(max_examples=200, deadline=None)
def test_any_json_value_compared_with_itself_matches(value: Any) -> None:
    """Any JSON document compared with itself (re-serialised differently) has no differences."""
    result = compare_bodies(_view(value), _view(value, pretty=True), EMPTY, LIMITS)
    assert result.differences == ()
    assert result.decoded_equal


def _deepdiff_paths(a: Any, b: Any) -> set[str]:
    """The $-paths deepdiff reports, for documents without bool/number or int/float ambiguity."""
    # Leaf paths, never "the whole dict changed"; lists by position, as $.items[3] means to a user.
    tree = DeepDiff(
        a, b, view="tree", ignore_numeric_type_changes=True, threshold_to_diff_deeper=0, zip_ordered_iterables=True
    )
    out = set()
    for changes in tree.values():
        for level in changes:
            out.add(format_path(level.path(output_format="list")))
    return out


@given(documents_without_booleans, documents_without_booleans)
@settings(max_examples=200, deadline=None)
def test_walk_finds_the_paths_deepdiff_finds(a: Any, b: Any) -> None:
    """On random pairs, the differing paths equal deepdiff's (the reference implementation)."""
    ours = {d.path for d in compare_bodies(_view(a), _view(b), EMPTY, LIMITS).differences}
    assert ours == _deepdiff_paths(orjson.loads(orjson.dumps(a)), orjson.loads(orjson.dumps(b)))


def _nested_string_leaves(value: Any) -> list[tuple]:
    return [path for path in _string_leaves(value, ()) if path]


@given(documents.filter(_nested_string_leaves))
@settings(max_examples=100, deadline=None)
def test_a_changed_leaf_is_reported_at_its_path(value: Any) -> None:
    """Changing one string leaf anywhere is reported as exactly that path."""
    leaves = _nested_string_leaves(value)
    path = leaves[len(leaves) // 2]
    changed = copy.deepcopy(value)
    _set(changed, path, "\x00changed")
    result = compare_bodies(_view(value), _view(changed), EMPTY, LIMITS)
    assert [d.path for d in result.differences] == [format_path(path)]
    assert matches(parse(format_path(path)), path)


def _string_leaves(value: Any, path: tuple):
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _string_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _string_leaves(child, (*path, index))


def _set(value: Any, path: tuple, new: Any) -> None:
    for segment in path[:-1]:
        value = value[segment]
    value[path[-1]] = new

"""JSON numbers compare by their exact value; differences carry them as text any sink can write."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from shadowdiff.compare import numbers
from shadowdiff.model import IGNORED, MATCH, MISMATCH
from tests.compare.test_engine import rule, run
from tests.values import JSON, seen


def body(number: str, extra: str = "") -> bytes:
    return ('{"id": 7, "balance": ' + number + extra + "}").encode()


def compared(a: str, b: str, *rules):
    return run(seen("primary", body(a), headers=JSON), seen("shadow", body(b), headers=JSON), *rules)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("12345678901234567890123", "12345678901234567890124"),  # past 64 bits: orjson gives equal floats
        ("0.1000000000000000055511151231257827", "0.1"),  # past a double's digits
        ("1e400", "1e401"),  # past a double's range: orjson refuses both
        ("1e400", "2"),
        ("-18446744073709551617", "-18446744073709551616"),
        ("1.0000000000000001", "1"),  # 17 significant digits
    ],
)
def test_numbers_that_differ_exactly_are_a_mismatch(a: str, b: str) -> None:
    """Numbers a double cannot tell apart are a `changed` difference, with the exact values as text."""
    comparison = compared(a, b)
    assert comparison.outcome == MISMATCH
    [difference] = comparison.differences
    assert (difference.path, difference.kind) == ("$.balance", "changed")
    assert {type(difference.control), type(difference.candidate)} <= {str, int, float}
    assert str(Decimal(str(difference.control))) == str(Decimal(a))
    assert Decimal(str(difference.candidate)) == Decimal(b)
    orjson.dumps(difference.control), orjson.dumps(difference.candidate)  # the log can write them


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("12345678901234567890123", "12345678901234567890123"),
        ("1", "1.0"),
        ("12345678901234567890123", "12345678901234567890123.000"),
        ("1e400", "10e399"),
        ("0.1000000000000000055511151231257827", "0.10000000000000000555111512312578270"),
    ],
)
def test_equal_values_in_other_spellings_match(a: str, b: str) -> None:
    """The same value written two ways (`1` and `1.0`, `1e400` and `10e399`) matches, big or not."""
    assert compared(a, b).outcome == MATCH


def test_the_slow_parse_only_runs_where_a_double_may_be_wrong() -> None:
    """needs_exact() is false for ordinary numbers and true for every shape a double can get wrong."""
    ordinary = b'{"a": 1, "b": 3.14159, "c": -2.5e-10, "d": 1234567890123456, "e": [1e99, 0.12345678901234]}'
    assert not numbers.needs_exact(ordinary)
    for text in (b"12345678901234567", b"0.1234567890123456", b"123456789012345.6", b"1e400", b"1E-400", b"1e+308"):
        assert numbers.needs_exact(b'{"a": ' + text + b"}"), text


def test_a_tolerance_compares_big_numbers_numerically() -> None:
    """Under a tolerance, exact numbers compare within it (Decimal arithmetic: no overflow, no rounding to a double)."""
    near = rule("tolerance", path="$.balance", absolute=2)
    assert compared("12345678901234567890123", "12345678901234567890124", near).outcome == IGNORED
    assert compared("12345678901234567890123", "12345678901234567890126", near).outcome == MISMATCH
    assert compared("1e400", "1.0000000001e400", rule("tolerance", relative=1e-9)).outcome == IGNORED
    assert compared("1e999999999", "2e999999999", rule("tolerance", relative=0.1)).outcome == MISMATCH
    assert compared("0.1000000000000000055511151231257827", "0.1", rule("tolerance", absolute=1e-12)).outcome == IGNORED


def test_exact_documents_keep_the_other_rules() -> None:
    """With a big number somewhere, ignore, mask and unordered rules still apply to the rest."""
    a = b'{"n": 12345678901234567890123, "at": 1, "s": "id-1", "tags": [1.5, 2, "x"]}'
    b = b'{"n": 12345678901234567890123, "at": 2, "s": "id-2", "tags": ["x", 2.0, 1.50]}'
    rules = (rule("ignore", path="$.at"), rule("mask", pattern=r"\d+", path="$.s"), rule("unordered", path="$.tags"))
    comparison = run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON), *rules)
    assert comparison.outcome == IGNORED, comparison.differences


def test_a_removed_subtree_with_big_numbers_is_writable() -> None:
    """A removed subtree holding exact numbers is carried with them as text: orjson writes it."""
    a = b'{"v": 1, "gone": {"big": 123456789012345678901234567890, "x": [0.30000000000000000001]}}'
    comparison = run(seen("primary", a, headers=JSON), seen("shadow", b'{"v": 1}', headers=JSON))
    [difference] = comparison.differences
    assert difference.control == {"big": "123456789012345678901234567890", "x": ["0.30000000000000000001"]}
    assert orjson.loads(orjson.dumps(difference.control)) == difference.control


def test_nan_and_infinity_are_not_json_numbers() -> None:
    """NaN and Infinity (which Python's json would take) stay not-JSON on the exact path too."""
    comparison = compared("NaN", "12345678901234567890123")
    assert comparison.outcome == MISMATCH
    assert comparison.differences[0].kind == "type_changed"


def test_an_exponent_past_any_range_is_compared_as_text() -> None:
    """`1e99999999999999999999` (past Decimal's exponent range) makes the body text, compared without an error."""
    comparison = compared("1e99999999999999999999", "1e99999999999999999998")
    assert comparison.outcome == MISMATCH
    assert comparison.differences[0].path == "line 1"

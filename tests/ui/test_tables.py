"""The routes table's rows and orders, and a route's fields split by verdict."""

from __future__ import annotations

import pytest

from shadowdiff.ui.tables import SORTS, ordered, route_rows, split_fields


def _route(name: str, compared: int, mismatch: int, *, noise: int = 0, primary_ms: float | None = 1.0, trend: list | None = None) -> dict:
    row = {
        "route": name, "compared": compared,
        "comparisons": {"match": compared - mismatch - noise, "mismatch": mismatch, "ignored": 0, "noise": noise, "shadow_error": 0},
        "latency": {"timed": compared, "primary_ms": primary_ms, "shadow_ms": primary_ms},
        "verdicts": {"regression": 1 if mismatch else 0, "undecided": 0, "noise": 1 if noise else 0},
    }  # fmt: skip
    if trend is not None:
        row["trend"] = trend
    return row


VIEW = {
    "routes": [
        _route("/a", 100, 10), _route("/b", 10, 10), _route("/c", 50, 5, noise=40), _route("/d", 200, 0, primary_ms=None),
        _route("/e", 300, 0),
    ],
    "trend_step": 60,
}  # fmt: skip


def test_worst_first_is_mismatch_rate_then_comparisons() -> None:
    """By default: 100% before 10% (the mismatch rate, not the count), noise not counted as mismatch,
    equal rates by most comparisons."""
    rows = ordered(route_rows(VIEW), "mismatch", True)
    assert [r.route for r in rows] == ["/b", "/a", "/c", "/e", "/d"]
    assert rows[2].mismatch_rate == 0.1 and rows[2].noise_rate == 0.8


@pytest.mark.parametrize(
    ("key", "descending", "expected"),
    [("compared", True, ["/e", "/d", "/a", "/c", "/b"]), ("compared", False, ["/b", "/c", "/a", "/d", "/e"]),
     ("route", False, ["/a", "/b", "/c", "/d", "/e"]), ("primary", True, ["/b", "/a", "/c", "/e", "/d"])],
)  # fmt: skip
def test_every_column_sorts_and_missing_values_go_last(key: str, descending: bool, expected: list[str]) -> None:
    """Each key orders by its column either way; ties keep the worst-first order; a route without a
    latency yet (None) goes last in both directions."""
    assert [r.route for r in ordered(route_rows(VIEW), key, descending)] == expected
    assert key in SORTS


def test_trends_share_one_time_axis() -> None:
    """Each route's trend is its mismatch rate per step on the axis of all routes: a route seen only in
    the last step has gaps before it."""
    view = {
        "routes": [
            _route("/old", 10, 1, trend=[{"t": "2026-12-04T10:00:00Z", "compared": 10, "mismatch": 1},
                                         {"t": "2026-12-04T10:02:00Z", "compared": 4, "mismatch": 2}]),
            _route("/new", 5, 5, trend=[{"t": "2026-12-04T10:02:00Z", "compared": 5, "mismatch": 5}]),
        ],
        "trend_step": 60,
    }  # fmt: skip
    rows = {r.route: r.trend for r in route_rows(view)}
    assert rows == {"/old": (0.1, None, 0.5), "/new": (None, None, 1.0)}


def test_a_live_view_has_no_trend() -> None:
    """Without the store the routes carry no trend: the rows' trends are empty."""
    assert all(r.trend == () for r in route_rows(VIEW))


def test_fields_split_into_changes_and_noise() -> None:
    """Regressions and undecided fields are the shadow's changes, noise fields apart, each in the given order."""
    fields = [{"path": "$.a", "verdict": "regression"}, {"path": "$.b", "verdict": "noise"}, {"path": "$.c", "verdict": "undecided"}]
    changed, noise = split_fields(fields)
    assert [f["path"] for f in changed] == ["$.a", "$.c"] and [f["path"] for f in noise] == ["$.b"]

"""Sparklines: a point per step scaled to the largest, gaps where a step had no comparisons, and
labels that are text."""

from __future__ import annotations

import re

from shadowdiff.ui.sparkline import HEIGHT, sparkline


def polylines(svg: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, p.split(","))) for p in line.split()] for line in re.findall(r'<polyline points="([^"]*)"', svg)]


def test_points_are_scaled_to_the_largest_value() -> None:
    """The largest value is drawn at the top, zero at the bottom, one point per step, left to right."""
    (line,) = polylines(sparkline([0.0, 0.5, 1.0], label="rate"))
    xs, ys = [x for x, _ in line], [y for _, y in line]
    assert xs == sorted(xs) and len(line) == 3
    assert ys[2] < ys[1] < ys[0] and ys[0] == HEIGHT - 3


def test_a_step_without_comparisons_is_a_gap() -> None:
    """None breaks the line in two instead of drawing a zero."""
    assert [len(line) for line in polylines(sparkline([0.1, 0.2, None, 0.3, 0.4], label="rate"))] == [2, 2]


def test_a_floor_keeps_a_small_rate_small() -> None:
    """With floor=0.01, a rate of 0.001 stays near the bottom instead of filling the height."""
    (line,) = polylines(sparkline([0.001, 0.001], label="rate", floor=0.01))
    assert all(y > HEIGHT - 6 for _, y in line)


def test_one_step_is_a_level_line_and_nothing_is_a_dash() -> None:
    """A single value spans the width; no values at all is a dash with the label as its title; zeros only are grey (flat)."""
    (line,) = polylines(sparkline([0.2], label="rate"))
    assert line[0][1] == line[1][1] and line[0][0] < line[1][0]
    assert "—" in sparkline([None, None], label="no data") and "<svg" not in sparkline([], label="x")
    assert 'class="spark flat"' in sparkline([0, 0], label="zero")


def test_the_label_is_text() -> None:
    """A label with markup is escaped in the tooltip and the accessible name."""
    svg = sparkline([1.0], label="<script>x</script>")
    assert "<script>" not in svg and svg.count("&lt;script&gt;") == 2

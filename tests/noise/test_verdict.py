"""Verdicts on one path and kind: Diffy's rule on rates, with its blind spot for rare regressions fixed."""

from __future__ import annotations

import pytest

from shadowdiff.noise.verdict import NOISE, REGRESSION, UNDECIDED, Thresholds, verdict, worst

T = Thresholds()


@pytest.mark.parametrize(
    ("differed", "compared", "aa_differed", "aa_compared", "expected", "why"),
    [
        (0, 100, 3, 50, NOISE, "no shadow difference, the A/A evidence has some: noise"),
        (0, 100, 0, 50, UNDECIDED, "no difference anywhere: nothing to judge"),
        (5, 100, 2, 19, UNDECIDED, "fewer A/A comparisons than min_observations"),
        (5, 100, 0, 19, UNDECIDED, "even with q == 0, too few A/A comparisons"),
        (1, 5000, 0, 20, REGRESSION, "1 in 5,000 never seen in A/A: a regression below Diffy's absolute floor"),
        (1, 5000, 1, 5000, NOISE, "the same rate with q > 0 tiny: noise"),
        (1, 5000, 1, 20000, NOISE, "r over q by 300 % but r - q below the absolute floor: noise"),
        (100, 100, 50, 100, REGRESSION, "noisy and broken: q = 0.5, r = 1.0"),
        (2000, 2000, 0, 40, REGRESSION, "removed on every response, never in A/A"),
        (1000, 2000, 100, 200, NOISE, "sampling: 200 A/A against 2,000 shadow comparisons at the same rate"),
        (60, 100, 50, 100, NOISE, "r above q by 20 % of q exactly: not above the relative threshold"),
        (61, 100, 50, 100, REGRESSION, "r above q by 22 % of q and by 0.11 absolute"),
        (40, 100, 50, 100, NOISE, "r below q: the shadow differs less than the primary does with itself"),
    ],
)
def test_verdict_branches(differed: int, compared: int, aa_differed: int, aa_compared: int, expected: str, why: str) -> None:
    """Each branch of the rule gives its verdict (the case says why)."""
    assert verdict(differed, compared, aa_differed, aa_compared, T) == expected, why


def test_thresholds_are_honoured() -> None:
    """A looser relative threshold turns a regression into noise; a stricter min_observations into undecided."""
    assert verdict(61, 100, 50, 100, T) == REGRESSION
    assert verdict(61, 100, 50, 100, Thresholds(relative=0.5)) == NOISE
    assert verdict(1, 5000, 0, 20, Thresholds(min_observations=100)) == UNDECIDED


def test_the_absolute_floor_applies_when_q_is_positive() -> None:
    """With q > 0, a rate increase that is large relatively but under `absolute` is noise; over it, a regression."""
    assert verdict(3, 10000, 1, 10000, T) == NOISE  # r - q = 0.0002
    assert verdict(5, 10000, 1, 10000, T) == REGRESSION  # r - q = 0.0004


def test_worst_orders_regression_undecided_noise() -> None:
    """worst() picks regression over undecided over noise, and noise for no verdicts."""
    assert worst([NOISE, REGRESSION, UNDECIDED]) == REGRESSION
    assert worst([NOISE, UNDECIDED]) == UNDECIDED
    assert worst([NOISE]) == NOISE
    assert worst([]) == NOISE

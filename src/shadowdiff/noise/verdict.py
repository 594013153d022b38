"""The verdict on one (route, part, path, kind): noise, regression or undecided.

Diffy's rule, on rates. Let r = differed / compared be the share of shadow comparisons on
the route that differed there, and q = aa_differed / aa_compared the share of A/A
comparisons (the primary's code against itself) that did. The shadow's difference is
**noise** when the A/A evidence explains it: r is not above q, or not by more than
`relative` of q (Diffy's 20 %), or not by more than `absolute` (Diffy's 0.03 % of
comparisons). Otherwise it is a **regression**.

Why rates, not Diffy's counts: Diffy sends every request to all three instances, so its
counts share one denominator. Here the A/A sources are sampled (`noise.reask_rate`), repeated
requests are rare, and a secondary can shed load under its own bounds: 200 A/A comparisons
against 2,000 shadow comparisons at the same rate is noise, though the counts differ tenfold.

Diffy's blind spot, fixed: with q == 0 the relative test is undefined and Diffy falls back on
the absolute floor, so one difference in 5,000 comparisons (0.02 %) passes as noise however
broken that field is. Here a path that has never differed in `min_observations` or more A/A
comparisons is a regression at the candidate's first difference, however rare: the primary
has shown it does not produce that difference itself.

Too little evidence (fewer than `min_observations` A/A comparisons on the route) is
**undecided**: reported as a mismatch, never hidden as noise.
"""

from __future__ import annotations

from dataclasses import dataclass

NOISE, REGRESSION, UNDECIDED = "noise", "regression", "undecided"
VERDICTS = (NOISE, REGRESSION, UNDECIDED)
# Worst first: a row with several kinds takes the worst of theirs.
SEVERITY = {REGRESSION: 2, UNDECIDED: 1, NOISE: 0}


@dataclass(frozen=True, slots=True)
class Thresholds:
    relative: float = 0.2  # Diffy's relative threshold
    absolute: float = 0.0003  # Diffy's absolute threshold (0.03 % of comparisons)
    min_observations: int = 20  # A/A comparisons on the route before any verdict but undecided


def verdict(differed: int, compared: int, aa_differed: int, aa_compared: int, t: Thresholds) -> str:
    """The verdict on one path and kind from its shadow and A/A counts (see the module docstring)."""
    if differed == 0:  # nothing of the shadow's to judge
        return NOISE if aa_differed > 0 else UNDECIDED
    if aa_compared < t.min_observations:
        return UNDECIDED
    if aa_differed == 0:
        return REGRESSION
    r = differed / max(compared, differed)  # never more differences than comparisons
    q = aa_differed / aa_compared
    if r > q and (r - q) / q > t.relative and (r - q) > t.absolute:
        return REGRESSION
    return NOISE


def worst(verdicts: list[str]) -> str:
    """The most severe of several verdicts (regression > undecided > noise); noise when there are none."""
    return max(verdicts, key=SEVERITY.__getitem__, default=NOISE)

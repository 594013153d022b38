"""The publish stage of noise detection: A/A comparisons become evidence, and a shadow
comparison whose every difference sits at a `noise` path becomes the outcome `noise`.

For each comparison the publish pipeline hands it (shadowdiff.publish.pipeline):
- an A/A lane's (secondary, reask, repeat): its differences are counted as evidence
  for its route (FieldStats.aa); it passes on, to be counted under its source;
- the shadow's: each difference gets the verdict of its (route, part, path, kind),
  with this comparison counted in (FieldStats.shadow). If the comparison differed
  and every verdict is `noise`, it becomes `noise`; any `regression` or `undecided`
  keeps it a `mismatch`, its differences ordered regression, undecided, noise, so the
  log's listing (compare.max_differences) shows what matters first. A comparison
  whose listing the engine cut (`Comparison.cut`) stays a mismatch: an unseen
  difference may be a regression.

`on_field(route, stats_path, verdict)` is told about every shadow difference (the
field metric). The stage never raises into the pipeline's caller: the pipeline logs
a failing stage and passes the comparison on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from shadowdiff.model import AA_LANES, MISMATCH, NOISE, SHADOW, SHADOW_ERROR, Comparison
from shadowdiff.noise.fields import FieldStats
from shadowdiff.noise.verdict import NOISE as NOISE_VERDICT, REGRESSION, UNDECIDED

_ORDER = {REGRESSION: 0, UNDECIDED: 1, NOISE_VERDICT: 2}


class NoiseStage:
    __name__ = "noise"

    def __init__(self, stats: FieldStats, *, on_field: Callable[[str, str, str], None] = lambda r, p, v: None) -> None:
        self.stats = stats
        self._on_field = on_field

    def __call__(self, comparison: Comparison) -> Comparison:
        lane, route = comparison.lane, comparison.request.route
        stats = self.stats
        if lane != SHADOW:
            if lane in AA_LANES:
                stats.aa(route, lane, None if comparison.outcome == SHADOW_ERROR else comparison.differences)
            return comparison
        if comparison.outcome == SHADOW_ERROR:
            stats.outcome(route, SHADOW_ERROR)
            return comparison
        differences = comparison.differences
        judged = stats.shadow(route, differences)
        for stats_path, verdict in judged:
            self._on_field(route, stats_path, verdict)
        verdicts = tuple(verdict for _, verdict in judged)
        if differences:
            outcome = comparison.outcome
            if outcome == MISMATCH and not comparison.cut and all(v == NOISE_VERDICT for v in verdicts):
                outcome = NOISE
            order = sorted(range(len(differences)), key=lambda i: _ORDER[verdicts[i]])
            comparison = dataclasses.replace(
                comparison,
                outcome=outcome,
                differences=tuple(differences[i] for i in order),
                verdicts=tuple(verdicts[i] for i in order),
            )
        latency = (comparison.control.elapsed, comparison.candidate.elapsed)
        stats.outcome(route, comparison.outcome, cut=comparison.cut, host_explained=comparison.host_explained, latency=latency)
        return comparison

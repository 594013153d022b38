"""A suggested rule for each place a sample differs: the noise view's rule when that field is
noise (its evidence in the reason), else an ignore rule for the user to justify.

The YAML is written as noise.suggest writes it (a block mapping of double-quoted scalars, to
paste under `compare.rules`), for the field's statistics path (`$.items[*].score`: a rule
for every item, as the field is counted). A status or a text line has no rule kind: the
suggestion says so instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shadowdiff.compare.paths import PathError, parse
from shadowdiff.config.checks import header_name, route_templates
from shadowdiff.noise.fields import stats_path
from shadowdiff.noise.suggest import quote


@dataclass(frozen=True, slots=True)
class Suggestion:
    part: str
    path: str  # the field's statistics path, which the rule names
    rule: str | None  # YAML, or None when no rule kind fits
    why: str  # where the rule comes from, or why there is none
    verdict: str | None  # the field's verdict now, over the page's range (None: not in it)


def _ignore(route: str, part: str, path: str, sample_id: int) -> str | None:
    """An ignore rule for this one route (None: the route or the path cannot be named in a rule,
    and a rule for every route would hide too much)."""
    if route_templates((route,)) is not None:
        return None
    if part == "body" and path.startswith("$") and path != "$":
        try:
            parse(path)
        except PathError:
            return None
        lines = ['kind: "ignore"', f"path: {quote(path)}"]
    elif part == "header" and header_name(path.partition(":")[0]) is None:
        lines = ['kind: "ignore_header"', f"header: {quote(path.partition(':')[0])}"]
    else:
        return None
    reason = f"say why this difference is acceptable (seen in sample {sample_id})"
    return "\n".join([*lines, f"routes: [{quote(route)}]", f"reason: {quote(reason)}"]) + "\n"


def suggestions(sample: Mapping[str, Any], fields: Iterable[Mapping[str, Any]]) -> list[Suggestion]:
    """One suggestion per differing field of `sample` (a stored sample), in the order the
    differences came; `fields` are the route's rows of the fields view (their `rule`)."""
    known = {(row["part"], row["path"]): row for row in fields}
    out: dict[tuple[str, str], Suggestion] = {}
    for difference in sample["differences"]:
        part = difference["part"]
        path = stats_path(part, difference["path"])
        if (part, path) in out:
            continue
        row = known.get((part, path))
        if row is not None and row.get("rule"):
            out[(part, path)] = Suggestion(part, path, row["rule"], "the primary's own answers differ here", row["verdict"])
            continue
        rule = _ignore(sample["route"], part, path, sample["id"])
        if rule is not None:
            why = "not noise: ignore it only if the change is intended"
        elif route_templates((sample["route"],)) is not None:
            why = f"a rule cannot name this route ({sample['route']}): one for every route would hide too much"
        elif part == "status":
            why = "no rule excuses a status: fix the shadow or leave the route out of mirroring"
        elif part == "body":
            why = "no rule names a text line or a whole body: a mask rule (a pattern) may fit"
        else:
            why = "no rule can name this field"
        out[(part, path)] = Suggestion(part, path, rule, why, row["verdict"] if row is not None else None)
    return list(out.values())

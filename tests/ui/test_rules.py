"""A sample's suggested rules: the noise view's rule where the field is noise, else an ignore rule
for the field's path on the sample's route, which the config accepts; none where no rule kind fits."""

from __future__ import annotations

import pytest
import yaml

from shadowdiff import config as configuration
from shadowdiff.ui.rules import suggestions

NOISE_RULE = (
    'kind: "ignore"\npath: "$.generated_at"\nroutes: ["/orders/{id}"]\nreason: "differs between two answers of the primary: 3 of 3"\n'
)


def sample(route: str, *differences: tuple[str, str]) -> dict:
    return {"id": 7, "route": route, "differences": [{"part": p, "path": q, "kind": "changed"} for p, q in differences]}


def accepted(rule: str) -> dict:
    """The rule as YAML, checked by the config as one of compare.rules."""
    value = yaml.safe_load(rule)
    configuration.from_mapping({"primary": {"url": "http://127.0.0.1:1"}, "mirror": {"enabled": False}, "compare": {"rules": [value]}})
    return value


def test_a_noise_field_gets_the_noise_views_rule() -> None:
    """Where the fields view has a rule for the field, the suggestion is that rule, word for word."""
    row = {"part": "body", "path": "$.generated_at", "verdict": "noise", "rule": NOISE_RULE}
    (found,) = suggestions(sample("/orders/{id}", ("body", "$.generated_at")), [row])
    assert found.rule == NOISE_RULE and found.verdict == "noise"


def test_a_changed_item_gets_an_ignore_rule_for_every_item() -> None:
    """$.items[3].score (counted as $.items[*].score) gets one ignore rule for that path on the route,
    with a reason that names the sample; the same field twice is one suggestion."""
    found = suggestions(sample("/users/{id}", ("body", "$.items[3].score"), ("body", "$.items[4].score")), [])
    assert len(found) == 1 and found[0].path == "$.items[*].score" and found[0].verdict is None
    assert accepted(found[0].rule) == {
        "kind": "ignore", "path": "$.items[*].score", "routes": ["/users/{id}"],
        "reason": "say why this difference is acceptable (seen in sample 7)",
    }  # fmt: skip


def test_a_header_gets_an_ignore_header_rule() -> None:
    """A differing header (and a cookie the shadow set) gets an ignore_header rule for its name."""
    found = suggestions(sample("/a", ("header", "x-trace"), ("header", "set-cookie:session")), [])
    assert [accepted(s.rule)["header"] for s in found] == ["x-trace", "set-cookie"]


def test_keys_that_are_no_identifiers_are_quoted_as_the_engine_writes_them() -> None:
    """A key with a space or a quote keeps the engine's ['...'] form, and the config parses the rule."""
    (found,) = suggestions(sample("/a", ("body", "$['odd key']['it\\'s']")), [])
    assert accepted(found.rule)["path"] == "$['odd key']['it\\'s']"


@pytest.mark.parametrize(
    ("route", "difference", "why"),
    [("/a", ("status", "status"), "no rule excuses a status"), ("/a", ("body", "line 3"), "no rule names a text line"),
     ("/a", ("body", "$"), "no rule names a text line or a whole body"), ("other", ("body", "$.x"), "cannot name this route")],
)  # fmt: skip
def test_no_rule_where_no_rule_kind_fits(route: str, difference: tuple[str, str], why: str) -> None:
    """A status, a text line, a whole body, or a route that is no template (`other`: a rule for every
    route would hide too much) get no rule, and the suggestion says why."""
    (found,) = suggestions(sample(route, difference), [])
    assert found.rule is None and why in found.why

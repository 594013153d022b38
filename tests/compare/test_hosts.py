"""The Host policy: values that differ only by the candidate's own authority are explained, not differences."""

from __future__ import annotations

from typing import Any

import pytest

from shadowdiff.compare import compare
from shadowdiff.compare.body import Limits
from shadowdiff.compare.budget import UNBOUNDED, Budget, OverBudget
from shadowdiff.compare.hosts import MAX_EXPLAINED, Hosts
from shadowdiff.compare.rules import Rules
from shadowdiff.config import RuleConfig
from shadowdiff.model import IGNORED, MATCH, MISMATCH, SHADOW, Comparison, Observation
from tests.values import exchange, seen

CLIENT, OWN = "api.example.com", "127.0.0.1:8002"
LIMITS = Limits(max_decoded_bytes=64 * 1024, max_differences=20)
HTML = {"Content-Type": "text/html; charset=utf-8"}
HOSTS = Hosts(CLIENT, OWN)


def run(primary: Observation, shadow: Observation, *, client: str = CLIENT, own: str = OWN, rules: Any = ()) -> Comparison:
    """Compare as the lane does: the control asked with the client's Host, the shadow with `own`."""
    pair = exchange(primary, shadow)
    pair.request.client_host = client
    shadow.host = own
    return compare(pair, SHADOW, Rules(rules).for_route("/r"), LIMITS)


def diffs(comparison: Comparison) -> list[tuple[str, str, Any, Any]]:
    return [(d.part, d.path, d.control, d.candidate) for d in comparison.differences]


# -- Hosts alone -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "candidate"),
    [("", OWN), (CLIENT, ""), ("", ""), (CLIENT, CLIENT), (CLIENT, "API.Example.COM")],
)
def test_no_pair_when_a_host_is_empty_or_both_are_the_same(control: str, candidate: str) -> None:
    """Hosts.of gives None when either host is unknown or both name the same host (ASCII case aside)."""
    assert Hosts.of(control, candidate) is None


@pytest.mark.parametrize(
    ("control", "candidate", "explained"),
    [
        (f"https://{CLIENT}/rows/1.json", f"https://{OWN}/rows/1.json", True),
        (f"http://{CLIENT}/a and http://{CLIENT}/b", f"http://{OWN}/a and http://{OWN}/b", True),
        (f"https://{CLIENT}/x", f"http://{OWN}/x", True),  # TLS ended in front of the primary
        (f"http://{CLIENT}/x", f"https://{OWN}/x", False),  # the other way round is a real change
        (f"https://{CLIENT.upper()}/x", "https://127.0.0.1:8002/x", True),  # hosts match ASCII case-insensitively
        (f"https://{CLIENT}/Rows", f"https://{OWN}/rows", False),  # the rest must be equal exactly
        (f"https://{CLIENT}/x?v=1", f"https://{OWN}/x?v=2", False),  # the host and something else differ
        (f"https://{CLIENT}/x", "https://other.example.com/x", False),  # a third host is not explained
        ("v1", "v2", False),
        (f"é https://{CLIENT}/ü", f"é https://{OWN}/ü", True),  # non-ASCII text around the host
        (f"https://{CLIENT}/a http://{CLIENT}/b", f"http://{OWN}/a http://{OWN}/b", False),  # mixed schemes: not one rule
    ],
)
def test_explains(control: str, candidate: str, explained: bool) -> None:
    """A value is explained exactly when replacing the candidate's host (and http:// for https://) gives the control's."""
    assert HOSTS.explains(control, candidate, UNBOUNDED) is explained


def test_explaining_costs_budget_steps() -> None:
    """The replacement is charged by size: a 64 KiB value is past a 100-step budget, a short one is not."""
    long_a, long_b = f"https://{CLIENT}/" * 4000, f"https://{OWN}/" * 4000
    with pytest.raises(OverBudget):
        HOSTS.explains(long_a, long_b, Budget(100))
    assert HOSTS.explains(f"https://{CLIENT}/", f"https://{OWN}/", Budget(100))


# -- through the engine ----------------------------------------------------------------


def test_json_string_url_is_explained_and_the_comparison_ignored() -> None:
    """A JSON URL differing only by the shadow's authority is no difference: the comparison is ignored, its path noted."""
    comparison = run(
        seen("primary", {"next": f"https://{CLIENT}/rows?page=2", "rows": [{"href": f"https://{CLIENT}/rows/1.json"}]}),
        seen("shadow", {"next": f"https://{OWN}/rows?page=2", "rows": [{"href": f"https://{OWN}/rows/1.json"}]}),
    )
    assert (comparison.outcome, comparison.differences) == (IGNORED, ())
    assert comparison.host_explained == (("body", "$.next"), ("body", "$.rows[0].href"))


def test_https_control_and_http_candidate_is_explained() -> None:
    """https://{client host} in the control against http://{own host} in the shadow is explained."""
    comparison = run(seen("primary", {"self": f"https://{CLIENT}/x"}), seen("shadow", {"self": f"http://{OWN}/x"}))
    assert (comparison.outcome, comparison.host_explained) == (IGNORED, (("body", "$.self"),))


def test_a_value_differing_in_the_host_and_elsewhere_stays_a_difference_with_its_values() -> None:
    """A URL whose host and query both changed is a difference, reported with the values as they were."""
    comparison = run(
        seen("primary", {"a": f"https://{CLIENT}/x?v=1", "b": f"https://{CLIENT}/y"}),
        seen("shadow", {"a": f"https://{OWN}/x?v=2", "b": f"https://{OWN}/y"}),
    )
    assert comparison.outcome == MISMATCH
    assert diffs(comparison) == [("body", "$.a", f"https://{CLIENT}/x?v=1", f"https://{OWN}/x?v=2")]
    assert comparison.host_explained == (("body", "$.b"),)


@pytest.mark.parametrize(("client", "own"), [(CLIENT, CLIENT), ("", OWN), (CLIENT, ""), ("", "")])
def test_equal_or_empty_hosts_explain_nothing(client: str, own: str) -> None:
    """With the same Host on both sides, or one unknown, a URL difference stays a difference."""
    comparison = run(seen("primary", {"a": f"https://{CLIENT}/x"}), seen("shadow", {"a": f"https://{OWN}/x"}), client=client, own=own)
    assert (comparison.outcome, comparison.host_explained) == (MISMATCH, ())
    assert [d.path for d in comparison.differences] == ["$.a"]


def test_location_header_is_explained() -> None:
    """A Location differing only by the shadow's authority is explained; another header change still counts."""
    p = seen("primary", b"", status=302, headers={"Location": f"https://{CLIENT}/login", "Vary": "Accept"})
    s = seen("shadow", b"", status=302, headers={"Location": f"https://{OWN}/login", "Vary": "Accept, Cookie"})
    comparison = run(p, s)
    assert diffs(comparison) == [("header", "vary", "Accept", "Accept, Cookie")]
    assert comparison.host_explained == (("header", "location"),)
    only_location = run(p, seen("shadow", b"", status=302, headers={"Location": f"https://{OWN}/login", "Vary": "Accept"}))
    assert (only_location.outcome, only_location.differences) == (IGNORED, ())


def test_a_header_excused_by_a_rule_is_excused_not_explained() -> None:
    """An ignore_header rule wins over the Host policy: the header is excused, not listed as explained."""
    rule = RuleConfig(kind="ignore_header", header="Location", reason="test")
    comparison = run(
        seen("primary", b"", headers={"Location": f"https://{CLIENT}/"}), seen("shadow", b"", headers={"Location": f"https://{OWN}/"}),
        rules=(rule,),
    )
    assert (comparison.outcome, comparison.host_explained) == (IGNORED, ())


def test_html_lines_are_explained_one_by_one() -> None:
    """In an HTML page each link line is explained on its own; the line that really changed is the one difference."""
    page = '<a href="https://{h}/a">a</a>\n<p>{word}</p>\n<a href="https://{h}/b">b</a>\n<footer>same</footer>\n'
    p = seen("primary", page.format(h=CLIENT, word="old").encode(), headers=HTML)
    s = seen("shadow", page.format(h=OWN, word="new").encode(), headers=HTML)
    comparison = run(p, s)
    assert diffs(comparison) == [("body", "line 2", "<p>old</p>", "<p>new</p>")]
    assert comparison.host_explained == (("body", "line 1"), ("body", "line 3"))
    same_words = run(p, seen("shadow", page.format(h=OWN, word="old").encode(), headers=HTML))
    assert (same_words.outcome, same_words.differences) == (IGNORED, ())


def test_a_text_hunk_of_another_length_is_explained_whole_or_not_at_all() -> None:
    """A changed block whose line count differs is explained only if the whole block is the Host's doing."""
    p = seen("primary", f"x\nhttps://{CLIENT}/a\nhttps://{CLIENT}/b\n".encode(), headers=HTML)
    s = seen("shadow", f"x\nhttps://{OWN}/a\nhttps://{OWN}/b\nextra\n".encode(), headers=HTML)
    comparison = run(p, s)
    assert comparison.outcome == MISMATCH
    assert comparison.host_explained == ()


def test_multipart_parts_are_explained() -> None:
    """A multipart part holding a URL with the shadow's authority is explained like a JSON field."""
    def form(boundary: str, host: str) -> tuple[bytes, dict[str, str]]:
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="link"\r\n\r\nhttps://{host}/x\r\n--{boundary}--\r\n'
        return body.encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    (a, ha), (b, hb) = form("aa", CLIENT), form("bb", OWN)
    comparison = run(seen("primary", a, headers=ha), seen("shadow", b, headers=hb))
    assert (comparison.outcome, comparison.host_explained) == (IGNORED, (("body", "$.link"),))


def test_explained_paths_are_capped_and_never_differences() -> None:
    """With more explained values than MAX_EXPLAINED, the first MAX_EXPLAINED are kept and none is a difference."""
    count = MAX_EXPLAINED + 15
    comparison = run(
        seen("primary", {f"u{i}": f"https://{CLIENT}/{i}" for i in range(count)}),
        seen("shadow", {f"u{i}": f"https://{OWN}/{i}" for i in range(count)}),
    )
    assert comparison.outcome == IGNORED
    assert comparison.host_explained == tuple(("body", f"$.u{i}") for i in range(MAX_EXPLAINED))


def test_identical_bodies_explain_nothing() -> None:
    """Answers that are the same are a match with nothing explained, whatever the hosts."""
    comparison = run(seen("primary", {"a": "x"}), seen("shadow", {"a": "x"}))
    assert (comparison.outcome, comparison.host_explained) == (MATCH, ())

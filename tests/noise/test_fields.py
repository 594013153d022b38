"""FieldStats: what is counted per route and per path, the values it keeps, its caps and its memory."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson
import pytest

from shadowdiff.model import REASK, SECONDARY, Difference
from shadowdiff.noise.fields import FieldStats, stats_path
from shadowdiff.noise.verdict import NOISE, REGRESSION, UNDECIDED, Thresholds


def diff(path: str, control: Any = 1, candidate: Any = 2, *, part: str = "body", kind: str = "changed") -> Difference:
    return Difference(part, path, kind, control, candidate)


def field(stats: FieldStats, route: str, path: str, part: str = "body") -> dict[str, Any]:
    (found,) = [f for f in stats.snapshot()["routes"][route]["fields"] if f["path"] == path and f["part"] == part]
    return found


@pytest.mark.parametrize(
    ("part", "path", "expected"),
    [
        ("body", "$.items[3].price", "$.items[*].price"),
        ("body", "$[0][12]", "$[*][*]"),
        ("body", "$['a[0]'][2]", "$['a[0]'][*]"),  # brackets inside a quoted key are the key's
        ("body", "$.point[1]", "$.point[*]"),  # the documented wrong case: a positional tuple
        ("body", "$.a.b", "$.a.b"),
        ("body", "$.user_123.name", "$.user_123.name"),  # dict keys never collapse
        ("body", "line 7", "line 7"),
        ("header", "X-Request-Id", "x-request-id"),
        ("status", "status", "status"),
    ],
)
def test_stats_path(part: str, path: str, expected: str) -> None:
    """Array indices collapse to [*] in body JSON paths only; headers lower-case; the rest unchanged."""
    assert stats_path(part, path) == expected


def test_one_comparison_counts_a_path_and_kind_once() -> None:
    """Two items differing at the same collapsed path are one difference for that comparison, one verdict each."""
    stats = FieldStats(Thresholds())
    found = stats.shadow("/r", [diff("$.items[0].ts"), diff("$.items[1].ts"), diff("$.items[1].id", kind="removed")])
    assert found == (("$.items[*].ts", UNDECIDED), ("$.items[*].ts", UNDECIDED), ("$.items[*].id", UNDECIDED))
    assert field(stats, "/r", "$.items[*].ts")["differences"] == {"changed": 1}
    assert field(stats, "/r", "$.items[*].ts")["differed"] == 1
    assert stats.snapshot()["routes"]["/r"]["compared"] == 1


def test_verdicts_follow_the_a_a_evidence() -> None:
    """After 20 A/A comparisons that differ at $.ts only, a shadow difference at $.ts is noise and one at $.price a
    regression; the verdict returned counts the comparison it came with."""
    stats = FieldStats(Thresholds())
    for n in range(20):
        stats.aa("/r", SECONDARY if n % 2 else REASK, [diff("$.ts", n, n + 1)])
    assert stats.shadow("/r", [diff("$.ts"), diff("$.price", 10, 12)]) == (("$.ts", NOISE), ("$.price", REGRESSION))
    snapshot = stats.snapshot()["routes"]["/r"]
    assert snapshot["aa_compared"] == 20
    assert snapshot["aa_sources"] == {SECONDARY: {"observations": 10, "errors": 0}, REASK: {"observations": 10, "errors": 0}}
    assert field(stats, "/r", "$.ts")["noise_by_source"] == {SECONDARY: {"changed": 10}, REASK: {"changed": 10}}


def test_an_a_a_error_is_not_an_observation() -> None:
    """aa(..., None) counts an error for its source and leaves the observations alone."""
    stats = FieldStats(Thresholds())
    stats.aa("/r", REASK, None)
    stats.aa("/r", REASK, [])
    route = stats.snapshot()["routes"]["/r"]
    assert route["aa_compared"] == 1
    assert route["aa_sources"] == {REASK: {"observations": 1, "errors": 1}}


def test_outcomes_cut_and_host_explained_are_counted_per_route() -> None:
    """outcome() counts each outcome, cut listings and host-explained pairs with at most 10 distinct examples."""
    stats = FieldStats(Thresholds())
    stats.outcome("/r", "match")
    stats.outcome("/r", "mismatch", cut=True, host_explained=[("body", f"$.links[{n}]") for n in range(12)])
    stats.outcome("/r", "noise", host_explained=[("header", "location")])
    route = stats.snapshot()["routes"]["/r"]
    assert route["outcomes"] == {"match": 1, "mismatch": 1, "noise": 1}
    assert route["cut"] == 1
    assert route["host_explained"]["count"] == 13
    assert route["host_explained"]["examples"] == [["body", f"$.links[{n}]"] for n in range(10)]


def test_examples_keep_the_first_ones_and_the_latest_redacted_and_cut() -> None:
    """With examples=2 the first two comparisons' values and the latest one are kept, after redact(), cut to 200."""
    redacted = lambda d: Difference(d.part, d.path, d.kind, "<redacted>" if d.control == "secret" else d.control, d.candidate)  # noqa: E731
    stats = FieldStats(Thresholds(), redact=redacted)
    stats.shadow("/r", [diff("$.a[0]", "secret", "x" * 300)])
    for n in range(5):
        stats.shadow("/r", [diff("$.a[1]", f"p{n}", f"s{n}")])
    examples = field(stats, "/r", "$.a[*]")["examples"]
    assert [(e["path"], e["primary"]) for e in examples] == [("$.a[0]", "<redacted>"), ("$.a[1]", "p0"), ("$.a[1]", "p4")]
    assert len(examples[0]["shadow"]) == 200 and examples[0]["shadow"].endswith("…")


def test_numeric_changes_fill_buckets() -> None:
    """Numeric changes (ints, floats, exact-number strings; never bools) land in the absolute and relative buckets."""
    stats = FieldStats(Thresholds())
    stats.shadow("/r", [diff("$.score", 0.5, 0.51)])  # 0.01 absolute, 2 % relative
    stats.shadow("/r", [diff("$.score", 100, 150)])  # 50, 50 %
    stats.shadow("/r", [diff("$.score", "12345678901234567890123", "12345678901234567890124")])  # 1, tiny
    stats.shadow("/r", [diff("$.score", True, False)])  # a flag, not a number
    row = field(stats, "/r", "$.score")
    assert row["numeric"]["absolute"] == [0, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert row["numeric"]["relative"] == [1, 0, 0, 1, 0, 0, 1, 0, 0]
    assert row["numeric"]["max_absolute"] == 50.0
    assert row["non_numeric"] == 1
    assert row["transitions"] == [[True, False, 1]]


def test_transitions_keep_ten_distinct_then_other() -> None:
    """String changes count up to 10 distinct (primary -> shadow) pairs, cut to 40 chars; the rest go to other."""
    stats = FieldStats(Thresholds())
    for n in range(12):
        stats.shadow("/r", [diff("$.label", "cat", f"dog{n}")])
    stats.shadow("/r", [diff("$.label", "cat", "dog0")])
    stats.shadow("/r", [diff("$.long", "a" * 50, "b")])
    row = field(stats, "/r", "$.label")
    assert len(row["transitions"]) == 10
    assert ["cat", "dog0", 2] in row["transitions"]
    assert row["transitions_other"] == 2
    assert field(stats, "/r", "$.long")["transitions"] == [["a" * 39 + "…", "b", 1]]


def test_first_and_last_seen_follow_the_clock() -> None:
    """first_seen is the clock at the path's first difference (A/A or shadow), last_seen at its latest."""
    now = [1000.0]
    stats = FieldStats(Thresholds(), clock=lambda: now[0])
    stats.aa("/r", REASK, [diff("$.ts")])
    now[0] = 2000.0
    stats.shadow("/r", [diff("$.ts")])
    row = field(stats, "/r", "$.ts")
    assert (row["first_seen"], row["last_seen"]) == (1000.0, 2000.0)


def test_caps_hold_and_past_them_the_verdict_is_undecided() -> None:
    """Past max_paths_per_route, max_fields and max_routes nothing new is tracked: 'other' and undecided, counted."""
    stats = FieldStats(Thresholds(min_observations=0), max_fields=5, max_paths_per_route=3, max_routes=2)
    for n in range(20):
        stats.aa("/a", REASK, [])
    found = stats.shadow("/a", [diff(f"$.f{n}") for n in range(5)])
    assert found[:3] == (("$.f0", REGRESSION), ("$.f1", REGRESSION), ("$.f2", REGRESSION))
    assert found[3:] == (("other", UNDECIDED), ("other", UNDECIDED))
    stats.shadow("/b", [diff(f"$.g{n}") for n in range(3)])  # max_fields: 3 + 2
    assert stats.shadow("/c", [diff("$.h")]) == (("other", UNDECIDED),)  # max_routes
    stats.aa("/c", REASK, [diff("$.h")])
    snapshot = stats.snapshot()
    assert [len(r["fields"]) for r in snapshot["routes"].values()] == [3, 2]
    assert snapshot["routes"]["/a"]["untracked"] == 2
    assert snapshot["routes"]["/b"]["untracked"] == 1
    assert (snapshot["untracked_routes"], snapshot["untracked_routes_aa"]) == (1, 1)


def full(max_fields: int = 4000, value_chars: int = 200) -> FieldStats:
    """A FieldStats at max_fields, every path with its examples and 10 transitions of long values."""
    stats = FieldStats(Thresholds(), max_fields=max_fields)
    routes = max_fields // 200
    for n in range(3 + 10):
        for r in range(routes):
            stats.shadow(
                f"/r{r}",
                [diff(f"$.f{p}", f"{n:03}{p:05}" + "x" * value_chars, f"{n:03}{p:05}" + "y" * value_chars) for p in range(200)],
            )
    return stats


def test_memory_of_a_full_field_stats_is_bounded() -> None:
    """4,000 paths with 200-char examples and 10 transitions each hold under 16 KB a path (9.4 KB measured), and
    the caps hold at max_fields."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stats = full()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    snapshot = stats.snapshot()
    assert sum(len(r["fields"]) for r in snapshot["routes"].values()) == 4000
    assert all(len(f["transitions"]) == 10 and len(f["examples"]) == 3 for r in snapshot["routes"].values() for f in r["fields"])
    assert held / 4000 < 16_000, f"{held / 4000:.0f} bytes a path"


def test_snapshot_of_a_full_field_stats_is_json() -> None:
    """snapshot() at 4,000 full paths is what orjson writes and reads back; values=False and route= give less.
    (What it costs the event loop: benchmarks/snapshot_cost.py.)"""
    stats = full()
    snapshot = stats.snapshot()
    assert orjson.loads(orjson.dumps(snapshot)) == snapshot
    counts = stats.snapshot(values=False)
    assert all(f["examples"] == [] and f["transitions"] is None for r in counts["routes"].values() for f in r["fields"])
    assert counts["routes"]["/r0"]["fields"][0]["differences"] == snapshot["routes"]["/r0"]["fields"][0]["differences"]
    assert list(stats.snapshot(route="/r3")["routes"]) == ["/r3"]
    assert stats.snapshot(route="/nowhere")["routes"] == {}

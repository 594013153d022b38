"""The comparison step with plain values: every rule type and content type, no sockets or clocks."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import brotli
import pytest
from multidict import CIMultiDict

from shadowdiff.compare import compare
from shadowdiff.compare.body import Limits
from shadowdiff.compare.rules import EMPTY, Rules, compile_rules
from shadowdiff.config import RuleConfig
from shadowdiff.model import IGNORED, MATCH, MISMATCH, SHADOW, SHADOW_ERROR, Observation
from tests.values import JSON, exchange, seen

LIMITS = Limits(max_decoded_bytes=64 * 1024, max_differences=20)


def run(primary: Observation, shadow: Observation, *rules: RuleConfig, route: str = "/r"):
    ruleset = Rules(rules).for_route(route)
    return compare(exchange(primary, shadow, route=route), SHADOW, ruleset, LIMITS)


def rule(kind: str, **fields: Any) -> RuleConfig:
    return RuleConfig(kind=kind, reason="test", **fields)


def diffs(comparison) -> list[tuple[str, str, str]]:
    return [(d.part, d.path, d.kind) for d in comparison.differences]


# -- outcomes --------------------------------------------------------------------


def test_identical_answers_match() -> None:
    """Byte-identical status, headers and body are a match."""
    assert run(seen("primary", {"a": 1}), seen("shadow", {"a": 1})).outcome == MATCH


def test_formatting_only_differences_match() -> None:
    """Key order and whitespace are not differences in JSON."""
    comparison = run(seen("primary", b'{"a": 1, "b": [1, 2]}', headers=JSON), seen("shadow", b'{"b":[1,2],"a":1}', headers=JSON))
    assert comparison.outcome == MATCH


def test_failed_shadow_is_a_shadow_error() -> None:
    """A shadow that gave no response is shadow_error, with no differences."""
    failed = Observation("shadow", 1.0, error="timeout")
    comparison = run(seen("primary", {"a": 1}), failed)
    assert (comparison.outcome, comparison.differences) == (SHADOW_ERROR, ())


def test_status_difference() -> None:
    """A 500 where the primary said 200 is a mismatch on the status part."""
    comparison = run(seen("primary", {"a": 1}), seen("shadow", {"a": 1}, status=500))
    assert comparison.outcome == MISMATCH
    assert diffs(comparison) == [("status", "status", "changed")]
    assert (comparison.differences[0].control, comparison.differences[0].candidate) == (200, 500)


# -- JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"a": 1}, {"a": 2}, [("body", "$.a", "changed")]),
        ({"a": 1}, {"a": 1, "b": 2}, [("body", "$.b", "added")]),
        ({"a": 1, "b": 2}, {"a": 1}, [("body", "$.b", "removed")]),
        ({"a": 1}, {"a": "1"}, [("body", "$.a", "type_changed")]),
        ({"a": True}, {"a": 1}, [("body", "$.a", "type_changed")]),
        ({"a": None}, {"a": {}}, [("body", "$.a", "type_changed")]),
        ({"x": {"y": [1, 2, 3]}}, {"x": {"y": [1, 5, 3]}}, [("body", "$.x.y[1]", "changed")]),
        ([1, 2], [1, 2, 3], [("body", "$[2]", "added")]),
        ({"odd key": 1}, {"odd key": 2}, [("body", "$['odd key']", "changed")]),
        ({"a": {"b": 1}, "c": 1}, {"a": {"b": 2}, "c": 2}, [("body", "$.a.b", "changed"), ("body", "$.c", "changed")]),
    ],
)
def test_json_difference_kinds(a: Any, b: Any, expected: list) -> None:
    """Each JSON change is reported at its $-path with its kind in plain words."""
    comparison = run(seen("primary", a), seen("shadow", b))
    assert comparison.outcome == MISMATCH
    assert diffs(comparison) == expected


def test_int_and_float_of_equal_value_match() -> None:
    """1 and 1.0 are the same JSON number."""
    assert run(seen("primary", b'{"a": 1}', headers=JSON), seen("shadow", b'{"a": 1.0}', headers=JSON)).outcome == MATCH


def test_json_versus_not_json() -> None:
    """A shadow answering HTML where the primary answered JSON is one type_changed at $."""
    comparison = run(seen("primary", {"a": 1}), seen("shadow", b"<html>oops</html>", headers=JSON))
    assert diffs(comparison) == [("body", "$", "type_changed")]


def _changed(count: int) -> tuple[Observation, Observation]:
    return seen("primary", {f"k{i}": i for i in range(count)}), seen("shadow", {f"k{i}": -i - 1 for i in range(count)})


def test_every_difference_past_max_differences_is_kept() -> None:
    """25 differing fields with max_differences=20 are all returned, in document order, and the listing is not cut."""
    comparison = run(*_changed(25))
    assert [d.path for d in comparison.differences] == [f"$.k{i}" for i in range(25)]
    assert comparison.cut is False


def test_differences_past_max_found_are_cut() -> None:
    """Past max_found (200) differences the engine stops, keeps exactly max_found and says the listing was cut."""
    comparison = run(*_changed(300))
    assert len(comparison.differences) == LIMITS.max_found == 200
    assert comparison.cut is True


def test_exactly_max_found_differences_are_not_cut() -> None:
    """A body with exactly max_found differences, the last in its last field, is listed whole and not cut."""
    comparison = compare(exchange(*_changed(5)), SHADOW, EMPTY, Limits(64 * 1024, max_differences=2, max_found=5))
    assert (len(comparison.differences), comparison.cut) == (5, False)


def test_status_and_header_differences_count_towards_max_found() -> None:
    """Status, header and body differences together are kept up to max_found in all; past it the comparison is cut."""
    p, s = _changed(5)
    s = seen("shadow", {f"k{i}": -i - 1 for i in range(5)}, status=500, headers={"X-New": "1"})
    comparison = compare(exchange(p, s), SHADOW, EMPTY, Limits(64 * 1024, max_differences=2, max_found=5))
    assert [d.part for d in comparison.differences] == ["status", "header", "body", "body", "body"]
    assert comparison.cut is True


def test_max_differences_above_max_found_is_honoured() -> None:
    """A max_differences larger than max_found still gets every difference up to it."""
    comparison = compare(exchange(*_changed(30)), SHADOW, EMPTY, Limits(64 * 1024, max_differences=25, max_found=10))
    assert (len(comparison.differences), comparison.cut) == (25, True)


def test_text_line_differences_past_max_found_are_cut() -> None:
    """A text body with more changed hunks than max_found keeps max_found of them and is cut; with fewer it is not."""
    plain = {"Content-Type": "text/plain"}
    a = "".join(f"same {i}\nold {i}\n" for i in range(8)).encode()
    b = "".join(f"same {i}\nnew {i}\n" for i in range(8)).encode()
    limits = Limits(64 * 1024, max_differences=2, max_found=5)
    cut = compare(exchange(seen("primary", a, headers=plain), seen("shadow", b, headers=plain)), SHADOW, EMPTY, limits)
    assert ([d.path for d in cut.differences], cut.cut) == ([f"line {2 * i + 2}" for i in range(5)], True)
    whole = compare(exchange(seen("primary", a, headers=plain), seen("shadow", b, headers=plain)), SHADOW, EMPTY, LIMITS)
    assert (len(whole.differences), whole.cut) == (8, False)


def test_multipart_differences_past_max_found_are_cut() -> None:
    """Multipart parts are walked like JSON fields: past max_found changed parts the listing is cut."""
    body_a, headers_a = _form("aa", **{f"f{i}": "old" for i in range(8)})
    body_b, headers_b = _form("bb", **{f"f{i}": "new" for i in range(8)})
    limits = Limits(64 * 1024, max_differences=2, max_found=5)
    comparison = compare(
        exchange(seen("primary", body_a, headers=headers_a), seen("shadow", body_b, headers=headers_b)), SHADOW, EMPTY, limits
    )
    assert ([d.path for d in comparison.differences], comparison.cut) == ([f"$.f{i}" for i in range(5)], True)


# -- rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "rules", "outcome"),
    [
        ({"meta": {"at": "10:00"}, "v": 1}, {"meta": {"at": "10:01"}, "v": 1}, [rule("ignore", path="$.meta.at")], IGNORED),
        ({"items": [{"id": 1, "v": 1}]}, {"items": [{"id": 2, "v": 1}]}, [rule("ignore", path="$.items[*].id")], IGNORED),
        ({"items": [{"id": 1, "v": 1}]}, {"items": [{"id": 2, "v": 2}]}, [rule("ignore", path="$.items[*].id")], MISMATCH),
        ({"x": {"a": 1}}, {"x": {"a": 2}}, [rule("ignore", path="$.*.a")], IGNORED),
        ({"l": [1, 2]}, {"l": [9, 2]}, [rule("ignore", path="$.l[0]")], IGNORED),
        ({"id": "a1b2c3d4-0000-1111-2222-333344445555"}, {"id": "ffffffff-0000-1111-2222-333344445555"},
         [rule("mask", pattern=r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")], IGNORED),
        ({"at": "2026-01-01T10:00:00Z", "n": "x"}, {"at": "2026-01-01T10:00:07Z", "n": "x"},
         [rule("mask", pattern=r"\d{4}-\d\d-\d\dT[\d:.]+Z", path="$.at")], IGNORED),
        ({"s": 0.8123}, {"s": 0.8127}, [rule("tolerance", absolute=0.001)], IGNORED),
        ({"s": 0.8123}, {"s": 0.8200}, [rule("tolerance", absolute=0.001)], MISMATCH),
        ({"s": 1000.0}, {"s": 1009.0}, [rule("tolerance", relative=0.01)], IGNORED),
        ({"s": 1000.0}, {"s": 1011.0}, [rule("tolerance", relative=0.01)], MISMATCH),
        ({"items": [{"score": 0.5}], "total": 1.0}, {"items": [{"score": 0.5004}], "total": 1.0004},
         [rule("tolerance", absolute=0.001, path="$.items[*].score")], MISMATCH),
        ({"tags": ["a", "b", "c"]}, {"tags": ["c", "a", "b"]}, [rule("unordered", path="$.tags")], IGNORED),
        ({"tags": [{"k": 1}, {"k": 2}]}, {"tags": [{"k": 2}, {"k": 1}]}, [rule("unordered", path="$.tags")], IGNORED),
        ({"tags": ["a", "b"]}, {"tags": ["b", "c"]}, [rule("unordered", path="$.tags")], MISMATCH),
        ({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, [], MISMATCH),
    ],
)
def test_rule_table(a: Any, b: Any, rules: list[RuleConfig], outcome: str) -> None:
    """Ignore, mask, tolerance (absolute, relative, scoped) and unordered rules excuse exactly what they cover."""
    assert run(seen("primary", a), seen("shadow", b), *rules).outcome == outcome


def test_tolerance_scoped_to_a_path_reports_the_rest() -> None:
    """A tolerance on $.items[*].score excuses the score but still reports $.total."""
    comparison = run(
        seen("primary", {"items": [{"score": 0.5}], "total": 1.0}),
        seen("shadow", {"items": [{"score": 0.5004}], "total": 1.0004}),
        rule("tolerance", absolute=0.001, path="$.items[*].score"),
    )
    assert diffs(comparison) == [("body", "$.total", "changed")]


def test_rules_scoped_to_routes() -> None:
    """A rule with routes applies on those routes only."""
    scoped = rule("ignore", path="$.at", routes=("/orders/{id}",))
    a, b = {"at": 1}, {"at": 2}
    assert run(seen("primary", a), seen("shadow", b), scoped, route="/orders/{id}").outcome == IGNORED
    assert run(seen("primary", a), seen("shadow", b), scoped, route="/users/{id}").outcome == MISMATCH


# -- headers ---------------------------------------------------------------------


def test_volatile_headers_are_not_compared() -> None:
    """Date, tracing and request-id headers differing is still a match, not 'ignored'."""
    p = seen("primary", {"a": 1}, headers={"Date": "Mon", "X-Request-Id": "1", "traceparent": "00-a", "Age": "1"})
    s = seen("shadow", {"a": 1}, headers={"Date": "Tue", "X-Request-Id": "2", "traceparent": "00-b"})
    assert run(p, s).outcome == MATCH


def test_header_differences_by_name_case_insensitively() -> None:
    """Headers are compared by lower-cased name: changed, added and removed."""
    p = seen("primary", b"x", headers={"Cache-Control": "no-cache", "X-Old": "1"})
    s = seen("shadow", b"x", headers={"cache-control": "max-age=60", "X-New": "1"})
    assert diffs(run(p, s)) == [
        ("header", "cache-control", "changed"),
        ("header", "x-new", "added"),
        ("header", "x-old", "removed"),
    ]


def test_ignore_header_rule_makes_it_ignored() -> None:
    """A header excused by an ignore_header rule turns the outcome into ignored."""
    p = seen("primary", b"x", headers={"Server": "gunicorn"})
    s = seen("shadow", b"x", headers={"Server": "uvicorn"})
    assert run(p, s).outcome == MISMATCH
    assert run(p, s, rule("ignore_header", header="Server")).outcome == IGNORED


def test_set_cookie_presence_compared_not_values() -> None:
    """Different session values are fine; a cookie the shadow stopped setting is a difference."""
    p = seen("primary", b"x", headers=CIMultiDict([("Set-Cookie", "sid=abc; Path=/"), ("Set-Cookie", "theme=dark")]))
    same = seen("shadow", b"x", headers=CIMultiDict([("Set-Cookie", "sid=xyz; Path=/"), ("Set-Cookie", "theme=light")]))
    fewer = seen("shadow", b"x", headers=CIMultiDict([("Set-Cookie", "sid=xyz; Path=/")]))
    assert run(p, same).outcome == MATCH
    assert diffs(run(p, fewer)) == [("header", "set-cookie:theme", "removed")]


def test_content_length_is_not_a_second_body_difference() -> None:
    """Gzip vs identity with equal content: Content-Encoding differs, Content-Length is not reported."""
    raw = b'{"a": 1}'
    packed = gzip.compress(raw)
    p = seen("primary", packed, headers={**JSON, "Content-Encoding": "gzip", "Content-Length": str(len(packed))})
    s = seen("shadow", raw, headers={**JSON, "Content-Length": str(len(raw))})
    assert diffs(run(p, s)) == [("header", "content-encoding", "removed")]


# -- encodings, text, binary, size ---------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", lambda b: gzip.compress(b)),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("br", brotli.compress),
    ],
)
def test_encoded_bodies_are_compared_decoded(encoding: str, encode) -> None:
    """Bodies are decoded per Content-Encoding before comparing: the JSON difference inside is found."""
    headers = {**JSON, "Content-Encoding": encoding}
    p = seen("primary", encode(b'{"a": 1, "b": 2}'), headers=headers)
    s = seen("shadow", encode(b'{"a": 1, "b": 3}'), headers=headers)
    assert diffs(run(p, s)) == [("body", "$.b", "changed")]


@pytest.mark.parametrize(
    ("encoding", "bomb"),
    [
        ("gzip", gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=1)),  # small, expands to 64 MB
        ("br", brotli.compress(b"0" * (64 * 1024 * 1024), quality=1)),
        ("gzip, gzip", gzip.compress(gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=1))),
    ],
)
def test_compression_bomb_is_never_expanded(encoding: str, bomb: bytes) -> None:
    """A body decoding past max_decoded_bytes stops at the cap (memory stays small) and is flagged; against a small body it differs."""
    import tracemalloc

    headers = {**JSON, "Content-Encoding": encoding}
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        comparison = run(seen("primary", bomb, headers=headers), seen("shadow", {"a": 1}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - baseline < 8 * LIMITS.max_decoded_bytes  # the 64 KiB cap, never 64 MB
    assert comparison.oversized == ("primary",)
    body = [(d.path, d.control) for d in comparison.differences if d.part == "body"]
    assert body == [("$", f"over {LIMITS.max_decoded_bytes} bytes decoded")]


def test_two_bombs_are_left_uncompared() -> None:
    """When both bodies pass the decode cap the body is not compared (compressed bytes say nothing), and both are flagged."""
    headers = {**JSON, "Content-Encoding": "gzip"}
    a = gzip.compress(b"1" * (1024 * 1024), compresslevel=1)
    b = gzip.compress(b"1" * (1024 * 1024), compresslevel=9)
    comparison = run(seen("primary", a, headers=headers), seen("shadow", b, headers=headers))
    assert comparison.oversized == ("primary", "shadow")
    assert comparison.differences == ()


@pytest.mark.parametrize(
    ("a", "b", "outcome"),
    [
        (gzip.compress(b'{"a": 1}') + gzip.compress(b'{"b": 2}'), gzip.compress(b'{"a": 1}') + gzip.compress(b'{"b": 3}'), MISMATCH),
        (gzip.compress(b'{"a": 1}')[:-8], gzip.compress(b'{"a": 1}'), MISMATCH),  # cut short: compared as sent
    ],
)
def test_gzip_members_and_truncation(a: bytes, b: bytes, outcome: str) -> None:
    """Every gzip member is decoded; a truncated stream is never taken for its prefix."""
    headers = {**JSON, "Content-Encoding": "gzip"}
    assert run(seen("primary", a, headers=headers), seen("shadow", b, headers=headers)).outcome == outcome


def test_rules_apply_when_python_equality_hides_a_json_difference() -> None:
    """true vs 1 is a type change; an ignore rule on that field excuses it; 1 vs 1.0 alone is a match."""
    a, b = b'{"debug": true, "n": 1}', b'{"debug": 1, "n": 1.0}'
    assert diffs(run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON))) == [("body", "$.debug", "type_changed")]
    assert run(seen("primary", a, headers=JSON), seen("shadow", b, headers=JSON), rule("ignore", path="$.debug")).outcome == IGNORED


def test_json_with_a_byte_order_mark_and_no_content_type() -> None:
    """A BOM is not a difference, and JSON is sniffed without a Content-Type; rules then apply."""
    a = b'\xef\xbb\xbf{"at": 1, "v": 1}'
    b = b'{"at": 2, "v": 1}'
    assert run(seen("primary", a), seen("shadow", b), rule("ignore", path="$.at")).outcome == IGNORED


@pytest.mark.parametrize("levels", [300, 3000])
def test_deeply_nested_documents_do_not_crash(levels: int) -> None:
    """Documents nested hundreds or thousands deep (past orjson's and Python's limits) are compared without errors."""
    deep_a = b"[" * levels + b"1" + b"]" * levels
    deep_b = b"[" * levels + b"2" + b"]" * levels
    comparison = run(seen("primary", deep_a, headers=JSON), seen("shadow", deep_b, headers=JSON))
    assert comparison.outcome == MISMATCH
    assert [d.part for d in comparison.differences] == ["body"]
    # Past MAX_DEPTH documents are compared as text: formatting counts there (documented).
    reformatted = run(seen("primary", deep_a, headers=JSON), seen("shadow", deep_a.replace(b"[", b"[ "), headers=JSON))
    assert reformatted.outcome == MISMATCH
    assert run(seen("primary", deep_a, headers=JSON), seen("shadow", deep_a, headers=JSON)).outcome == MATCH


@pytest.mark.parametrize(
    ("a", "b"),
    [(b"one\r\ntwo\r\n", b"one\ntwo\n"), (b"one\ntwo\n", b"one\ntwo")],
)
def test_line_endings_are_a_difference(a: bytes, b: bytes) -> None:
    """CRLF vs LF, or a missing final newline, is one difference at $ that says so."""
    comparison = run(seen("primary", a, headers={"Content-Type": "text/plain"}), seen("shadow", b, headers={"Content-Type": "text/plain"}))
    assert diffs(comparison) == [("body", "$", "changed")]


def test_pathological_text_diff_is_bounded() -> None:
    """Large, repetitive text that differs throughout is reported in milliseconds, as one block."""
    import time

    a = "".join(f"row,{i % 3},x\n" for i in range(20_000)).encode()
    b = "".join(f"row,{i % 5},x\n" for i in range(20_000)).encode()
    started = time.perf_counter()
    comparison = run(seen("primary", a, headers={"Content-Type": "text/csv"}), seen("shadow", b, headers={"Content-Type": "text/csv"}))
    assert time.perf_counter() - started < 2  # generous: difflib alone takes minutes here
    assert comparison.outcome == MISMATCH


def test_most_specific_tolerance_wins() -> None:
    """A tolerance for a path applies there even when a tighter body-wide one is listed first."""
    comparison = run(
        seen("primary", {"score": 0.5}),
        seen("shadow", {"score": 0.505}),
        rule("tolerance", absolute=0.0001),
        rule("tolerance", absolute=0.01, path="$.score"),
    )
    assert comparison.outcome == IGNORED


def test_quoted_keys_are_not_wildcards() -> None:
    """$['.*'] names the key '.*', not every key."""
    comparison = run(seen("primary", {".*": 1, "a": 1}), seen("shadow", {".*": 1, "a": 2}), rule("ignore", path="$['.*']"))
    assert diffs(comparison) == [("body", "$.a", "changed")]


def test_unparseable_cookies_still_count() -> None:
    """A Set-Cookie SimpleCookie cannot parse still counts by its name."""
    p = seen("primary", b"x", headers=CIMultiDict([("Set-Cookie", "sid=a b; Path=/")]))
    assert diffs(run(p, seen("shadow", b"x"))) == [("header", "set-cookie:sid", "removed")]


def test_text_bodies_give_line_differences() -> None:
    """Plain text is compared line by line; each changed hunk names its line."""
    p = seen("primary", b"alpha\nbeta\ngamma\n", headers={"Content-Type": "text/plain"})
    s = seen("shadow", b"alpha\nBETA\ngamma\ndelta\n", headers={"Content-Type": "text/plain"})
    comparison = run(p, s)
    assert diffs(comparison) == [("body", "line 2", "changed"), ("body", "line 4", "added")]
    assert (comparison.differences[0].control, comparison.differences[0].candidate) == ("beta", "BETA")


def test_text_masks_apply_to_the_whole_body() -> None:
    """A mask rule without a path excuses matching text in a non-JSON body."""
    p = seen("primary", b"rendered at 10:00:01", headers={"Content-Type": "text/html"})
    s = seen("shadow", b"rendered at 10:00:09", headers={"Content-Type": "text/html"})
    assert run(p, s, rule("mask", pattern=r"\d\d:\d\d:\d\d")).outcome == IGNORED


def test_binary_bodies_by_digest() -> None:
    """Binary bodies that differ are one difference at $ naming both digests."""
    p = seen("primary", b"\x89PNG\x00\x01", headers={"Content-Type": "image/png"})
    s = seen("shadow", b"\x89PNG\x00\x02", headers={"Content-Type": "image/png"})
    (difference,) = run(p, s).differences
    assert difference.path == "$" and difference.control.startswith("sha256:")


def test_bodies_over_the_cap_compare_by_digest() -> None:
    """Bodies kept only as digests (over compare.max_body_bytes) match when equal and differ when not."""
    big = b"x" * 5000
    assert run(seen("primary", big, limit=100), seen("shadow", big, limit=100)).outcome == MATCH
    other = seen("shadow", big[:-1] + b"y", limit=100)
    assert diffs(run(seen("primary", big, limit=100), other)) == [("body", "$", "changed")]


def test_empty_ruleset_is_shared() -> None:
    """Routes with no applicable rule get the shared empty RuleSet."""
    assert Rules([]).for_route("/a") is EMPTY
    assert compile_rules([]) == EMPTY


def test_content_length_compared_for_head() -> None:
    """For HEAD (no body to compare) a different Content-Length is reported."""
    p, s = seen("primary", b"", headers={"Content-Length": "10"}), seen("shadow", b"", headers={"Content-Length": "12"})
    comparison = compare(exchange(p, s, method="HEAD"), SHADOW, EMPTY, LIMITS)
    assert diffs(comparison) == [("header", "content-length", "changed")]
    body_change = run(seen("primary", {"a": 1}), seen("shadow", {"a": 22}))
    assert diffs(body_change) == [("body", "$.a", "changed")]


def _form(boundary: str, **fields: str) -> tuple[bytes, dict[str, str]]:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_multipart_bodies_compare_part_by_part() -> None:
    """Multipart answers compare by part name: another boundary alone is a match; a changed part is `$.name`."""
    body_a, headers_a = _form("aaaa", user="alice", password="hunter2")
    body_b, headers_b = _form("bbbbbb", user="alice", password="hunter2")
    assert run(seen("primary", body_a, headers=headers_a), seen("shadow", body_b, headers=headers_b)).outcome == MATCH
    body_c, headers_c = _form("cc", user="alice", password="hunter3")
    comparison = run(seen("primary", body_a, headers=headers_a), seen("shadow", body_c, headers=headers_c))
    assert diffs(comparison) == [("body", "$.password", "changed")]


def test_multipart_that_does_not_parse_is_compared_by_digest() -> None:
    """A multipart answer whose parts cannot be read (LF-only delimiters) is one digest difference at `$`, never a
    line diff that would show a value without its name."""
    body_a, headers = _form("bb", password="hunter2")
    body_b, _ = _form("bb", password="hunter3")
    lf = {"Content-Type": headers["Content-Type"]}
    comparison = run(seen("primary", body_a.replace(b"\r\n", b"\n"), headers=lf), seen("shadow", body_b.replace(b"\r\n", b"\n"), headers=lf))
    assert diffs(comparison) == [("body", "$", "changed")]
    assert "hunter" not in str(comparison.differences[0].control)


def test_multipart_parts_are_named_by_name_before_filename_and_repeats_numbered() -> None:
    """A part is named by its `name` even when `filename` comes first; repeated names are `a`, `a#2`, `a#3`."""
    from shadowdiff.compare.multipart import parts

    body = (
        b'--b\r\nContent-Disposition: form-data; filename="x.txt"; name="password"\r\n\r\nhunter2\r\n'
        + b"".join(b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n%d\r\n' % i for i in range(3))
        + b"--b--\r\n"
    )
    assert parts(body, "b") == {"password": "hunter2", "a": "0", "a#2": "1", "a#3": "2"}


def test_a_text_body_holding_a_private_key_is_compared_by_digest() -> None:
    """Text answers with a PEM private key block differ by one digest at `$`, not by lines showing the key."""
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN{}\n-----END PRIVATE KEY-----\n"
    plain = {"Content-Type": "text/plain"}
    comparison = run(seen("primary", key.format("a").encode(), headers=plain), seen("shadow", key.format("b").encode(), headers=plain))
    assert diffs(comparison) == [("body", "$", "changed")]
    assert "MIIE" not in str(comparison.differences[0].control)

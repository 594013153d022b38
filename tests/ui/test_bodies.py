"""Stored bodies as HTML: the JSON tree marks exactly the nodes at the diff engine's paths, text
lines are marked where a hunk's lines are, and whatever a body holds comes out as text."""

from __future__ import annotations

import html as entities
import re

import orjson
from markupsafe import Markup

from shadowdiff.compare.jsondiff import Walk
from shadowdiff.compare.rules import EMPTY
from shadowdiff.ui.bodies import MAX_LINES, json_tree, shown, text_lines


def marked(html: Markup) -> dict[str, str]:
    """data-path -> the text inside its <mark> (tags stripped, entities read)."""
    found = re.findall(r'<mark class="d-\w+" data-path="([^"]*)">(.*?)</mark>', html, re.DOTALL)
    return {entities.unescape(path): entities.unescape(re.sub(r"<[^>]+>", "", inner)) for path, inner in found}


def test_the_tree_marks_the_nodes_the_diff_engine_names() -> None:
    """Every path the JSON diff reports for two bodies (an item in a list, a key that is no identifier,
    an added key) marks exactly that node in the tree of the side that has it."""
    primary = {"items": [{"score": 1}, {"score": 2}], "odd key": {"it's": True}, "plan": "pro"}
    shadow = {"items": [{"score": 1}, {"score": 3}], "odd key": {"it's": False}, "plan": "pro", "currency": "EUR"}
    paths = [d.path for d in Walk(EMPTY, 100).run(primary, shadow).differences]  # the engine's own walker
    assert sorted(paths) == sorted(["$.items[1].score", "$['odd key']['it\\'s']", "$.currency"])
    marks = dict.fromkeys(paths, "changed")
    assert marked(json_tree(primary, marks)[0]) == {"$.items[1].score": "2", "$['odd key']['it\\'s']": "true"}
    assert marked(json_tree(shadow, marks)[0]) == {"$.items[1].score": "3", "$['odd key']['it\\'s']": "false", "$.currency": '"EUR"'}


def test_the_tree_is_indented_json() -> None:
    """Without marks, the tree's text is the body pretty-printed: it parses back to the same value."""
    value = {"a": [1, 2.5, None, True, {"b": "x"}], "c": {}, "d": [], "e": "ü"}
    html, cut = json_tree(value, {})
    assert not cut
    text = entities.unescape(re.sub(r"<[^>]+>", "", html))
    assert orjson.loads(text) == value
    assert '\n  "a": [\n    1,' in text


def test_a_marked_container_is_marked_whole() -> None:
    """A difference at a list (a type change, an unordered list) marks it from its bracket to its close."""
    inner = marked(json_tree({"tags": ["a", "b"]}, {"$.tags": "type_changed"})[0])["$.tags"]
    assert inner.startswith("[") and inner.rstrip().endswith("]") and '"b"' in inner


def test_markup_in_a_body_is_text() -> None:
    """Keys, strings and paths that are markup come out escaped, never as tags."""
    html, _ = json_tree({"<b>": "<script>alert(1)</script>"}, {"$['<b>']": "changed"})
    assert "<script>" not in html and "<b>" not in html
    assert 'data-path="$[&#39;&lt;b&gt;&#39;]"' in html and "&lt;script&gt;" in html
    assert marked(html) == {"$['<b>']": '"<script>alert(1)</script>"'}


def test_deep_nesting_renders_without_recursion() -> None:
    """A body nested 5,000 deep (past Python's recursion limit) renders, its innermost value marked."""
    value: object = 1
    for _ in range(5000):
        value = [value]
    html, cut = json_tree(value, {"$" + "[0]" * 5000: "changed"})
    assert not cut and marked(html) == {"$" + "[0]" * 5000: "1"}


def test_a_huge_body_is_cut_and_says_so() -> None:
    """Past MAX_LINES lines the tree stops, and says it did."""
    html, cut = json_tree(list(range(MAX_LINES * 2)), {})
    assert cut and html.count("\n") == MAX_LINES


def test_text_marks_a_hunk_where_its_lines_are_on_each_side() -> None:
    """A text hunk `line 3` marks the primary's old line 3 and, on the shadow side, its new lines where
    they are (shifted by a line the shadow added above)."""
    primary = "a\nb\nold\nd"
    shadow = "a\nnew top\nb\nnew\nd"
    html, _ = text_lines(primary, [(3, "changed", "old")])
    assert marked(html) == {"line 3": "old"}
    html, _ = text_lines(shadow, [(3, "changed", "new")])
    assert marked(html) == {"line 4": "new"}


def test_bodies_that_are_not_shown_say_why() -> None:
    """An empty body, no answer, a binary body and one over the size kept carry a note and no HTML."""
    assert shown({"type": "empty", "size": 0, "content": None}, [], None)["note"] == "empty body"
    assert shown({"type": "none", "size": 0, "content": None}, [], None)["note"] == "no body"
    binary = shown({"type": "binary", "size": 9, "content": None, "note": "image/png"}, [], None)
    assert binary["html"] is None and binary["note"] == "a binary body is not kept (image/png)"
    digest = shown({"type": "digest", "size": 9, "content": None, "note": "over compare.max_body_bytes: sha256 ab"}, [], None)
    assert digest["note"].startswith("over compare.max_body_bytes")
    hunk = {"part": "body", "path": "line 2", "kind": "changed", "primary": "y"}
    text = shown({"type": "text", "size": 3, "content": "x\ny"}, [hunk], "primary")
    assert marked(text["html"]) == {"line 2": "y"}

"""A stored body as HTML: JSON as an indented tree, text as numbered lines, each place the
comparison found a difference wrapped in a <mark> (its kind as a class, its path as data-path).

JSON paths are written as the diff engine writes them (compare.paths.format_path:
`$.items[3].score`, `$['odd key']`), so a difference's path names exactly one node.
The walk uses its own stack, not recursion: a body nested a thousand deep renders too.
Past MAX_LINES lines a body is cut, with a note (the API has it whole).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from shadowdiff.compare.paths import format_path

MAX_LINES = 20_000
_INDENT = "  "
_CLOSE = object()


def _scalar(value: Any) -> str:
    text = escape(json.dumps(value, ensure_ascii=False))
    if isinstance(value, str):
        return f'<span class="s">{text}</span>'
    if value is None or isinstance(value, bool):
        return f'<span class="b">{text}</span>'
    return f'<span class="n">{text}</span>'


def _mark(kind: str | None, path: str) -> tuple[str, str]:
    if kind is None:
        return "", ""
    return f'<mark class="d-{escape(kind)}" data-path="{escape(path)}">', "</mark>"


def json_tree(value: Any, marks: Mapping[str, str]) -> tuple[Markup, bool]:
    """The HTML lines of `value`, pretty-printed, the nodes at `marks`' paths (path -> kind)
    highlighted; and whether it was cut at MAX_LINES."""
    out: list[str] = []
    # (value, path, depth, key HTML, trailing comma) or (_CLOSE, bracket, depth, end-of-mark, comma)
    stack: list[tuple[Any, str, int, str, str]] = [(value, "$", 0, "", "")]
    while stack:
        if len(out) >= MAX_LINES:
            return Markup("".join(out)), True
        item, path, depth, key, comma = stack.pop()
        pad = _INDENT * depth
        if item is _CLOSE:
            out.append(f"{pad}{path}{key}{comma}\n")
            continue
        start, end = _mark(marks.get(path), path)
        children: Sequence[tuple[Any, str, str]]
        if isinstance(item, dict) and item:
            brackets = "{}"
            children = [(v, path + format_path((k,))[1:], f'<span class="k">{escape(json.dumps(k, ensure_ascii=False))}</span>: ')
                        for k, v in item.items()]  # fmt: skip
        elif isinstance(item, list) and item:
            brackets = "[]"
            children = [(v, f"{path}[{i}]", "") for i, v in enumerate(item)]
        else:
            shown = ("{}" if isinstance(item, dict) else "[]") if isinstance(item, (dict, list)) else _scalar(item)
            out.append(f"{pad}{key}{start}{shown}{end}{comma}\n")
            continue
        out.append(f"{pad}{key}{start}{brackets[0]}\n")
        stack.append((_CLOSE, brackets[1], depth, end, comma))
        last = len(children) - 1
        for i in range(last, -1, -1):
            child, child_path, child_key = children[i]
            stack.append((child, child_path, depth + 1, child_key, "," if i < last else ""))
    return Markup("".join(out)), False


def text_lines(text: str, hunks: Sequence[tuple[int, str, str | None]]) -> tuple[Markup, bool]:
    """`text` as numbered lines, each hunk's lines highlighted: (line N where the diff engine saw it,
    kind, this side's lines of it). A side's lines are looked for nearest to N (the other side's
    lines may have shifted them); cut at MAX_LINES."""
    lines = text.splitlines()
    marked: dict[int, str] = {}
    for line, kind, block in hunks:
        if block is None:
            continue
        wanted = block.split("\n")
        at = _nearest(lines, wanted, line - 1)
        if at is not None:
            marked.update(dict.fromkeys(range(at, at + len(wanted)), kind))
    out = []
    for i, line in enumerate(lines[:MAX_LINES]):
        start, end = _mark(marked.get(i), f"line {i + 1}")
        out.append(f'<span class="ln">{i + 1}</span>{start}{escape(line)}{end}\n')
    return Markup("".join(out)), len(lines) > MAX_LINES


def _nearest(lines: list[str], block: list[str], hint: int) -> int | None:
    starts = [i for i in range(len(lines) - len(block) + 1) if lines[i] == block[0] and lines[i : i + len(block)] == block]
    return min(starts, key=lambda i: abs(i - hint)) if starts else None


def shown(body: Mapping[str, Any], differences: Sequence[Mapping[str, Any]], side: str | None) -> dict[str, Any]:
    """A stored body (store.samples: type json, text, empty, none, digest, encoded or binary) as
    the page shows it: `html` for JSON and text, else `note` says why there is nothing to show.
    `side` (primary or shadow) picks which lines of a text hunk are this body's."""
    kind, html, cut = body["type"], None, False
    body_differences = [d for d in differences if d["part"] == "body"]
    if kind == "json":
        html, cut = json_tree(body["content"], {d["path"]: d["kind"] for d in body_differences})
    elif kind == "text":
        hunks = [(int(d["path"][5:]), d["kind"], d.get(side) if side else None)
                 for d in body_differences if d["path"].startswith("line ") and d["path"][5:].isdigit()]  # fmt: skip
        html, cut = text_lines(body["content"], hunks)
    notes = {"empty": "empty body", "none": "no body", "binary": "a binary body is not kept"}
    note = body.get("note") or notes.get(kind, "")
    if kind == "binary" and body.get("note"):
        note = f"a binary body is not kept ({body['note']})"
    return {"type": kind, "size": body.get("size", 0), "html": html, "cut": cut, "note": note, "max_lines": MAX_LINES}

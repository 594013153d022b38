"""Body comparison: bytes, then decoded content, then JSON, text or binary.

`compare_bodies()` is a pure function of plain, picklable values so that large
bodies can be compared in a worker process with exactly the same code.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass

import orjson

from shadowdiff.compare import numbers
from shadowdiff.compare.budget import Budget
from shadowdiff.compare.decode import TooLarge, Undecodable, decode
from shadowdiff.compare.hosts import Explained, Hosts, note
from shadowdiff.compare.jsondiff import Walk, canonical, normalize
from shadowdiff.compare.multipart import NotMultipart, boundary, parts
from shadowdiff.compare.rules import EMPTY, MASKED, RuleSet
from shadowdiff.model import Body, Difference

# How BodyResult.oversized names the two sides (the engine maps them to lane names).
CONTROL_SIDE, CANDIDATE_SIDE = "control", "candidate"
_TEXT_TYPES = ("text/", "xml", "javascript", "html", "csv", "yaml", "x-www-form-urlencoded")
# Differences collected per comparison, past compare.max_differences (what a log line lists):
# noise detection counts every differing path, so noise at 25 paths must not hide a regression
# at the 26th. Far more than a response usually differs in, yet bounded: each costs walk steps,
# and the worker pickles them back.
MAX_FOUND = 200


@dataclass(slots=True)  # per request: not frozen (see shadowdiff.model)
class BodyView:
    """One side's body with the two headers that say how to read it, and the Host it was asked with."""

    body: Body
    content_type: str
    content_encoding: str
    host: str = ""  # "": unknown, so the Host policy explains nothing (compare.hosts)


@dataclass(frozen=True, slots=True)
class Limits:
    max_decoded_bytes: int
    max_differences: int
    steps: int | None = None  # a bound on the work (compare.budget); past it OverBudget is raised
    max_found: int = MAX_FOUND

    @property
    def collected(self) -> int:
        """How many differences a comparison keeps: every one up to max_found (or max_differences if larger)."""
        return max(self.max_found, self.max_differences)


@dataclass(slots=True)  # per request: not frozen (see shadowdiff.model)
class BodyResult:
    differences: tuple[Difference, ...] = ()
    excused: bool = False  # differences existed and every one was excused by a rule
    decoded_equal: bool = False  # the content is the same (encodings aside)
    oversized: tuple[str, ...] = ()  # CONTROL_SIDE / CANDIDATE_SIDE: decoding passed the cap
    cut: bool = False  # stopped at Limits.collected: more differences existed or may exist
    host_explained: tuple[tuple[str, str], ...] = ()  # ("body", path) the Host policy explains (compare.hosts)


def compare_bodies(control: BodyView, candidate: BodyView, rules: RuleSet, limits: Limits) -> BodyResult:
    """Compare two bodies under `rules`; a pure function of picklable values."""
    p, s = control.body, candidate.body
    if p.data is None or s.data is None:
        return _by_digest(p, s)
    if p.data == s.data and control.content_encoding == candidate.content_encoding:
        return BodyResult(decoded_equal=True)  # the common case: no parsing at all
    oversized = []
    p_data = _decoded(p.data, control.content_encoding, limits, CONTROL_SIDE, oversized)
    s_data = _decoded(s.data, candidate.content_encoding, limits, CANDIDATE_SIDE, oversized)
    if oversized:
        # Never expand a bomb to look inside it. If only one side passed the cap the
        # contents differ (in size at least); if both did, compressed bytes say nothing
        # about the content (levels, timestamps), so the body is left uncompared, flagged.
        if len(oversized) == 1:
            sizes = {side: f"over {limits.max_decoded_bytes} bytes decoded" for side in oversized}
            sizes.setdefault(CONTROL_SIDE, f"{len(p_data or b'')} bytes decoded")
            sizes.setdefault(CANDIDATE_SIDE, f"{len(s_data or b'')} bytes decoded")
            difference = Difference("body", "$", "changed", sizes[CONTROL_SIDE], sizes[CANDIDATE_SIDE])
            return BodyResult((difference,), oversized=tuple(oversized))
        return BodyResult(oversized=tuple(oversized))
    if p_data is None or s_data is None:  # an unknown or corrupt coding: compare what was sent
        return BodyResult(_bytes_differences(p.data, s.data))
    if p_data == s_data:
        return BodyResult(decoded_equal=True)
    budget = Budget(limits.steps)  # one for the whole comparison; parsing costs a step per 64 bytes
    hosts = Hosts.of(control.host, candidate.host)
    budget.spend((len(p_data) + len(s_data)) // 48)
    p_boundary, s_boundary = boundary(control.content_type), boundary(candidate.content_type)
    if p_boundary or s_boundary:
        try:
            if not (p_boundary and s_boundary):
                raise NotMultipart("one side only")
            control_parts, candidate_parts = parts(p_data, p_boundary, budget), parts(s_data, s_boundary, budget)
        except NotMultipart:  # compared by digest: a line diff would show a value without its name
            return BodyResult(_bytes_differences(p_data, s_data))
        return _compare_parsed(control_parts, candidate_parts, rules, limits, budget, hosts, exact=False)
    if _looks_json(control.content_type, p_data) or _looks_json(candidate.content_type, s_data):
        return _compare_json(p_data, s_data, rules, limits, budget, hosts)
    if _looks_text(control.content_type, p_data) and _looks_text(candidate.content_type, s_data):
        return _compare_text(p_data, s_data, rules, limits, budget, hosts)
    return BodyResult(_bytes_differences(p_data, s_data))


def _decoded(data: bytes, encoding: str, limits: Limits, side: str, oversized: list[str]) -> bytes | None:
    try:
        return decode(data, encoding, limits.max_decoded_bytes)
    except TooLarge:
        oversized.append(side)
    except Undecodable:
        pass
    return None


def _by_digest(p: Body, s: Body) -> BodyResult:
    """At least one side was kept as a digest only (past the cap, or the buffer budget): compare hashes."""
    same = p.size == s.size and _hexdigest(p) == _hexdigest(s)
    if same:
        return BodyResult(decoded_equal=True)
    return BodyResult((Difference("body", "$", "changed", _body_digest(p), _body_digest(s)),))


def _hexdigest(body: Body) -> str:
    return body.digest if body.digest is not None else hashlib.sha256(body.data or b"").hexdigest()


def _body_digest(body: Body) -> str:
    if body.digest is None:
        return _digest(body.data or b"")
    return _summary(body.digest, body.size)


def _bytes_differences(a: bytes, b: bytes) -> tuple[Difference, ...]:
    if a == b:
        return ()
    return (Difference("body", "$", "changed", _digest(a), _digest(b)),)


def _digest(data: bytes) -> str:
    return _summary(hashlib.sha256(data).hexdigest(), len(data))


def _summary(hexdigest: str, size: int) -> str:
    """How a body compared by digest appears in a difference."""
    return f"sha256:{hexdigest[:16]}... ({size} bytes)"


def _looks_json(content_type: str, data: bytes) -> bool:
    if "json" in content_type.lower():
        return True
    head = data[:64].lstrip()
    return head[:1] in (b"{", b"[")


def _looks_text(content_type: str, data: bytes) -> bool:
    kind = content_type.lower()
    if any(marker in kind for marker in _TEXT_TYPES):
        return True
    if b"\0" in data[:4096]:
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 4090  # a multi-byte character cut at the sample's edge
    return True


def _compare_json(a_raw: bytes, b_raw: bytes, rules: RuleSet, limits: Limits, budget: Budget, hosts: Hosts | None) -> BodyResult:
    a_raw, b_raw = a_raw.removeprefix(_BOM), b_raw.removeprefix(_BOM)
    # Both sides the same way: a Decimal never meets the float orjson made of the same text.
    exact = numbers.needs_exact(a_raw) or numbers.needs_exact(b_raw)
    if exact:  # json with Decimals: some 5x orjson's time
        budget.spend((len(a_raw) + len(b_raw)) // 16)
    a, b = _parse(a_raw, exact), _parse(b_raw, exact)
    if a is _TOO_DEEP or b is _TOO_DEEP:
        return _compare_deep(a_raw, b_raw)
    if a is _NOT_JSON or b is _NOT_JSON:
        if a is _NOT_JSON and b is _NOT_JSON:
            return _compare_text(a_raw, b_raw, rules, limits, budget, hosts)
        return BodyResult(
            (Difference("body", "$", "type_changed", _kind_of(a, a_raw), _kind_of(b, b_raw)),)
        )
    try:
        return _compare_parsed(a, b, rules, limits, budget, hosts, exact=exact)
    except (RecursionError, orjson.JSONEncodeError):
        # Nested past what ==, orjson's encoder (255) or the recursion limit can take:
        # found by trying rather than by walking every document in Python first.
        return _compare_deep(a_raw, b_raw)


def _parse(raw: bytes, exact: bool) -> object:
    """The document, _NOT_JSON, or _TOO_DEEP (orjson stops at 1024 levels, json at the recursion limit)."""
    if exact:
        try:
            return numbers.loads_exact(raw)
        except numbers.NotJSON:
            return _NOT_JSON
        except RecursionError:
            return _TOO_DEEP
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _TOO_DEEP if "depth limit" in str(exc) else _NOT_JSON


def _compare_parsed(
    a: object, b: object, rules: RuleSet, limits: Limits, budget: Budget, hosts: Hosts | None, *, exact: bool
) -> BodyResult:
    strict = a == b
    if strict:
        if not exact and canonical(a) == canonical(b):  # orjson cannot write every exact number
            return BodyResult(decoded_equal=True)
        # Equal to Python, not to JSON (true vs 1), or only 1 vs 1.0 (the same number):
        # walk every node, before any rule, to tell which.
        if not Walk(EMPTY, 1, strict=True, budget=budget).run(a, b).differences:
            return BodyResult(decoded_equal=True)
    # `strict` descends even where == says equal, to find the true/1 kind of change.
    a, b = normalize(a, rules, budget), normalize(b, rules, budget)
    walk = Walk(rules, limits.collected, strict=strict, budget=budget, hosts=hosts).run(a, b)
    explained = tuple(walk.explained)
    if walk.differences:
        return BodyResult(tuple(walk.differences), cut=walk.cut, host_explained=explained)
    if explained:  # every difference left after the rules is the Host policy's
        return BodyResult(host_explained=explained)
    return BodyResult(excused=True)  # they differed, and the rules account for all of it


def _compare_deep(a_raw: bytes, b_raw: bytes) -> BodyResult:
    """Documents nested too deep to parse or compare structurally are compared as bytes, rules aside."""
    if a_raw == b_raw:
        return BodyResult(decoded_equal=True)
    return BodyResult((Difference("body", "$", "changed", _digest(a_raw), _digest(b_raw)),))


_NOT_JSON = object()
_TOO_DEEP = object()
_BOM = b"\xef\xbb\xbf"


def _kind_of(value: object, raw: bytes) -> str:
    if value is _NOT_JSON:
        return "not JSON: " + raw[:60].decode("utf-8", "replace")
    return "JSON"


def _holds_private_key(data: bytes) -> bool:
    return b"PRIVATE KEY" in data and b"-----BEGIN " in data


def _compare_text(a_raw: bytes, b_raw: bytes, rules: RuleSet, limits: Limits, budget: Budget, hosts: Hosts | None) -> BodyResult:
    a, b = a_raw.decode("utf-8", "replace"), b_raw.decode("utf-8", "replace")
    if a == b:  # the bytes differ only where they are not UTF-8
        return BodyResult(_bytes_differences(a_raw, b_raw))
    for mask in rules.masks:
        if not mask.where:  # a path means a JSON field; in text only whole-body masks apply
            a, b = mask.regex.sub(MASKED, a, budget), mask.regex.sub(MASKED, b, budget)
    if a == b:
        return BodyResult(excused=True)
    if _holds_private_key(a_raw) or _holds_private_key(b_raw):
        # A key block's lines would be differences of their own, each without the BEGIN line
        # that says what they are: such a body is compared by digest.
        return BodyResult(_bytes_differences(a_raw, b_raw))
    a_lines, b_lines = a.splitlines(), b.splitlines()
    if a_lines == b_lines:  # only line endings, or the final newline
        return BodyResult((Difference("body", "$", "changed", _ending(a), _ending(b)),))
    return _line_differences(a_lines, b_lines, _Lines(limits.collected, budget, hosts))


def _ending(text: str) -> str:
    endings = "CRLF" if "\r\n" in text else "LF" if "\n" in text else "no line breaks"
    final = "a final newline" if text.endswith("\n") else "no final newline"
    return f"{endings}, {final}"


# difflib is quadratic on repetitive text: it only ever sees this many lines.
MAX_DIFF_LINES = 400


class _Lines:
    """What the line diff found: hunks up to `limit`, and lines the Host policy explains."""

    def __init__(self, limit: int, budget: Budget, hosts: Hosts | None) -> None:
        self.limit, self.budget, self.hosts = limit, budget, hosts
        self.differences: list[Difference] = []
        self.explained: Explained = []
        self.cut = False

    def hunk(self, line: int, kind: str, old: list[str], new: list[str]) -> None:
        """Lines changed from `line` (1-based): a difference, unless the Host policy explains it."""
        a, b = "\n".join(old) if old else None, "\n".join(new) if new else None
        if self.hosts is not None and a is not None and b is not None and self.hosts.explains(a, b, self.budget):
            note(self.explained, "body", f"line {line}")
        elif len(self.differences) < self.limit:
            self.differences.append(Difference("body", f"line {line}", kind, a, b))
        else:
            self.cut = True

    def changed(self, line: int, old: list[str], new: list[str]) -> None:
        """A replaced block: line by line when it kept its length, so a URL line is explained on its own
        and the lines around it that really changed are one hunk each run, as before."""
        if self.hosts is None or len(old) != len(new):
            self.hunk(line, "changed", old, new)
            return
        run = 0  # lines of the current run of unexplained lines
        for offset, (a, b) in enumerate(zip(old, new)):
            if self.hosts.explains(a, b, self.budget):
                self._flush(line + offset - run, old, new, offset - run, run)
                run = 0
                note(self.explained, "body", f"line {line + offset}")
            else:
                run += 1
        self._flush(line + len(old) - run, old, new, len(old) - run, run)

    def _flush(self, line: int, old: list[str], new: list[str], start: int, count: int) -> None:
        if count:
            self.hunk(line, "changed", old[start : start + count], new[start : start + count])

    def result(self) -> BodyResult:
        explained = tuple(self.explained)
        return BodyResult(tuple(self.differences), cut=self.cut, host_explained=explained)


def _line_differences(a: list[str], b: list[str], found: _Lines) -> BodyResult:
    """One difference per changed hunk: `line N`, with the old and new lines.

    Equal leading and trailing lines are skipped in linear time; the changed middle
    is diffed only if it is small, else reported as one changed block from its
    first line (its first three lines shown; not `cut`: the block is the whole
    change), so a pathological body costs milliseconds, not minutes.
    """
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    middle_a, middle_b = a[start:end_a], b[start:end_b]
    if len(middle_a) + len(middle_b) > MAX_DIFF_LINES:
        if found.hosts is not None and found.hosts.explains("\n".join(middle_a), "\n".join(middle_b), found.budget):
            note(found.explained, "body", f"line {start + 1}")
        else:
            found.hunk(start + 1, "changed", middle_a[:3], middle_b[:3])
        return found.result()
    matcher = difflib.SequenceMatcher(None, middle_a, middle_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if len(found.differences) >= found.limit:
            found.cut = True
            break
        if tag == "replace":
            found.changed(start + i1 + 1, middle_a[i1:i2], middle_b[j1:j2])
        else:
            kind = "removed" if tag == "delete" else "added"
            found.hunk(start + i1 + 1, kind, middle_a[i1:i2], middle_b[j1:j2])
    return found.result()

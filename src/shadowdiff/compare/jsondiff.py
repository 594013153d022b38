"""Structural JSON comparison: normalise by the rules, then walk both trees together.

The walk descends only where the two sides differ: equal subtrees are skipped with
one C-level `==`, so the cost follows the number of differences, not the size of
the document (a 1 MB body with three differences costs 1.3x parsing it: see
benchmarks/compare_cost.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shadowdiff.compare import paths
from shadowdiff.compare.budget import UNBOUNDED, Budget
from shadowdiff.compare.hosts import Explained, Hosts, note
from shadowdiff.compare.numbers import is_number, loggable, sort_key
from shadowdiff.compare.paths import ANY_INDEX, ANY_KEY, Pattern
from shadowdiff.compare.rules import MASKED, RuleSet
from shadowdiff.model import Difference

IGNORED = "<ignored>"
# Deeper documents are compared only down to here: recursion (here, in ==, in orjson)
# must stay far from Python's and orjson's limits whatever a backend sends.
MAX_DEPTH = 100


def normalize(value: Any, rules: RuleSet, budget: Budget = UNBOUNDED) -> Any:
    """Apply ignore, mask and unordered rules to a parsed body (in place where possible)."""
    for pattern in rules.ignore:
        value = _at(value, pattern, _drop, budget)
    for mask in rules.masks:
        value = _at(value, mask.where or (), lambda v, regex=mask.regex: _mask(v, regex, budget), budget)
    for pattern in rules.unordered:
        value = _at(value, pattern, lambda v: _sort(v, budget), budget)
    return value


_DROP = object()


def _drop(value: Any) -> Any:
    return _DROP


def _mask(value: Any, regex: Any, budget: Budget) -> Any:
    """Every string in `value` masked, in place, with an explicit stack: any depth is fine."""
    if isinstance(value, str):
        return regex.sub(MASKED, value, budget)
    stack = [value]
    while stack:
        node = stack.pop()
        entries = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        entries = list(entries)
        budget.spend(1 + len(entries) // 2)
        for key, item in entries:
            if isinstance(item, str):
                node[key] = regex.sub(MASKED, item, budget)
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return value


def _sort(value: Any, budget: Budget) -> Any:
    if not isinstance(value, list):
        return value
    budget.spend(len(value))
    try:
        keys = [canonical(item) for item in value]
    except orjson.JSONEncodeError:  # an item nested past orjson's 255 levels: compared in order
        return value
    order = sorted(range(len(value)), key=keys.__getitem__)  # stable: equal keys keep their order
    return [value[index] for index in order]


def _at(node: Any, pattern: Pattern, fn: Callable[[Any], Any], budget: Budget) -> Any:
    """Replace every value matching `pattern` under `node` by fn(value); _DROP removes it."""
    budget.spend(1)
    if not pattern:
        return fn(node)
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, dict) and (isinstance(head, str) or head is ANY_KEY):
        keys = list(node) if head is ANY_KEY else ([head] if head in node else [])
        for key in keys:
            new = _at(node[key], rest, fn, budget)
            if new is _DROP:
                del node[key]
            else:
                node[key] = new
    elif isinstance(node, list) and (head is ANY_INDEX or isinstance(head, int)):
        indexes = range(len(node)) if head is ANY_INDEX else ([head] if head < len(node) else [])
        for index in indexes:
            new = _at(node[index], rest, fn, budget)
            node[index] = IGNORED if new is _DROP else new  # keep later indexes where they were
    return node


class Walk:
    """Collects differences between two parsed documents, up to `limit`; `cut` says it stopped early.

    With `hosts`, a string the Host policy explains (compare.hosts) is not a difference:
    its path goes to `explained` instead.
    """

    def __init__(
        self, rules: RuleSet, limit: int, *, strict: bool = False, budget: Budget = UNBOUNDED, hosts: Hosts | None = None
    ) -> None:
        self.rules = rules
        self.budget = budget
        self.limit = limit
        self.strict = strict  # descend even into `==` subtrees (True == 1 in Python, not in JSON)
        self.hosts = hosts
        self.differences: list[Difference] = []
        self.explained: Explained = []
        self.cut = False  # more differences existed, or may exist, than were kept

    def run(self, a: Any, b: Any) -> Walk:
        self._walk(a, b, ())
        return self

    def _full(self) -> bool:
        """Whether the limit is reached: what is left unwalked may differ, so the listing is cut."""
        if len(self.differences) >= self.limit:
            self.cut = True
            return True
        return False

    def _add(self, path: Sequence[str | int], kind: str, a: Any, b: Any) -> None:
        # Values are depth-bounded and exact numbers given as text (numbers.loggable): a
        # removed subtree 1,000 levels deep must not make pickle, orjson or redaction recurse.
        if not self._full():
            self.budget.spend(2)  # the path written, both values made loggable
            self.differences.append(Difference("body", paths.format_path(path), kind, loggable(a), loggable(b)))

    def _walk(self, a: Any, b: Any, path: tuple[str | int, ...]) -> None:
        if self._full():
            return
        self.budget.spend(3)
        if len(path) >= MAX_DEPTH and isinstance(a, (dict, list)):
            self._add(path, "changed", f"<nested deeper than {MAX_DEPTH}>", f"<nested deeper than {MAX_DEPTH}>")
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key, value in a.items():
                if self._full():
                    return  # enough: the rest of a 64 KiB sibling list is not walked for nothing
                if key not in b:
                    self._add((*path, key), "removed", value, None)
                elif self.strict or value != b[key] or (type(value) is not type(b[key]) and not _same_kind(value, b[key])):
                    self._walk(value, b[key], (*path, key))
            for key, value in b.items():
                if key not in a:
                    self._add((*path, key), "added", None, value)
        elif isinstance(a, list) and isinstance(b, list):
            for index, (x, y) in enumerate(zip(a, b)):
                if self._full():
                    return
                if self.strict or x != y or (type(x) is not type(y) and not _same_kind(x, y)):
                    self._walk(x, y, (*path, index))
            for index in range(len(b), len(a)):
                self._add((*path, index), "removed", a[index], None)
            for index in range(len(a), len(b)):
                self._add((*path, index), "added", None, b[index])
        elif is_number(a) and is_number(b):
            if a != b:
                tolerance = self.rules.tolerance_for(path)
                if tolerance is None or not tolerance.allows(a, b):
                    self._add(path, "changed", a, b)
        elif not _same_kind(a, b):
            self._add(path, "type_changed", a, b)
        elif a != b:
            if self.hosts is not None and isinstance(a, str) and self.hosts.explains(a, b, self.budget):
                note(self.explained, "body", paths.format_path(path))
            else:
                self._add(path, "changed", a, b)


def _same_kind(a: Any, b: Any) -> bool:
    """JSON type equality: int and float are both numbers; bool is not a number."""
    if is_number(a) and is_number(b):
        return True
    return type(a) is type(b)


def canonical(value: Any) -> bytes:
    """Sorted-key JSON bytes (a Decimal as its text); raises orjson.JSONEncodeError past 255 levels."""
    return orjson.dumps(value, default=sort_key, option=orjson.OPT_SORT_KEYS)

"""compare(exchange, lane, rules, limits) -> Comparison: status, headers, body."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.compare.body import CANDIDATE_SIDE, CONTROL_SIDE, BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.headers import header_differences
from shadowdiff.compare.rules import EMPTY, RuleSet
from shadowdiff.model import (
    CONTROL, IGNORED, MATCH, MISMATCH, SHADOW, SHADOW_ERROR, Body, Comparison, Difference, Exchange, Observation,
)  # fmt: skip

DEFAULT_LIMITS = Limits(max_decoded_bytes=8 * 1024 * 1024, max_differences=20)
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_EMPTY_BODY = Body(size=0, data=b"")


def compare(exchange: Exchange, lane: str = SHADOW, rules: RuleSet = EMPTY, limits: Limits = DEFAULT_LIMITS) -> Comparison:
    """Compare `lane`'s answer with the control's (the control must have answered)."""
    candidate = exchange.candidates[lane]
    if not candidate.ok:
        return Comparison(exchange, lane, SHADOW_ERROR)
    body = compare_bodies(body_view(exchange.control), body_view(candidate), rules, limits)
    return assemble(exchange, lane, rules, limits, body)


def body_view(observation: Observation) -> BodyView:
    headers = observation.headers or _NO_HEADERS
    return BodyView(
        observation.body or _EMPTY_BODY,
        headers.get("Content-Type", ""),
        headers.get("Content-Encoding", ""),
    )


def assemble(exchange: Exchange, lane: str, rules: RuleSet, limits: Limits, body: BodyResult) -> Comparison:
    """The verdict from the status, the headers, and an already computed body result."""
    control, candidate = exchange.control, exchange.candidates[lane]
    differences: list[Difference] = []
    if control.status != candidate.status:
        differences.append(Difference("status", "status", "changed", control.status, candidate.status))
    bodiless = exchange.request.method == "HEAD" or control.status == 304
    headers, excused_headers = header_differences(
        control.headers or _NO_HEADERS, candidate.headers or _NO_HEADERS, rules, bodiless=bodiless
    )
    differences.extend(headers)
    differences.extend(body.differences)
    if differences:
        outcome = MISMATCH
    elif body.excused or excused_headers:
        outcome = IGNORED
    else:
        outcome = MATCH
    sides = {CONTROL_SIDE: CONTROL, CANDIDATE_SIDE: lane}
    return Comparison(
        exchange, lane, outcome, tuple(differences[: limits.max_differences]), tuple(sides[s] for s in body.oversized)
    )

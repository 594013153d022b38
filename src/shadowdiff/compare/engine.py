"""compare(exchange, rules, limits) -> Comparison: status, headers, body."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.compare.body import BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.headers import header_differences
from shadowdiff.compare.model import IGNORED, MATCH, MISMATCH, SHADOW_ERROR, Comparison, Difference, Exchange
from shadowdiff.compare.rules import EMPTY, RuleSet
from shadowdiff.forward import Body, Observation

DEFAULT_LIMITS = Limits(max_decoded_bytes=8 * 1024 * 1024, max_differences=20)
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_EMPTY_BODY = Body(size=0, data=b"")


def compare(exchange: Exchange, rules: RuleSet = EMPTY, limits: Limits = DEFAULT_LIMITS) -> Comparison:
    """Compare the shadow's answer with the primary's (the primary must have answered)."""
    if not exchange.shadow.ok:
        return Comparison(exchange, SHADOW_ERROR)
    body = compare_bodies(body_view(exchange.primary), body_view(exchange.shadow), rules, limits)
    return assemble(exchange, rules, limits, body)


def body_view(observation: Observation) -> BodyView:
    headers = observation.headers or _NO_HEADERS
    return BodyView(
        observation.body or _EMPTY_BODY,
        headers.get("Content-Type", ""),
        headers.get("Content-Encoding", ""),
    )


def assemble(exchange: Exchange, rules: RuleSet, limits: Limits, body: BodyResult) -> Comparison:
    """The verdict from the status, the headers, and an already computed body result."""
    primary, shadow = exchange.primary, exchange.shadow
    differences: list[Difference] = []
    if primary.status != shadow.status:
        differences.append(Difference("status", "status", "changed", primary.status, shadow.status))
    bodiless = exchange.request.method == "HEAD" or primary.status == 304
    headers, excused_headers = header_differences(
        primary.headers or _NO_HEADERS, shadow.headers or _NO_HEADERS, rules, bodiless=bodiless
    )
    differences.extend(headers)
    differences.extend(body.differences)
    if differences:
        outcome = MISMATCH
    elif body.excused or excused_headers:
        outcome = IGNORED
    else:
        outcome = MATCH
    return Comparison(exchange, outcome, tuple(differences[: limits.max_differences]), oversized=body.oversized)

"""compare(exchange, lane, rules, limits) -> Comparison: status, headers, body."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.compare.body import CANDIDATE_SIDE, CONTROL_SIDE, BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.headers import header_differences
from shadowdiff.compare.hosts import MAX_EXPLAINED, Hosts
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
    body = compare_bodies(*views(exchange, lane), rules, limits)
    return assemble(exchange, lane, rules, limits, body)


def hosts(exchange: Exchange, lane: str) -> tuple[str, str]:
    """The Host the control and `lane` were asked with: the client's, unless the lane says its own."""
    client = exchange.request.client_host
    return client, exchange.candidates[lane].host or client


def views(exchange: Exchange, lane: str) -> tuple[BodyView, BodyView]:
    """The control's and `lane`'s bodies as the pure comparison takes them, each with its Host."""
    control_host, candidate_host = hosts(exchange, lane)
    return body_view(exchange.control, control_host), body_view(exchange.candidates[lane], candidate_host)


def body_view(observation: Observation, host: str) -> BodyView:
    """`observation`'s body, read as its headers say, with the Host it was asked with ("" if unknown)."""
    headers = observation.headers or _NO_HEADERS
    return BodyView(
        observation.body or _EMPTY_BODY,
        headers.get("Content-Type", ""),
        headers.get("Content-Encoding", ""),
        host,
    )


def assemble(exchange: Exchange, lane: str, rules: RuleSet, limits: Limits, body: BodyResult) -> Comparison:
    """The verdict from the status, the headers, and an already computed body result.

    Every difference found is kept, up to `limits.collected` in all (the log lists the
    first compare.max_differences; noise detection counts them all); `cut` says more
    existed. Differences the Host policy explains are not differences: a comparison
    whose every difference was explained (or excused by a rule) is ignored.
    """
    control, candidate = exchange.control, exchange.candidates[lane]
    differences: list[Difference] = []
    if control.status != candidate.status:
        differences.append(Difference("status", "status", "changed", control.status, candidate.status))
    bodiless = exchange.request.method == "HEAD" or control.status == 304
    headers, excused_headers, explained = header_differences(
        control.headers or _NO_HEADERS, candidate.headers or _NO_HEADERS, rules,
        bodiless=bodiless, hosts=Hosts.of(*hosts(exchange, lane)),
    )  # fmt: skip
    differences.extend(headers)
    differences.extend(body.differences)
    explained.extend(body.host_explained)
    if differences:
        outcome = MISMATCH
    elif body.excused or excused_headers or explained:
        outcome = IGNORED
    else:
        outcome = MATCH
    sides = {CONTROL_SIDE: CONTROL, CANDIDATE_SIDE: lane}
    kept = limits.collected
    return Comparison(
        exchange, lane, outcome, tuple(differences[:kept]), tuple(sides[s] for s in body.oversized),
        cut=body.cut or len(differences) > kept, host_explained=tuple(explained[:MAX_EXPLAINED]),
    )  # fmt: skip

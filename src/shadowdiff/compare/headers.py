"""Header comparison: by name, case-insensitively, skipping what is volatile by nature."""

from __future__ import annotations

from shadowdiff.compare.budget import UNBOUNDED
from shadowdiff.compare.hosts import Explained, Hosts, note
from shadowdiff.compare.multipart import boundary
from shadowdiff.compare.rules import RuleSet
from shadowdiff.model import HOP_BY_HOP, Difference, Headers

# Never compared: they differ on every response without saying anything about it.
VOLATILE = frozenset(
    {
        "date", "age", "expires", "last-modified", "server-timing", "via",
        "x-request-id", "request-id", "x-correlation-id", "correlation-id",
        "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
        "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id",
        "x-amzn-trace-id", "x-amzn-requestid", "x-cloud-trace-context",
        "x-datadog-trace-id", "x-datadog-parent-id", "x-envoy-upstream-service-time",
        "x-runtime", "x-response-time", "cf-ray", "x-served-by", "x-timer",
    }
)  # fmt: skip
_SKIP_BODILESS = VOLATILE | HOP_BY_HOP | {"set-cookie"}
_SKIP = _SKIP_BODILESS | {"content-length"}


def header_differences(
    control: Headers, candidate: Headers, rules: RuleSet, *, bodiless: bool, hosts: Hosts | None = None
) -> tuple[list[Difference], int, Explained]:
    """(differences that count, how many a rule excused, ("header", name) the Host policy explained).

    A value that differs only by the candidate's host where the control has the client's
    (a Location, a Link) is explained, not a difference (compare.hosts); the work is
    bounded by the head limits, so it is not charged to a budget.

    Content-Length is derived from the body: where there is a body it says nothing
    the body comparison does not (equal content under another encoding, or a body
    difference already reported). It is compared only for answers without a body
    (HEAD, 304), where it is the one sign of what the body would have been.
    """
    if list(control.items()) == list(candidate.items()):  # the same lines in the same order: nothing to see
        return [], 0, []
    a = _folded(control, _SKIP_BODILESS if bodiless else _SKIP)
    b = _folded(candidate, _SKIP_BODILESS if bodiless else _SKIP)
    if boundary(a.get("content-type", "")) and boundary(b.get("content-type", "")):
        # A multipart boundary is chosen anew for each answer: the parts are compared, not it.
        a["content-type"], b["content-type"] = _unbounded(a["content-type"]), _unbounded(b["content-type"])
    differences: list[Difference] = []
    explained: Explained = []
    if a != b:
        for name in sorted(a.keys() | b.keys()):
            value_a, value_b = a.get(name) or None, b.get(name) or None
            if value_a == value_b:
                continue
            if (
                hosts is not None and value_a is not None and value_b is not None
                and name not in rules.ignore_headers and hosts.explains(value_a, value_b, UNBOUNDED)
            ):  # fmt: skip
                note(explained, "header", name)
            else:
                differences.append(Difference("header", name, _kind(value_a, value_b), value_a, value_b))
    differences.extend(_cookie_differences(control, candidate))
    counted = [d for d in differences if _header_of(d) not in rules.ignore_headers]
    return counted, len(differences) - len(counted), explained


def _folded(headers: Headers, skip: frozenset[str]) -> dict[str, str]:
    """Lower-case name -> its values joined with ", " (RFC 9110 §5.3), `skip` names left out."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in skip:
            continue
        before = out.get(key)
        out[key] = value if before is None else before + ", " + value
    return out


def _unbounded(content_type: str) -> str:
    kind, *params = content_type.split(";")
    return ";".join([kind, *(p for p in params if p.strip().lower().partition("=")[0].strip() != "boundary")])


def _header_of(difference: Difference) -> str:
    return difference.path.split(":", 1)[0]


def _kind(a: str | None, b: str | None) -> str:
    if a is None:
        return "added"
    if b is None:
        return "removed"
    return "changed"


def _cookie_differences(control: Headers, candidate: Headers) -> list[Difference]:
    """Set-Cookie: which cookies are set is compared; their values (sessions, tokens) are not."""
    a, b = _cookie_names(control), _cookie_names(candidate)
    out = [Difference("header", f"set-cookie:{name}", "removed", "set", None) for name in sorted(a - b)]
    out += [Difference("header", f"set-cookie:{name}", "added", None, "set") for name in sorted(b - a)]
    return out


def _cookie_names(headers: Headers) -> set[str]:
    # One cookie per Set-Cookie line, its name before the first "=" (RFC 6265 §5.2);
    # SimpleCookie would silently drop values it cannot parse.
    return {value.split("=", 1)[0].strip() for value in headers.getall("Set-Cookie", ())}

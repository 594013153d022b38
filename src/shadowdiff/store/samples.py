"""Samples: a few whole exchanges per (route, part, path), redacted before they are written.

`Sampler` (on the event loop, a dict lookup per difference) decides which comparisons
become samples: a mismatch or a noise comparison is kept when one of its fields (route,
part, stats path) has fewer than `per_field` samples from this process, or its newest
is older than `REFRESH` (so samples stay recent in a long run); at most `MAX_SIGNATURES`
fields are remembered. The rest costs nothing more.

`record()` (on the store's writer thread, never the event loop) turns a comparison into
what is stored: the request's method, target and headers, each side's status, headers
and body, the differences and their verdicts. Everything goes through the same
`Redactor` as the mismatch log first, with whole bodies instead of one value: header
values of secret names hidden, credential shapes and secret keys' values hidden in the
target's query, in JSON (parsed and scrubbed key by key) and in text bodies. A body
that is neither JSON nor text, or is multipart (a form's files and fields), is not
stored (its size and type are). Bodies are the
ones the comparison kept (compare.max_body_bytes); a decoded body is shown up to
`MAX_SHOWN` bytes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from shadowdiff.compare.decode import TooLarge, Undecodable, decode
from shadowdiff.model import MISMATCH, NOISE, SHADOW, Comparison, Headers, Observation
from shadowdiff.noise.fields import stats_path
from shadowdiff.publish.redact import Redactor, Report
from shadowdiff.publish.secrets import REDACTED
from shadowdiff.publish.sinks import difference_fields

REFRESH = 600.0  # seconds: past it a field takes one new sample even when it has enough
MAX_SIGNATURES = 8192
MAX_SHOWN = 1 << 20  # decoded bytes of one body shown
_TEXT_TYPES = ("text/", "xml", "javascript", "html", "csv", "yaml", "x-www-form-urlencoded")
_BOM = b"\xef\xbb\xbf"


Signature = tuple[str, str, str]  # (route, part, stats path)


class Sampler:
    """Which comparisons become samples (see the module docstring)."""

    def __init__(self, per_field: int, *, clock: Any = time.monotonic) -> None:
        self.per_field = per_field  # store.samples_per_field (live)
        self._clock = clock
        self._taken: dict[Signature, list[float]] = {}  # signature -> [count, newest]

    def wants(self, comparison: Comparison) -> tuple[Signature, ...]:
        """The fields this comparison is a sample for (empty: not a sample)."""
        if comparison.lane != SHADOW or comparison.outcome not in (MISMATCH, NOISE) or self.per_field <= 0:
            return ()
        route = comparison.request.route
        signatures = tuple(dict.fromkeys((route, d.part, stats_path(d.part, d.path)) for d in comparison.differences))
        now = self._clock()
        taken = self._taken
        wanted = False
        for signature in signatures:
            entry = taken.get(signature)
            if entry is None or entry[0] < self.per_field or now - entry[1] >= REFRESH:
                wanted = True
                break
        if not wanted:
            return ()
        for signature in signatures:
            entry = taken.get(signature)
            if entry is None:
                if len(taken) >= MAX_SIGNATURES:
                    taken.clear()  # a fresh start past the cap: a few more samples, never unbounded
                taken[signature] = [1, now]
            else:
                entry[0] += 1
                entry[1] = now
        return signatures

    def forget(self, signatures: tuple[Signature, ...]) -> None:
        """A sample `wants()` took was not kept after all (dropped, or its flush failed): it does not count."""
        for signature in signatures:
            entry = self._taken.get(signature)
            if entry is not None and entry[0] > 0:
                entry[0] -= 1


def signatures_of(comparison: Comparison, redactor: Redactor) -> tuple[Signature, ...]:
    """The fields a stored sample is listed under: its differences' paths redacted as the field
    statistics' are (a credential-shaped key hidden), then made statistics paths."""
    route = comparison.request.route
    found = (redactor.difference(d) for d in comparison.differences)
    return tuple(dict.fromkeys((route, d.part, stats_path(d.part, d.path)) for d in found))


def summary_of(sample: dict[str, Any]) -> dict[str, Any]:
    """What a list of samples shows of one (no bodies): the request, both statuses, the differing paths."""
    paths = list(dict.fromkeys((d["part"], d["path"]) for d in sample["differences"]))[:20]
    return {
        "request_id": sample["request_id"], "method": sample["method"], "route": sample["route"],
        "path": sample["path"], "target": sample["target"][:512], "outcome": sample["outcome"],
        "status": [sample["primary"]["status"], sample["shadow"]["status"]],
        "differences": [{"part": part, "path": path} for part, path in paths],
    }  # fmt: skip


def record(report: Report, redactor: Redactor) -> dict[str, Any]:
    """The sample as it is stored (JSON-able, redacted)."""
    comparison = report.comparison
    request = comparison.request
    differences = []
    for d, verdict in zip(report.differences, report.verdicts or ("",) * len(report.differences)):
        entry = difference_fields(d)
        if verdict:
            entry["verdict"] = verdict
        differences.append(entry)
    target = redactor.scrub_text(request.target)
    request_headers = _headers(request.headers, redactor)
    return {
        "request_id": report.request_id,
        "method": request.method,
        "route": report.route,
        "path": report.path,
        "target": target[:8192],
        "outcome": comparison.outcome,
        "request": {
            "headers": request_headers,
            "body": _body(request.body, _header(request.headers, "content-type"), _header(request.headers, "content-encoding"), redactor),
        },
        "primary": _side(comparison.control, redactor),
        "shadow": _side(comparison.candidate, redactor),
        "differences": differences,
        "differences_found": report.found,
    }


def size_of(sample: dict[str, Any]) -> tuple[bytes, int]:
    data = orjson.dumps(sample)
    return data, len(data)


def _side(observation: Observation, redactor: Redactor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": observation.status,
        "reason": redactor.scrub_text(observation.reason)[:200] if observation.reason else observation.reason,
        "elapsed_ms": round(observation.elapsed * 1000, 3),
        "error": observation.error,
        "headers": _headers(observation.headers, redactor) if observation.headers is not None else [],
    }
    body = observation.body
    headers = observation.headers
    content_type = _header(headers, "content-type")
    if body is None:
        out["body"] = {"type": "none", "size": 0, "content": None}
    elif body.data is None:
        out["body"] = {"type": "digest", "size": body.size, "content": None, "note": f"over compare.max_body_bytes: sha256 {body.digest}"}
    else:
        out["body"] = _body(body.data, content_type, _header(headers, "content-encoding"), redactor)
    return out


def _header(headers: Headers | None, name: str) -> str:
    if headers is None:
        return ""
    return str(headers.get(name, "") or "")


def _headers(headers: Headers, redactor: Redactor) -> list[list[str]]:
    out = []
    for name, value in headers.items():
        if redactor.secret_header(name):
            shown = REDACTED if name.lower() != "set-cookie" else value.partition("=")[0] + "=" + REDACTED
        else:
            shown = redactor.scrub_text(value)[:8192]
        out.append([redactor.cut(name), shown])
    return out


def _body(data: bytes, content_type: str, encoding: str, redactor: Redactor) -> dict[str, Any]:
    size = len(data)
    if not data:
        return {"type": "empty", "size": 0, "content": None}
    if encoding:
        try:
            data = decode(data, encoding, MAX_SHOWN)
        except TooLarge:
            return {"type": "encoded", "size": size, "content": None, "note": f"decodes past {MAX_SHOWN} bytes"}
        except Undecodable:
            return {"type": "encoded", "size": size, "content": None, "note": f"Content-Encoding {encoding} did not decode"}
    shown = data[:MAX_SHOWN]
    kind = content_type.lower()
    if "multipart/" in kind:  # its parts' fields would be scrubbed as one text: not stored
        return {"type": "multipart", "size": size, "content": None, "note": content_type}
    if "json" in kind or shown.lstrip()[:1] in (b"{", b"["):
        try:
            value = orjson.loads(shown.removeprefix(_BOM))
        except orjson.JSONDecodeError:
            pass
        else:
            return {"type": "json", "size": size, "content": redactor.document(value)}
    if any(marker in kind for marker in _TEXT_TYPES) or _utf8(shown):
        text = shown.decode("utf-8", "replace")
        out = {"type": "text", "size": size, "content": redactor.scrub_text(text)}
        if len(data) > MAX_SHOWN:
            out["note"] = f"the first {MAX_SHOWN} bytes"
        return out
    return {"type": "binary", "size": size, "content": None, "note": content_type or "no Content-Type"}


def _utf8(data: bytes) -> bool:
    if b"\0" in data[:4096]:
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 4090
    return True

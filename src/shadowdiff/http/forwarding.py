"""Header policy for both legs and the client's response.

Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, so a proxy removes
them, together with every header the `Connection` header names. Framing headers
(Content-Length, Transfer-Encoding) are recomputed by whoever writes the next hop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy, istr

from shadowdiff.model import HOP_BY_HOP

VIA_TOKEN = "shadowdiff"

# Not hop-by-hop, but meaningless once the proxy has buffered the request body:
# the next hop gets a fresh Content-Length and no 100-continue handshake.
_REQUEST_FRAMING = frozenset({"content-length", "expect"})

REQUEST_ID = istr("X-Request-Id")

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


Pairs = list[tuple[str, str]]


def decoded(raw: Iterable[tuple[bytes, bytes]]) -> Pairs:
    """Headers as they came on the wire, in order and in their own case.

    aiohttp's parsed view rewrites well-known names (`ETag` -> `Etag`); the raw
    pairs do not. Values are UTF-8 so that aiohttp's writer, which encodes
    UTF-8, sends the same bytes back out; anything else falls back to Latin-1.
    """
    try:
        return [(name.decode("latin-1"), value.decode("utf-8")) for name, value in raw]
    except UnicodeDecodeError:  # rare: decode value by value
        return [(name.decode("latin-1"), _text(value)) for name, value in raw]


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def tokens(headers: Headers, name: str) -> frozenset[str]:
    """The comma-separated tokens of every `name` header, lower-cased."""
    return _tokens(headers.getall(name, ()))


def _tokens(values: Iterable[str]) -> frozenset[str]:
    found = set()
    for value in values:
        found.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(found)


def end_to_end(pairs: Pairs, removed: frozenset[str] = HOP_BY_HOP) -> Pairs:
    """`pairs` without `removed` (lower-case names: hop-by-hop by default) or
    Connection-named headers. Order, case and repeats (Set-Cookie) are kept as they came."""
    lowered = [name.lower() for name, _ in pairs]
    if "connection" in lowered:
        removed = removed | _tokens(value for (_, value), low in zip(pairs, lowered) if low == "connection")
    return [pair for pair, low in zip(pairs, lowered) if low not in removed]


def request_headers(pairs: Pairs, *, marker_header: str) -> CIMultiDict[str]:
    """End-to-end request headers shared by both legs, before per-leg additions.

    The shadow marker is removed so a client cannot make the primary's request
    look like a shadow copy.
    """
    return CIMultiDict(end_to_end(pairs, _request_removed(marker_header)))


@functools.lru_cache(maxsize=8)
def _request_removed(marker_header: str) -> frozenset[str]:
    return HOP_BY_HOP | _REQUEST_FRAMING | {marker_header.lower()}


def request_id(headers: Headers) -> str:
    """The client's X-Request-Id, or a new one (128 random bits in hex, like a uuid4's hex form)."""
    return headers.get(REQUEST_ID) or os.urandom(16).hex()


def via_value(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]} {VIA_TOKEN}"


def add_forwarding(
    headers: CIMultiDict[str], *, client_ip: str | None, proto: str, version: tuple[int, int]
) -> None:
    """Append this hop to Via and X-Forwarded-For; set X-Forwarded-Proto if absent.

    An X-Forwarded-Proto set by a load balancer in front of the sidecar is kept:
    it knows the scheme the user really spoke.
    """
    _append(headers, "Via", via_value(version))
    if client_ip:
        _append(headers, "X-Forwarded-For", client_ip)
    headers.setdefault("X-Forwarded-Proto", proto)


def _append(headers: CIMultiDict[str], name: str, value: str) -> None:
    existing = headers.getall(name, ())
    if existing:
        del headers[name]
        headers[name] = ", ".join([*existing, value])
    else:
        headers[name] = value


def response_headers(pairs: Pairs, *, version: tuple[int, int]) -> CIMultiDict[str]:
    """The headers the client gets: the primary's, end to end, plus our Via."""
    headers = CIMultiDict(end_to_end(pairs))
    _append(headers, "Via", via_value(version))
    return headers

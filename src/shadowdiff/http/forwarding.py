"""Header policy for both legs and the client's response.

Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, so a proxy removes
them, together with every header the `Connection` header names. Framing headers
(Content-Length, Transfer-Encoding) are recomputed by whoever writes the next hop.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
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


def request_headers(pairs: Pairs, *, marker_header: str, trusted: bool = True) -> CIMultiDict[str]:
    """End-to-end request headers shared by both legs, before per-leg additions.

    Names are compared folded (case, `_` for `-`), as CGI-style frameworks (WSGI, Rack,
    PHP) read them: any spelling of the shadow marker is removed, so a client cannot make
    the primary's request look like a shadow copy. The forwarding headers
    (X-Forwarded-For/-Proto/-Host, Forwarded, X-Real-IP) are removed in any spelling
    unless the peer is `trusted`, and from a trusted one in their underscore spellings,
    which no proxy writes and which a framework could take for the real ones.
    """
    folded = [name.lower().replace("_", "-") for name, _ in pairs]
    removed = _request_removed(marker_header, trusted)
    if "connection" in folded:
        named = _tokens(value for (_, value), low in zip(pairs, folded) if low == "connection")
        removed = removed | {token.replace("_", "-") for token in named}
    return CIMultiDict(
        [
            pair
            for pair, low in zip(pairs, folded)
            if low not in removed and not (low in FORWARDING and "_" in pair[0])
        ]
    )


# Set by proxies in front of this one; believed only from trusted peers (listen.trusted_proxies).
FORWARDING = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"})


@functools.lru_cache(maxsize=8)
def _request_removed(marker_header: str, trusted: bool) -> frozenset[str]:
    removed = HOP_BY_HOP | _REQUEST_FRAMING | {marker_header.lower().replace("_", "-")}
    return removed if trusted else removed | FORWARDING


class TrustedPeers:
    """Whether a peer address is in `listen.trusted_proxies` (answers cached per address)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n) for n in networks)
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, peer: str | None) -> bool:
        if not peer or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:  # a Unix socket path, or nothing
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


# RFC 9110 §7.2 / RFC 3986 §3.2.2: IP-literal, or a reg-name (IPv4 included), then an
# optional port. No userinfo (`@`), no path, no spaces or control characters.
_HOST = re.compile(r"(?:\[[0-9A-Za-z:.%_~-]+\]|[0-9A-Za-z._~%!$&'()*+,;=-]*)(?::[0-9]*)?")


def valid_host(value: str) -> bool:
    """Whether a Host header value is a valid authority (host and optional port)."""
    return _HOST.fullmatch(value) is not None


def request_id(headers: Headers) -> str:
    """The client's X-Request-Id, or a new one (128 random bits in hex, like a uuid4's hex form)."""
    return headers.get(REQUEST_ID) or os.urandom(16).hex()


def via_value(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]} {VIA_TOKEN}"


def add_forwarding(
    headers: CIMultiDict[str], *, client_ip: str | None, proto: str, version: tuple[int, int]
) -> None:
    """Append this hop to Via and X-Forwarded-For; set X-Forwarded-Proto if absent.

    An X-Forwarded-Proto set by a trusted load balancer in front of the sidecar is
    kept: it knows the scheme the user really spoke. (An untrusted peer's forwarding
    headers were removed by `request_headers`, so for it these are set afresh.)
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

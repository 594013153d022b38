"""Hop-by-hop stripping, forwarding headers, request ids and refused request targets."""

from __future__ import annotations

from multidict import CIMultiDict

from shadowdiff.http import forwarding as hdr
from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, settle, url_of

HOP_REQUEST = (
    b"GET /echo HTTP/1.1\r\nHost: app.example\r\n"
    b"Connection: close, X-Client-Private\r\nX-Client-Private: hop-only\r\nKeep-Alive: timeout=5\r\n"
    b"TE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eA==\r\n"
    b"Proxy-Connection: keep-alive\r\nX-End-To-End: yes\r\n\r\n"
)
HOP_NAMES = (
    "X-Client-Private",
    "Keep-Alive",
    "TE",
    "Trailer",
    "Upgrade",
    "Proxy-Authorization",
    "Proxy-Connection",
)


def test_end_to_end_drops_hop_by_hop_and_connection_named() -> None:
    """end_to_end removes RFC 9110 hop-by-hop headers and every header named in Connection."""
    headers = CIMultiDict(
        [("Connection", "x-a, X-B"), ("X-A", "1"), ("x-b", "2"), ("Keep-Alive", "5"), ("X-C", "3"), ("Set-Cookie", "a"), ("Set-Cookie", "b")]
    )
    assert hdr.end_to_end(list(headers.items())) == [("X-C", "3"), ("Set-Cookie", "a"), ("Set-Cookie", "b")]


def test_forwarding_appends_to_existing_chain() -> None:
    """Via and X-Forwarded-For are appended to; a front proxy's X-Forwarded-Proto is kept."""
    headers = CIMultiDict([("Via", "1.1 lb"), ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")])
    hdr.add_forwarding(headers, client_ip="10.0.0.2", proto="http", version=(1, 1))
    assert headers["Via"] == "1.1 lb, 1.1 shadowdiff"
    assert headers["X-Forwarded-For"] == "203.0.113.9, 10.0.0.2"
    assert headers["X-Forwarded-Proto"] == "https"


async def test_hop_by_hop_request_headers_reach_neither_leg(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """Hop-by-hop and Connection-named request headers are stripped on the primary and the shadow leg."""
    proxy = await start_proxy(primary.url, shadow.url)
    await rawhttp.send(url_of(proxy), HOP_REQUEST)
    await settle(proxy)
    for leg in (primary.seen[-1], shadow.seen[-1]):
        for name in HOP_NAMES:
            assert not leg.has(name), name
        assert leg.header("X-End-To-End") == "yes"


async def test_hop_by_hop_response_headers_are_stripped(primary: Backend, start_proxy: StartProxy) -> None:
    """Hop-by-hop and Connection-named response headers never reach the client; the rest do."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    for name in ("X-Backend-Private", "Keep-Alive", "Proxy-Authenticate", "Trailer"):
        assert response.header(name) is None, name
    assert response.values("Connection") == ["close"]  # the proxy's own, for this connection
    assert response.header("X-End-To-End") == "kept"


async def test_forwarding_headers_on_both_legs(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """Both legs carry Via, X-Forwarded-For, X-Forwarded-Proto and the same generated X-Request-Id."""
    proxy = await start_proxy(primary.url, shadow.url)
    await rawhttp.send(url_of(proxy), b"GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
    await settle(proxy)
    p, s = primary.seen[-1], shadow.seen[-1]
    for leg in (p, s):
        assert leg.header("Via") == "1.1 shadowdiff"
        assert leg.header("X-Forwarded-For") == "127.0.0.1"
        assert leg.header("X-Forwarded-Proto") == "http"
    assert p.header("X-Request-Id") and p.header("X-Request-Id") == s.header("X-Request-Id")


async def test_client_request_id_is_passed_through(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """A client's X-Request-Id reaches both legs unchanged and is not echoed to the client."""
    proxy = await start_proxy(primary.url, shadow.url)
    response = await rawhttp.send(
        url_of(proxy), b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: req-123\r\nConnection: close\r\n\r\n"
    )
    await settle(proxy)
    assert primary.seen[-1].header("X-Request-Id") == shadow.seen[-1].header("X-Request-Id") == "req-123"
    assert response.header("X-Request-Id") is None


async def test_marker_and_host_policy(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """Only the shadow gets the marker; the primary gets the client's Host, the shadow its own authority."""
    proxy = await start_proxy(primary.url, shadow.url)
    await rawhttp.send(
        url_of(proxy), b"GET /echo HTTP/1.1\r\nHost: app.example\r\nX-Shadow-Request: true\r\nConnection: close\r\n\r\n"
    )
    await settle(proxy)
    assert not primary.seen[-1].has("X-Shadow-Request")  # a client cannot forge it onto the primary's leg
    assert shadow.seen[-1].header("X-Shadow-Request") == "true"
    assert primary.seen[-1].header("Host") == "app.example"
    assert shadow.seen[-1].header("Host") == shadow.url.removeprefix("http://")


async def test_shadow_can_get_the_client_host(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """With shadow.host_header: client the shadow gets the client's Host, and a custom marker."""
    proxy = await start_proxy(
        primary.url, shadow.url, shadow={"host_header": "client"}, mirror={"marker_header": "X-Canary", "marker_value": "1"}
    )
    await rawhttp.send(url_of(proxy), b"GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
    await settle(proxy)
    assert shadow.seen[-1].header("Host") == "app.example"
    assert shadow.seen[-1].header("X-Canary") == "1"
    assert not primary.seen[-1].has("X-Canary")


async def test_absolute_form_to_another_host_is_refused(primary: Backend, start_proxy: StartProxy) -> None:
    """An absolute-form target naming another authority gets 400 and reaches no backend."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(
        url_of(proxy), b"GET http://evil.example/steal HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"
    )
    assert response.status == 400
    assert primary.seen == []


async def test_absolute_form_to_our_host_is_proxied(primary: Backend, start_proxy: StartProxy) -> None:
    """An absolute-form target naming the Host itself is served as its origin-form path."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(
        url_of(proxy), b"GET http://app.example/echo?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"
    )
    assert response.status == 200
    assert primary.seen[-1].raw_path == "/echo?x=1"


async def test_connect_is_refused(primary: Backend, start_proxy: StartProxy) -> None:
    """CONNECT gets 405 and opens no tunnel."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(
        url_of(proxy), b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"
    )
    assert response.status == 405
    assert primary.seen == []


async def test_request_body_over_the_limit_is_413(primary: Backend, start_proxy: StartProxy) -> None:
    """A declared body over listen.max_request_body_bytes gets 413 before it is read; a chunked one is cut at the limit."""
    proxy = await start_proxy(primary.url, listen={"max_request_body_bytes": 1000})
    declared = await rawhttp.send(
        url_of(proxy), b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 1000
    )
    assert declared.status == 413
    chunk = b"800\r\n" + b"y" * 0x800 + b"\r\n"
    chunked = await rawhttp.send(
        url_of(proxy), b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"
    )
    assert chunked.status == 413
    assert primary.seen == []

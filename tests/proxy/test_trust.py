"""Trust is explicit: marker spellings never reach the primary, Host must be a valid authority, and
forwarding headers are believed only from listen.trusted_proxies."""

from __future__ import annotations

import pytest

from shadowdiff.http import forwarding as hdr
from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, settle, url_of

MARKER_SPELLINGS = ["X_Shadow_Request", "x-shadow_request", "X-SHADOW-REQUEST", "x_shadow_request", "X-Shadow_Request"]


def _folds_to_marker(name: str) -> bool:
    return name.lower().replace("_", "-") == "x-shadow-request"


@pytest.mark.parametrize("spelling", MARKER_SPELLINGS)
async def test_marker_spellings_never_reach_the_primary(
    spelling: str, primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """A header whose name folds to the marker's (case, `_` for `-`) reaches neither the primary nor, twice, the shadow."""
    proxy = await start_proxy(primary.url, shadow.url)
    request = f"GET /echo HTTP/1.1\r\nHost: a\r\n{spelling}: forged\r\nConnection: close\r\n\r\n".encode()
    assert (await rawhttp.send(url_of(proxy), request)).status == 200
    await settle(proxy)
    assert not [name for name, _ in primary.seen[-1].headers if _folds_to_marker(name)]
    assert [(n, v) for n, v in shadow.seen[-1].headers if _folds_to_marker(n)] == [("X-Shadow-Request", "true")]


BAD_HOSTS = {
    "userinfo": "evil@app.example",
    "userinfo_with_port": "user:pw@app.example:80",
    "space": "app example",
    "path": "app.example/x",
    "query": "app.example?x",
    "unclosed_ipv6": "[::1",
    "bad_port": "app.example:8o",
    "backslash": "app.example\\x",
    "tab": "app\texample",
}
GOOD_HOSTS = ["app.example", "app.example:8080", "10.1.2.3", "[::1]:8080", "[fe80::1%25eth0]", "xn--bcher-kva.example", "a_b.internal"]


@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
async def test_an_invalid_host_gets_400(host: str, primary: Backend, start_proxy: StartProxy) -> None:
    """A Host that is not a valid authority (userinfo, spaces, a path, a bad port) gets 400 and reaches no backend."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), f"GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert response.status == 400
    assert primary.seen == []


@pytest.mark.parametrize("host", GOOD_HOSTS)
async def test_a_valid_host_is_passed_on(host: str, primary: Backend, start_proxy: StartProxy) -> None:
    """A Host that is a valid authority reaches the primary unchanged."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), f"GET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert response.status == 200
    assert primary.seen[-1].header("Host") == host


async def test_several_hosts_get_400(primary: Backend, start_proxy: StartProxy) -> None:
    """Two Host header lines (RFC 9112 §3.2), even equal ones, get 400 and reach no backend."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
    assert response.status == 400
    assert primary.seen == []


FORGED = (
    b"GET /echo HTTP/1.1\r\nHost: app.example\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
    b"Forwarded: for=203.0.113.7;proto=https\r\nX-Real-IP: 203.0.113.7\r\n"
    b"X_Forwarded_For: 198.51.100.1\r\nx_real_ip: 198.51.100.1\r\nConnection: close\r\n\r\n"
)
REPLACED = ("Forwarded", "X-Forwarded-Host", "X-Real-IP")


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "fd00::/8"]], ids=["nobody", "other_ranges"])
async def test_forwarding_headers_from_an_untrusted_peer_are_replaced(
    trusted: list[str], primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """From a peer outside listen.trusted_proxies, both legs get X-Forwarded-For = the peer, X-Forwarded-Proto = the
    scheme the proxy saw, and no Forwarded, X-Forwarded-Host, X-Real-IP or underscore spellings."""
    proxy = await start_proxy(primary.url, shadow.url, listen={"trusted_proxies": trusted})
    assert (await rawhttp.send(url_of(proxy), FORGED)).status == 200
    await settle(proxy)
    for leg in (primary.seen[-1], shadow.seen[-1]):
        assert leg.header("X-Forwarded-For") == "127.0.0.1"
        assert leg.header("X-Forwarded-Proto") == "http"
        assert sum(1 for n, _ in leg.headers if n.lower() in ("x-forwarded-for", "x-forwarded-proto")) == 2
        for name in REPLACED:
            assert not leg.has(name), name
        assert not [n for n, _ in leg.headers if "_" in n]


async def test_forwarding_headers_from_a_trusted_peer_are_kept(primary: Backend, start_proxy: StartProxy) -> None:
    """From a trusted peer (loopback, in the default list) the chain is kept and appended to; underscore spellings still go."""
    proxy = await start_proxy(primary.url)
    assert (await rawhttp.send(url_of(proxy), FORGED)).status == 200
    seen = primary.seen[-1]
    assert seen.header("X-Forwarded-For") == "203.0.113.7, 127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "https"
    assert seen.header("X-Forwarded-Host") == "evil.example"
    assert seen.header("Forwarded") == "for=203.0.113.7;proto=https"
    assert seen.header("X-Real-IP") == "203.0.113.7"
    assert not [n for n, _ in seen.headers if "_" in n]


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        ("127.0.0.1", True),
        ("10.4.5.6", True),
        ("::1", True),
        ("::ffff:192.168.1.9", True),
        ("fd12::1", True),
        ("fe80::1%eth0", False),
        ("203.0.113.7", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("/run/app.sock", False),
    ],
)
def test_trusted_peers(peer: str | None, trusted: bool) -> None:
    """TrustedPeers matches addresses (IPv4-mapped IPv6 as IPv4) against the default networks; anything else is untrusted."""
    from shadowdiff.config.schema import TRUSTED_PROXIES

    assert hdr.TrustedPeers(TRUSTED_PROXIES).trusts(peer) is trusted


def test_request_headers_fold_names_only_where_the_proxy_gives_them_meaning() -> None:
    """Folding removes marker and forwarding spellings; other underscore names and Connection-named ones behave as before."""
    pairs = [("X_Shadow_Request", "1"), ("X_Custom_Thing", "kept"), ("Connection", "x_private"), ("X-Private", "hop"), ("X-A", "1")]
    assert list(hdr.request_headers(pairs, marker_header="X-Shadow-Request").items()) == [("X_Custom_Thing", "kept"), ("X-A", "1")]

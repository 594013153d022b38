"""A primary that cannot answer, or breaks off: a short gateway error, or a cut connection, never a false whole answer."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests import rawhttp
from tests.backends import Backend, free_port
from tests.conftest import StartProxy, metrics, settle, url_of
from tests.faults import FaultServer


GET = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("mode", "kind"), [("garbage_status", "protocol"), ("cl_te_conflict", "protocol"), ("black_hole", "timeout")]
)
async def test_primary_that_cannot_answer_gets_a_gateway_error(
    mode: str, kind: str, shadow: Backend, start_proxy: StartProxy
) -> None:
    """Garbage or ambiguous framing from the primary is a 502; silence past primary.timeout a 504 at the deadline."""
    server = await FaultServer(mode).start()
    try:
        proxy = await start_proxy(server.url, shadow.url, primary={"timeout": 0.5})
        started = time.perf_counter()
        response = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        elapsed = time.perf_counter() - started
    finally:
        await server.stop()
    assert response.status == (504 if kind == "timeout" else 502)
    assert elapsed < 2.0
    assert b"Traceback" not in response.body
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind=kind) == 1
    assert shadow.seen == []  # no answer head from the primary: no copy sent


async def test_primary_silent_mid_body_cuts_the_client(shadow: Backend, start_proxy: StartProxy) -> None:
    """A primary that goes quiet mid-body past primary.timeout has the client's connection cut, never completed."""
    server = await FaultServer("trickle", body=b"x" * 50, interval=2.0).start()
    try:
        proxy = await start_proxy(server.url, shadow.url, primary={"timeout": 0.3})
        response = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=5)
    finally:
        await server.stop()
    assert response.status == 200 and not response.complete
    assert metrics(proxy).value("shadowdiff_upstream_errors_total", upstream="primary", kind="timeout") == 1


async def test_primary_refusing_is_502_and_sends_nothing_to_the_shadow(
    shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A primary that refuses connections gives the client a short 502; the shadow gets no copy."""
    proxy = await start_proxy(f"http://127.0.0.1:{free_port()}", shadow.url)
    async with client.get(url_of(proxy) + "/x") as response:
        assert response.status == 502
        text = await response.text()
    assert "Traceback" not in text and len(text) < 200
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="connect") == 1
    assert m.value("shadowdiff_requests_total", status="502") == 1
    assert m.value("shadowdiff_comparisons_total") == 0
    assert shadow.seen == []


async def test_primary_slower_than_its_timeout_is_504(shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """A primary silent past primary.timeout gives 504 at about the deadline, counted as a timeout."""
    slow = await Backend("slow-primary", delay=3.0).start()
    try:
        proxy = await start_proxy(slow.url, shadow.url, primary={"timeout": 0.3})
        started = time.perf_counter()
        async with client.get(url_of(proxy) + "/x") as response:
            assert response.status == 504
        assert time.perf_counter() - started < 2.0
    finally:
        await slow.stop()
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="timeout") == 1
    assert m.value("shadowdiff_comparisons_total") == 0


async def test_primary_reset_mid_body_aborts_the_client(shadow: Backend, start_proxy: StartProxy, raw_backend) -> None:
    """A primary that promises 100 bytes and sends 10 gets the client's connection cut, not a short 'complete' body."""
    broken = await raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", close_after_response=True)
    proxy = await start_proxy(broken.url, shadow.url)
    response = await rawhttp.send(url_of(proxy), GET)
    await settle(proxy)
    assert response.status == 200
    assert not response.complete
    assert len(response.body) < 100
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="reset") == 1
    # The shadow's copy went out with the head, but an exchange without a whole primary answer is never compared.
    assert m.value("shadowdiff_comparisons_total") == 0
    assert m.value("shadowdiff_mirrored_total") == 0


async def test_chunked_primary_cut_mid_body_never_ends_cleanly(shadow: Backend, start_proxy: StartProxy, raw_backend) -> None:
    """A chunked primary answer that stops without its last chunk reaches the client without one either."""
    broken = await raw_backend(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", close_after_response=True)
    proxy = await start_proxy(broken.url, shadow.url)
    response = await rawhttp.send(url_of(proxy), GET)
    assert response.body.startswith(b"hello") or response.body == b""
    assert not response.complete


async def test_header_aiohttp_cannot_write_is_a_502(shadow: Backend, start_proxy: StartProxy, raw_backend) -> None:
    """A primary header with a control character gets a short 502 counted as protocol, not a 500 with a traceback."""
    bad = await raw_backend(b"HTTP/1.1 200 OK\r\nX-C: a\x01b\r\nContent-Length: 2\r\n\r\nok")
    proxy = await start_proxy(bad.url, shadow.url)
    response = await rawhttp.send(url_of(proxy), GET)
    await settle(proxy)
    assert response.status == 502
    assert response.body == b"primary upstream failed: protocol\n"
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="protocol") == 1
    assert m.value("shadowdiff_requests_total", status="502") == 1
    assert m.value("shadowdiff_comparisons_total") == 0


async def test_large_response_headers_pass(start_proxy: StartProxy, raw_backend) -> None:
    """A 9,000-byte response header (past aiohttp's 8,190 default) reaches the client unchanged."""
    value = "v" * 9000
    big = await raw_backend(f"HTTP/1.1 200 OK\r\nX-Big: {value}\r\nContent-Length: 2\r\n\r\nok".encode())
    proxy = await start_proxy(big.url)
    response = await rawhttp.send(url_of(proxy), GET)
    assert response.status == 200
    assert response.header("X-Big") == value

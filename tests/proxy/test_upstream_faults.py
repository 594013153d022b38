"""Upstreams that break the protocol: the client's view stays honest, the shadow's faults stay counted."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from shadowdiff.model import BodyCapture
from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, settle, url_of

GET = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


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


async def test_garbage_from_the_shadow_is_counted_not_raised(
    primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, raw_backend
) -> None:
    """A shadow answering a non-HTTP status line is a protocol error in the counters; the client gets the primary's answer."""
    garbage = await raw_backend(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    proxy = await start_proxy(primary.url, garbage.url)
    for _ in range(3):
        async with client.get(url_of(proxy) + "/echo") as response:
            assert response.status == 200
            assert (await response.json())["raw_path"] == "/echo"
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="shadow", kind="protocol") == 3
    assert m.value("shadowdiff_comparisons_total", outcome="shadow_error") == 3
    assert m.value("shadowdiff_mirrored_total") == 3


def test_body_capture_keeps_small_bodies_and_digests_large_ones() -> None:
    """Up to the limit the bytes are kept; past it only a digest is, and it equals the digest of the whole body."""
    import hashlib

    small = BodyCapture(10)
    for piece in (b"abc", b"def"):
        small.feed(piece)
    assert small.result().data == b"abcdef"

    large = BodyCapture(10)
    pieces = [b"x" * 7, b"y" * 7, b"z" * 1000]
    for piece in pieces:
        large.feed(piece)
    body = large.result()
    assert body.data is None
    assert body.size == 1014
    assert body.digest == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert large._chunks == []  # nothing retained past the limit


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


async def test_long_primary_stream_does_not_pin_shadow_slots(
    shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, raw_backend
) -> None:
    """A primary still streaming past shadow.timeout frees its slot (counted primary_unfinished) so other copies still go out."""
    trickle = await raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")  # the body never comes
    try:
        proxy = await start_proxy(trickle.url, shadow.url, mirror={"max_in_flight": 1}, shadow={"timeout": 0.3}, primary={"timeout": 5})
        stuck = asyncio.ensure_future(client.get(url_of(proxy) + "/stream"))
        await asyncio.sleep(0.1)
        assert proxy.mirror.in_flight == 1
        await asyncio.sleep(0.6)  # past shadow.timeout after the shadow answered
        assert proxy.mirror.in_flight == 0
        assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="primary_unfinished") == 1
    finally:
        if stuck.done() and not stuck.cancelled() and stuck.exception() is None:
            stuck.result().close()  # the head arrived: the response is ours to close
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck

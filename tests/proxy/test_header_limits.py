"""Header limits are chosen, not inherited: generous defaults (128 request and 256 answer lines, 64 KiB a line), configurable.

The bound on a request head's total bytes, and the 431 answers' shape, are in tests/proxy/test_edge.py."""

from __future__ import annotations

from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, url_of


def _request_with(count: int) -> bytes:
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(count))
    return f"GET /echo HTTP/1.1\r\nHost: a\r\n{extra}Connection: close\r\n\r\n".encode()


def _response_with(count: int) -> bytes:
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(count))
    return f"HTTP/1.1 200 OK\r\n{extra}Content-Length: 2\r\n\r\nok".encode()


async def test_request_header_count_default_and_setting(primary: Backend, start_proxy: StartProxy) -> None:
    """120 request headers pass by default and 140 get a 431; with listen.max_headers 256, 200 reach the primary."""
    default = await start_proxy(primary.url)
    assert (await rawhttp.send(url_of(default), _request_with(120))).status == 200
    assert (await rawhttp.send(url_of(default), _request_with(140))).status == 431
    raised = await start_proxy(primary.url, listen={"max_headers": 256})
    response = await rawhttp.send(url_of(raised), _request_with(200))
    assert response.status == 200
    assert sum(1 for name, _ in primary.seen[-1].headers if name.startswith("X-H")) == 200


async def test_a_primary_answer_with_200_headers_is_relayed(start_proxy: StartProxy, raw_backend) -> None:
    """A primary answering with 200 header lines reaches the client with all of them, not a 502."""
    backend = await raw_backend(_response_with(200))
    proxy = await start_proxy(backend.url)
    response = await rawhttp.send(url_of(proxy), _request_with(0))
    assert response.status == 200
    assert sum(1 for name, _ in response.headers if name.startswith("X-H")) == 200


async def test_listen_max_headers_is_enforced(primary: Backend, start_proxy: StartProxy) -> None:
    """Past listen.max_headers the request is refused with 431 and reaches no backend."""
    proxy = await start_proxy(primary.url, listen={"max_headers": 10})
    assert (await rawhttp.send(url_of(proxy), _request_with(5))).status == 200
    assert (await rawhttp.send(url_of(proxy), _request_with(20))).status == 431
    assert len(primary.seen) == 1


async def test_primary_max_headers_is_enforced(start_proxy: StartProxy, raw_backend) -> None:
    """A primary answer past primary.max_headers is a 502, counted as too_large."""
    backend = await raw_backend(_response_with(20))
    proxy = await start_proxy(backend.url, primary={"max_headers": 10})
    response = await rawhttp.send(url_of(proxy), _request_with(0))
    assert response.status == 502
    assert metrics(proxy).value("shadowdiff_upstream_errors_total", upstream="primary", kind="too_large") == 1


async def test_a_long_header_line_within_the_limit_passes(primary: Backend, start_proxy: StartProxy) -> None:
    """A 60 KiB request header line is proxied with the default limits and refused with 431 under a 1 KiB line limit."""
    line = "v" * (60 * 1024)
    request = f"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: {line}\r\nConnection: close\r\n\r\n".encode()
    default = await start_proxy(primary.url)
    assert (await rawhttp.send(url_of(default), request)).status == 200
    small = await start_proxy(primary.url, listen={"max_header_line_bytes": 1024})
    assert (await rawhttp.send(url_of(small), request)).status == 431

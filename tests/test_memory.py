"""The proxy's memory bound, as the README states it, driven at its worst case in a real `serve` process.

README ("Security", memory): one process holds at most about

    BASE + connections x (3 x listen.max_head_bytes + PER_CONNECTION)
         + mirror.max_buffered_bytes + 4 x compare.max_body_bytes + LOG_QUEUE

This test drives every term at once and checks the process's peak RSS (VmHWM) growth
against that sum for the connections it opened: clients with heads near the bound
streaming 10 MiB uploads into a primary that never reads them (every buffer on the
upload path full), while mirrored downloads of 1 MiB answers from a slow shadow fill
the buffer budget with captures.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from aiohttp import web

from tests.backends import serve_app
from tests.conftest import memory_bytes, serving

KiB, MiB = 1024, 1024 * 1024
# The README's constants.
PER_CONNECTION = 768 * KiB  # a body or answer in flight: its chunk, the read buffer, one socket read, the write buffer
LOG_QUEUE = 8 * MiB
MAX_HEAD = 64 * KiB  # listen.max_head_bytes, the default
BUDGET = 16 * MiB
MAX_BODY = 2 * MiB

UPLOADERS = 150
DOWNLOADS = 40
ANSWER = 1 * MiB


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_the_worst_case_stays_under_the_documented_bound(tmp_path: Path) -> None:
    """Near-bound heads with stalled 10 MiB uploads on 150 connections and 40 mirrored 1 MiB downloads at once grow
    the serve process's peak RSS by less than the README's sum for those connections; every download is answered."""
    stall = asyncio.Event()

    async def primary(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            await stall.wait()  # never reads the upload while the flood runs
            return web.Response(text="late")
        return web.Response(body=b"p" * ANSWER, content_type="application/octet-stream")

    async def shadow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)  # its captures are held meanwhile
        return web.Response(body=b"s" * ANSWER, content_type="application/octet-stream")

    runners = []
    urls = []
    for handler in (primary, shadow):
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner, url = await serve_app(app)
        runners.append(runner)
        urls.append(url)
    config = (
        f"primary: {{url: '{urls[0]}'}}\nshadow: {{url: '{urls[1]}'}}\n"
        f"listen: {{max_connections: {UPLOADERS + DOWNLOADS + 20}}}\n"
        f"mirror: {{max_buffered_bytes: {BUDGET}}}\ncompare: {{max_body_bytes: {MAX_BODY}}}\n"
    )
    head = (
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10485760\r\n"
        + b"".join(b"X-Fill-%03d: " % i + b"v" * 480 + b"\r\n" for i in range(120))
        + b"\r\n"
    )
    assert len(head) < MAX_HEAD
    uploads: list[asyncio.StreamWriter] = []
    try:
        async with serving(config=config, tmp_path=tmp_path) as served:
            pid = served.process.pid
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(b"GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            await reader.read()  # warmed up: the first request's imports and the worker are not counted
            writer.close()
            await asyncio.sleep(2.5)  # the warm-up's shadow answer and comparison are done
            before = memory_bytes(pid)

            for _ in range(UPLOADERS):
                _, writer = await asyncio.open_connection("127.0.0.1", served.port)
                writer.write(head)
                uploads.append(writer)

            async def upload(writer: asyncio.StreamWriter) -> None:
                chunk = b"b" * 65536
                with contextlib.suppress(TimeoutError, ConnectionError):
                    for _ in range(160):  # the whole 10 MiB, far past every buffer on the way
                        writer.write(chunk)
                        await asyncio.wait_for(writer.drain(), 2)

            async def download() -> int:
                reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
                writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                data = await reader.read()
                writer.close()
                return len(data)

            sizes = await asyncio.gather(*(download() for _ in range(DOWNLOADS)), *(upload(w) for w in uploads))
            await asyncio.sleep(2.5)  # the shadow's answers arrive and are captured
            peak = memory_bytes(pid, "VmHWM")
            stall.set()
            for writer in uploads:
                writer.close()
            served.process.terminate()
    finally:
        stall.set()
        for runner in runners:
            await runner.cleanup()
    assert all(size > ANSWER for size in sizes[:DOWNLOADS])
    connections = UPLOADERS + DOWNLOADS
    bound = connections * (3 * MAX_HEAD + PER_CONNECTION) + BUDGET + 4 * MAX_BODY + LOG_QUEUE
    assert peak - before < bound, f"grew {(peak - before) / MiB:.0f} MiB, bound {bound / MiB:.0f} MiB"

"""What one upstream exchange costs: aiohttp's ClientSession against shadowdiff's pooled client.

    .venv/bin/python benchmarks/client_cost.py                # 20,000 requests each, 3 rounds
    .venv/bin/python benchmarks/client_cost.py --requests 5000 --rounds 1

One process sends the same GET (the headers a proxied request carries) to one loopback
backend, 50 at a time over keep-alive connections, first with an `aiohttp.ClientSession`
set up as shadowdiff 0.3.0 had it (no decompression, no cookie jar, no default headers,
no redirects), then with `shadowdiff.http.upstream.Upstream` (http.client.ConnectionPool), reading
each body whole. Reported: CPU microseconds per request of this process (getrusage:
user + system), requests per second, and the ratio, per round. The backend is an aiohttp
process answering a 1 KB JSON body; with more than one CPU it runs on the first and this
process on the second. Everything is on 127.0.0.1 and bounded by --requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from common import REPO, child_setup, free_port, run_loop, stop_process

BODY = b'{"items": [' + b",".join(b'{"id": %d, "name": "item %d", "price": 9.99}' % (i, i) for i in range(24)) + b"]}"
HEADERS = {"Host": "backend", "X-Request-Id": "0" * 32, "Via": "1.1 shadowdiff", "X-Forwarded-For": "127.0.0.1",
           "X-Forwarded-Proto": "http", "Accept": "*/*", "User-Agent": "client_cost"}


async def serve(port: int) -> None:
    from aiohttp import web

    async def data(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", data)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


async def measure(one: Callable[[], Awaitable[bytes]], requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs per request, requests per second) for `requests` calls of `one`, `concurrency` at a time."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            body = await one()
            assert body == BODY

    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / requests * 1e6, requests / elapsed


async def run(port: int, requests: int, rounds: int, concurrency: int) -> None:
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy

    from shadowdiff.http.upstream import Limits, Upstream
    from shadowdiff.model import CapturedRequest

    url = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"), trust_env=False,
    )
    upstream = Upstream("primary", url, Limits(connect_timeout=5, read_timeout=30, total_timeout=None, max_connections=100,
                                               max_headers=256, max_header_line_bytes=65536))
    await upstream.start()
    captured = CapturedRequest("GET", "/data.json", "/data.json", "/data.json", "0" * 32,
                               CIMultiDictProxy(CIMultiDict(HEADERS)), b"", "backend")

    async def with_session() -> bytes:
        async with session.get(url + "/data.json", headers=HEADERS, allow_redirects=False) as response:
            return await response.read()

    async def with_pool() -> bytes:
        response = await upstream.open(captured, CIMultiDict(captured.headers))
        body = await response.content.read()
        response.release()
        return body

    try:
        for one in (with_session, with_pool):  # warm both: connections, caches
            await measure(one, min(2000, requests), concurrency)
        print(f"{'round':>5} | {'ClientSession µs/req':>20} | {'pool µs/req':>11} | {'session/pool':>12} | req/s session -> pool")
        for n in range(1, rounds + 1):
            s_cpu, s_rps = await measure(with_session, requests, concurrency)
            p_cpu, p_rps = await measure(with_pool, requests, concurrency)
            print(f"{n:>5} | {s_cpu:>20.1f} | {p_cpu:>11.1f} | {s_cpu / p_cpu:>11.2f}x | {s_rps:,.0f} -> {p_rps:,.0f}", flush=True)
    finally:
        await session.close()
        await upstream.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000, help="requests per client per round (default 20,000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    p.add_argument("--role", choices=("backend",), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "backend":
        run_loop(serve(args.port))
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    backend_cpus = {cpus[0]} if len(cpus) > 1 else None
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[1]})
    port = free_port()
    backend = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "backend", "--port", str(port)],
                               preexec_fn=child_setup(backend_cpus), cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or backend.poll() is not None:
                    raise SystemExit("the backend did not start") from None
                time.sleep(0.1)
        pinning = f"backend on CPU {cpus[0]}, this process on CPU {cpus[1]}" if len(cpus) > 1 else "not pinned (one CPU)"
        print(f"# client_cost.py: {args.requests:,} GETs per client per round, {args.concurrency} in flight, {pinning}")
        run_loop(run(port, args.requests, args.rounds, args.concurrency))
    finally:
        stop_process(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())

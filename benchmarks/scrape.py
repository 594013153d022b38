"""Scrape storm: what four continuous /metrics scrapers at the route cap cost the proxy's clients.

    .venv/bin/python benchmarks/scrape.py                       # ~1-2 min: 3 rounds of 300 requests a row
    .venv/bin/python benchmarks/scrape.py --requests 100 --rounds 1     # a smoke run
    .venv/bin/python benchmarks/scrape.py --baseline /tmp/baseline      # plus rows for another checkout

Each configuration is a `python -m shadowdiff serve` process of its own (mirroring on, log
level error), in front of one primary, which also serves as the shadow (a
`tests.backends.Backend` in this process). Each proxy is first driven through 200 distinct
routes, the route cap, so /metrics carries every series it can (~700 KB). Rows:

  none                no scrapers (the baseline)
  4 scrapers          four continuous scrapers, the default admin.metrics_min_interval (1 s)
  4 scrapers, 0 s     the same with admin.metrics_min_interval 0: renders off the loop and
                      shared while one is under way, but a new one for every other scrape
                      (what the thread alone buys)
  4 scrapers of another proxy   the client's proxy is left alone; the scrapers fetch an idle
                      second proxy's /metrics (default interval): what the scrapers' own CPU
                      costs the machine, the floor for the `4 scrapers` row
  ... (baseline)      with --baseline DIR: `none` and `4 scrapers` for that checkout's proxy
                      (its own .venv; 0.4.0 renders every scrape on the event loop)

The scrapers are `tests.scrapers`, in a process of their own (four threads, each fetching
/metrics back to back on a kept-alive connection). The client is an aiohttp session in this
process sending GET requests one after another through the proxy; a request's latency runs
from sending it to reading the whole body. Each row's `--requests` are split over
`--rounds`, and each round runs every row, the order rotated, so drift falls on all alike.
Printed per row: client p50, p99 and max (ms), scrapes per second, the /metrics size, the
proxy process's CPU (utime + stime over the row's wall time: 100% is one core), and p50
and p99 as ratios to `none`: read the ratios, the machine is noisy.
Bounded: every row stops at `--requests` or 20 s a round; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# The repo root on sys.path: the test helpers (tests.backends, tests.scrapers) import from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from tests.backends import Backend  # noqa: E402

from common import REPO, code_version, cpu_model, cpu_seconds, free_port, percentile  # noqa: E402

ROUTES = 200  # routing.DEFAULT_MAX_ROUTES: the cap
SCRAPERS = 4
ROW_WALL_S = 20.0  # one row of one round, whatever --requests is
START_S = 30.0
CLIENT_TIMEOUT_S = 10.0


@dataclass
class Proxy:
    label: str
    python: str
    cwd: str
    interval: float | None  # admin.metrics_min_interval; None: the key is not written (older checkouts)
    port: int = 0
    admin_port: int = 0
    process: asyncio.subprocess.Process | None = None
    metrics_bytes: int = 0

    async def start(self, primary: str, workdir: str) -> None:
        self.port, self.admin_port = free_port(), free_port()
        lines = [
            f'listen: {{address: "127.0.0.1:{self.port}"}}',
            f'admin: {{listen: "127.0.0.1:{self.admin_port}"'
            + (f", metrics_min_interval: {self.interval}" if self.interval is not None else "") + "}",
            f'primary: {{url: "{primary}"}}',
            f'shadow: {{url: "{primary}"}}',
            "logging: {level: error}",
        ]
        path = os.path.join(workdir, f"{len(os.listdir(workdir))}.yaml")
        Path(path).write_text("\n".join(lines) + "\n")
        self.process = await asyncio.create_subprocess_exec(
            self.python, "-m", "shadowdiff", "serve", "--config", path, cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/metrics"


@dataclass
class Row:
    label: str
    proxy: Proxy
    scrapers: int
    scraped: Proxy | None = None  # whose /metrics the scrapers fetch (default: `proxy`'s)
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    scrapes: int = 0
    scrape_failures: int = 0
    scrape_seconds: float = 0.0  # the scrapers' running time (they start before the client)
    seconds: float = 0.0
    proxy_cpu_s: float = 0.0  # the proxy process's utime + stime during the row


async def until_listening(session: aiohttp.ClientSession, proxy: Proxy) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proxy.process is not None
        if proxy.process.returncode is not None:
            err = await proxy.process.stderr.read() if proxy.process.stderr else b""
            raise SystemExit(f"{proxy.label}: the proxy exited: {err.decode(errors='replace')[-2000:]}")
        try:
            async with session.get(proxy.url + "/ping") as response:
                await response.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"{proxy.label}: the proxy did not listen within {START_S} s")


async def fill_routes(session: aiohttp.ClientSession, proxy: Proxy) -> None:
    """One request per route up to the cap, then a scrape to read the exposition's size."""
    for n in range(ROUTES + 10):
        async with session.get(f"{proxy.url}/r{n}/x") as response:
            await response.read()
    await asyncio.sleep(0.5)  # the shadow copies and comparisons are in
    async with session.get(proxy.metrics_url) as response:
        proxy.metrics_bytes = len(await response.read())


async def run_row(session: aiohttp.ClientSession, row: Row, requests: int) -> None:
    scrapers = None
    if row.scrapers:
        scrapers = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.scrapers", (row.scraped or row.proxy).metrics_url, str(row.scrapers),
            str(ROW_WALL_S + 10), "1000000", cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert scrapers.stdout is not None and scrapers.stdin is not None
        started = await asyncio.wait_for(scrapers.stdout.readline(), START_S)
        assert started == b"started\n", started
        await asyncio.sleep(0.5)  # every scraper under way
    assert row.proxy.process is not None
    cpu_before = cpu_seconds(row.proxy.process.pid)
    began = time.perf_counter()
    deadline = began + ROW_WALL_S
    try:
        for n in range(requests):
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            try:
                async with session.get(f"{row.proxy.url}/r{n % ROUTES}/x") as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if ok:
                row.latencies_ms.append((time.perf_counter() - sent) * 1000)
            else:
                row.failures += 1
    finally:
        row.seconds += time.perf_counter() - began
        row.proxy_cpu_s += cpu_seconds(row.proxy.process.pid) - cpu_before
        if scrapers is not None:
            assert scrapers.stdin is not None and scrapers.stdout is not None
            scrapers.stdin.close()
            out = await asyncio.wait_for(scrapers.stdout.read(), 30)
            await scrapers.wait()
            totals = json.loads(out)
            row.scrapes += totals["scrapes"]
            row.scrape_failures += totals["failures"]
            row.scrape_seconds += totals["seconds"]


def machine() -> str:
    return (
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, {cpu_model()}, "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; shadowdiff {code_version()}"
    )


def report(rows: list[Row]) -> list[dict[str, Any]]:
    base = rows[0]
    base_p50, base_p99 = percentile(base.latencies_ms, 0.5), percentile(base.latencies_ms, 0.99)
    print("\n| row | requests | fails | p50 ms | p99 ms | max ms | scrapes/s | /metrics KB | proxy CPU | p50 ratio | p99 ratio |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    out = []
    for row in rows:
        p50, p99 = percentile(row.latencies_ms, 0.5), percentile(row.latencies_ms, 0.99)
        rate = row.scrapes / row.scrape_seconds if row.scrape_seconds else 0.0
        cpu = row.proxy_cpu_s / row.seconds if row.seconds else 0.0
        out.append({"row": row.label, "requests": len(row.latencies_ms), "failures": row.failures,
                    "p50_ms": p50, "p99_ms": p99, "max_ms": max(row.latencies_ms, default=float("nan")),
                    "scrapes_per_s": rate, "scrape_failures": row.scrape_failures,
                    "metrics_bytes": row.proxy.metrics_bytes, "proxy_cpu": cpu,
                    "p50_ratio": p50 / base_p50, "p99_ratio": p99 / base_p99})  # fmt: skip
        print(f"| {row.label} | {len(row.latencies_ms)} | {row.failures} | {p50:.2f} | {p99:.2f} "
              f"| {out[-1]['max_ms']:.1f} | {rate:.0f} | {row.proxy.metrics_bytes / 1024:.0f} | {cpu:.0%} "
              f"| {p50 / base_p50:.2f}x | {p99 / base_p99:.2f}x |")  # fmt: skip
    return out


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    print(machine())
    print(f"{args.requests} client requests a row in {args.rounds} rounds, one at a time; "
          f"{SCRAPERS} scrapers; {ROUTES} routes\n")  # fmt: skip
    here = sys.executable
    ours = Proxy("default (1 s)", here, REPO, None)
    no_interval = Proxy("0 s", here, REPO, 0.0)
    other = Proxy("other (1 s)", here, REPO, None)
    proxies = [ours, no_interval, other]
    rows = [Row("none", ours, 0), Row(f"{SCRAPERS} scrapers", ours, SCRAPERS),
            Row(f"{SCRAPERS} scrapers, interval 0 s", no_interval, SCRAPERS),
            Row(f"{SCRAPERS} scrapers of another proxy", ours, SCRAPERS, scraped=other)]  # fmt: skip
    if args.baseline:
        theirs = Proxy("baseline", os.path.join(args.baseline, ".venv", "bin", "python"), args.baseline, None)
        proxies.append(theirs)
        rows += [Row("none (baseline)", theirs, 0), Row(f"{SCRAPERS} scrapers (baseline)", theirs, SCRAPERS)]
    primary = await Backend("primary").start()
    workdir = tempfile.mkdtemp(prefix="shadowdiff-scrape-")
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for proxy in proxies:
                await proxy.start(primary.url, workdir)
            for proxy in proxies:
                await until_listening(session, proxy)
                await fill_routes(session, proxy)
                print(f"  {proxy.label:<14} /metrics {proxy.metrics_bytes / 1024:.0f} KB at {ROUTES} routes")
            for r in range(args.rounds):
                n = args.requests // args.rounds + (1 if r < args.requests % args.rounds else 0)
                shift = r * len(rows) // args.rounds
                for row in rows[shift:] + rows[:shift]:
                    before = len(row.latencies_ms)
                    await run_row(session, row, n)
                    primary.seen.clear()
                    got = row.latencies_ms[before:]
                    print(f"  round {r + 1} {row.label:<28} p50 {percentile(got, 0.5):7.2f} ms, "
                          f"p99 {percentile(got, 0.99):7.2f} ms", flush=True)  # fmt: skip
    finally:
        for proxy in proxies:
            await proxy.stop()
        await primary.stop()
    return report(rows)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=900, help="client requests a row, all rounds (default 900)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running every row (default 3)")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout with its .venv: rows for its proxy too")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.requests < 1 or not 1 <= args.rounds <= args.requests:
        parser.error("--requests must be positive, --rounds between 1 and --requests")
    if args.baseline and not os.path.exists(os.path.join(args.baseline, ".venv", "bin", "python")):
        parser.error(f"{args.baseline} has no .venv: run `make -C {args.baseline} .venv/.installed` first")
    rows = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    cli()

"""Shadow isolation: what a misbehaving shadow costs the primary's clients, measured.

    .venv/bin/python benchmarks/isolation.py [--requests N] [--concurrency C] [--rounds R] [--json PATH]

Everything runs in this one process, on one event loop, on 127.0.0.1: an aiohttp client,
the proxy (`ShadowDiff`), the primary (`tests.backends.Backend`) and the shadow (a healthy
`Backend`, or a `tests.faults.FaultServer`, or a free port nobody listens on). Every CPU
cycle the proxy spends on shadow work is therefore taken from the client and the primary:
a harsh setup, on purpose.

Part 1, shadow scenarios. Each scenario's N GET requests (at concurrency C) are split
over R rounds (default 3); every round runs all nine scenarios, the order rotated by a
third each round, so every scenario, the healthy baseline included, runs early, mid and
late in the session. Each run is a fresh proxy (shadow.timeout 1.0,
shadow.connect_timeout 0.5, mirror.max_in_flight 100), 2*C warm-up requests (then its
shadow work is settled and a metrics snapshot taken), then the measured requests. Per
scenario, pooled over the rounds: client-side latency (request sent to body read) p50,
p99, max; req/s; failures (any non-200 or exception); the peak of
`service.mirror.in_flight` (sampled every 10 ms); and, from the proxy's metrics once the
shadow work drained, mirrored copies, overload skips and shadow errors by kind. Ratios are
against the healthy-shadow scenario; "tput ratio per round" is the range of each round's
throughput against the same round's healthy run, and a drift line lists the healthy run
of each round. An unreported healthy run warms the process up first.

  healthy     a Backend answering like the primary (every copy a match)
  no_mirror   mirror.enabled false: the proxy alone
  delay       answers after 2 s (past shadow.timeout: every copy times out at 1 s)
  black_hole  accepts, reads, never answers
  refusing    a free port: connection refused
  reset_mid_body, garbage_status, short_body, trickle (one byte every 0.3 s)

Part 2, primary and client faults, once each: time to the client's 502 (primary
refusing), 504 (primary black hole, primary.timeout 0.5), slowloris close
(listen.idle_timeout 1.0, with a normal request made meanwhile), 408 for a trickled body
(listen.request_timeout 1.0), 503 for the 51st connection (listen.max_connections 50).

Read the ratios, not the milliseconds: the machine is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# The repo root goes on sys.path so that the test helpers (tests.faults, tests.backends,
# tests.conftest, tests.metrics_text) import when this runs as `python benchmarks/isolation.py`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from shadowdiff import log  # noqa: E402
from shadowdiff.service import ShadowDiff  # noqa: E402
from tests.backends import Backend, free_port  # noqa: E402
from tests.conftest import proxy_config  # noqa: E402
from tests.faults import FaultServer  # noqa: E402
from tests.metrics_text import MetricsReader  # noqa: E402

from common import cpu_model, percentile  # noqa: E402

CAP = 100
WARMUP_REQUESTS = 500  # an unreported healthy run first: imports, caches, CPU frequency
SHADOW = {"timeout": 1.0, "connect_timeout": 0.5}
SCENARIO_WALL_S = 90.0  # a scenario stops issuing requests past this, whatever N is
CLIENT_TIMEOUT_S = 10.0  # one client request
SETTLE_S = 5.0  # waiting for shadow work to drain (shadow.timeout is 1 s)
TOTAL_WALL_S = 900.0  # the whole script, as a last resort
SAMPLE_S = 0.01

SCENARIOS = (
    "healthy",
    "no_mirror",
    "delay",
    "black_hole",
    "refusing",
    "reset_mid_body",
    "garbage_status",
    "short_body",
    "trickle",
)


def round_order(round_index: int, rounds: int) -> tuple[str, ...]:
    """The scenarios rotated by a share of the list each round, so each runs early, mid and late."""
    shift = round_index * len(SCENARIOS) // rounds
    return SCENARIOS[shift:] + SCENARIOS[:shift]


class HeldFaultServer(FaultServer):
    """A FaultServer whose connection tasks end cleanly, for a long run in one process.

    FaultServer's black hole awaits an Event nobody else holds, so asyncio may
    garbage-collect the pending task mid-run ("Task was destroyed but it is pending!"),
    and cancelling a start_server handler on Python 3.11 logs a traceback. Here the black
    hole reads until the peer (or stop()) closes the connection, and stop() waits a
    bounded time for the handlers (a 2 s delay, a trickle) to finish on the closed socket.
    """

    STOP_WAIT_S = 3.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: dict[asyncio.StreamWriter, asyncio.StreamReader] = {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._readers[writer] = reader
        try:
            await super()._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            self._readers.pop(writer, None)

    async def _black_hole(self, writer: asyncio.StreamWriter) -> bool:
        reader = self._readers[writer]
        while await reader.read(65536):  # never answers; returns once the connection is closed
            pass
        return False

    async def stop(self) -> None:
        await super().stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.STOP_WAIT_S)
        for task in list(self._tasks):  # not expected: a handler still running after the wait
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LibraryErrors(logging.Filter):
    """Counts (and keeps off stdout) error records from the asyncio logger, e.g. unretrieved task exceptions."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and record.levelno >= logging.ERROR:
            message = record.getMessage().split("\n")[0]
            exc = record.exc_info[1] if record.exc_info else None
            self.seen[f"{message} ({type(exc).__name__})" if exc else message] += 1
            return False
        return True

    def take(self) -> dict[str, int]:
        seen, self.seen = dict(self.seen), Counter()
        return seen


LIBRARY_ERRORS = LibraryErrors()


@dataclass
class Run:
    scenario: str
    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    failures: Counter[str] = field(default_factory=Counter)
    peak_in_flight: int = 0
    mirrored: float = 0.0
    overload: float = 0.0
    shadow_errors: dict[str, float] = field(default_factory=dict)
    primary_errors: float = 0.0
    comparisons: dict[str, float] = field(default_factory=dict)
    settled: bool = True
    library_errors: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Run) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.latencies_ms.extend(other.latencies_ms)
        self.failures.update(other.failures)
        self.peak_in_flight = max(self.peak_in_flight, other.peak_in_flight)
        self.mirrored += other.mirrored
        self.overload += other.overload
        self.primary_errors += other.primary_errors
        for mine, theirs in ((self.shadow_errors, other.shadow_errors), (self.comparisons, other.comparisons),
                             (self.library_errors, other.library_errors)):  # fmt: skip
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        self.settled = self.settled and other.settled

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("latencies_ms")
        d["failures"] = dict(self.failures)
        d.update(rps=self.rps, p50_ms=percentile(self.latencies_ms, 0.5),
                 p99_ms=percentile(self.latencies_ms, 0.99), max_ms=max(self.latencies_ms, default=0.0))  # fmt: skip
        return d


def counters(service: ShadowDiff) -> MetricsReader:
    return MetricsReader(service.metrics.exposition().decode())


async def settle(service: ShadowDiff, timeout: float = SETTLE_S) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while service.mirror.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return service.mirror.in_flight == 0


async def drive(session: aiohttp.ClientSession, url: str, n: int, concurrency: int, run: Run | None) -> None:
    """n GETs at `concurrency`, bounded by SCENARIO_WALL_S; latencies and failures into `run`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SCENARIO_WALL_S
    next_index = iter(range(n))

    async def worker() -> None:
        for i in next_index:
            if loop.time() > deadline:
                return
            started = time.perf_counter()
            try:
                async with session.get(f"{url}/items/{i}") as response:
                    await response.read()
                    status = response.status
            except Exception as exc:  # noqa: BLE001 - every client-side failure is counted by type
                status = type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            if run is not None:
                run.requests += 1
                run.latencies_ms.append(elapsed)
                if status != 200:
                    run.failures[str(status)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_scenario(name: str, primary: Backend, n: int, concurrency: int) -> Run:
    run = Run(name)
    shadow_server: Backend | FaultServer | None = None
    if name == "healthy":
        shadow_server = await Backend("shadow").start()
        shadow_url: str | None = shadow_server.url
    elif name == "no_mirror":
        shadow_url = None  # proxy_config turns mirroring off
    elif name == "refusing":
        shadow_url = f"http://127.0.0.1:{free_port()}"
    else:
        shadow_server = await HeldFaultServer(name, delay=2.0, interval=0.3).start()
        shadow_url = shadow_server.url
    service = ShadowDiff(proxy_config(primary.url, shadow_url, shadow=SHADOW, mirror={"max_in_flight": CAP}))
    try:
        await service.start()
        url = f"http://{service.address}"
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S),
        ) as session:
            await drive(session, url, 2 * concurrency, concurrency, None)  # warm-up: connections opened
            await settle(service)
            before = counters(service)

            sampling = True

            async def sample() -> None:
                while sampling:
                    run.peak_in_flight = max(run.peak_in_flight, service.mirror.in_flight)
                    await asyncio.sleep(SAMPLE_S)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            try:
                await drive(session, url, n, concurrency, run)
            finally:
                run.seconds = time.perf_counter() - started
                sampling = False
                await sampler
        run.settled = await settle(service)
        after = counters(service)

        def delta(name: str, **labels: str) -> float:
            return after.value(name, **labels) - before.value(name, **labels)

        run.mirrored = delta("shadowdiff_mirrored_total")
        run.overload = delta("shadowdiff_mirror_skipped_total", reason="overload")
        run.primary_errors = delta("shadowdiff_upstream_errors_total", upstream="primary")
        kinds = after.label_values("shadowdiff_upstream_errors_total", "kind")
        run.shadow_errors = {
            k: v for k in sorted(kinds) if (v := delta("shadowdiff_upstream_errors_total", upstream="shadow", kind=k))
        }
        outcomes = after.label_values("shadowdiff_comparisons_total", "outcome")
        run.comparisons = {o: v for o in sorted(outcomes) if (v := delta("shadowdiff_comparisons_total", outcome=o))}
    finally:
        await service.stop()
        if shadow_server is not None:
            await shadow_server.stop()
        primary.seen.clear()
        gc.collect()  # so that an unretrieved task exception is logged, and counted, now
        run.library_errors = LIBRARY_ERRORS.take()
    return run


# -- part 2: primary and client faults, once each ----------------------------------------


async def read_head(reader: asyncio.StreamReader, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        return exc.partial


async def one_request(url: str, raw: bytes, timeout: float = 10.0) -> tuple[float, str]:
    """Send raw bytes on a new connection; ms until the response head (or close), and its status line."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        head = await read_head(reader, timeout)
    finally:
        writer.close()
    return (time.perf_counter() - started) * 1000, head.split(b"\r\n", 1)[0].decode("latin-1") or "closed"


GET = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


async def with_proxy(primary_url: str, shadow_url: str | None, **sections: Any) -> ShadowDiff:
    service = ShadowDiff(proxy_config(primary_url, shadow_url, **sections))
    await service.start()
    return service


async def primary_refusing(primary: Backend, shadow: Backend) -> dict[str, Any]:
    service = await with_proxy(f"http://127.0.0.1:{free_port()}", shadow.url, primary={"connect_timeout": 0.5})
    try:
        ms, status = await one_request(f"http://{service.address}", GET)
    finally:
        await service.stop()
    return {"check": "primary refusing", "setting": "primary.connect_timeout 0.5", "expected": "502 at once",
            "ms": ms, "result": status, "note": f"shadow got {len(shadow.seen)} copies"}  # fmt: skip


async def primary_black_hole(primary: Backend, shadow: Backend) -> dict[str, Any]:
    hole = await HeldFaultServer("black_hole").start()
    try:
        service = await with_proxy(hole.url, shadow.url, primary={"timeout": 0.5})
        try:
            ms, status = await one_request(f"http://{service.address}", GET)
        finally:
            await service.stop()
    finally:
        await hole.stop()
    return {"check": "primary black hole", "setting": "primary.timeout 0.5", "expected": "504 at ~500 ms",
            "ms": ms, "result": status, "note": f"shadow got {len(shadow.seen)} copies"}  # fmt: skip


async def slowloris(primary: Backend, shadow: Backend) -> dict[str, Any]:
    service = await with_proxy(primary.url, None, listen={"idle_timeout": 1.0})
    host, port = str(service.address).rsplit(":", 1)
    try:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ")
            await writer.drain()
            await asyncio.sleep(0.2)
            normal_ms, normal = await one_request(f"http://{service.address}", GET)
            try:
                data = await asyncio.wait_for(reader.read(), 10)
            except ConnectionError:
                data = b""
            closed_ms = (time.perf_counter() - started) * 1000
        finally:
            writer.close()
    finally:
        await service.stop()
    slow_seen = [s for s in primary.seen if s.raw_path == "/slow"]
    primary.seen.clear()
    return {"check": "slowloris (partial head)", "setting": "listen.idle_timeout 1.0", "expected": "closed at ~1000 ms",
            "ms": closed_ms, "result": "closed, nothing sent" if data == b"" else f"got {data[:40]!r}",
            "note": f"normal request meanwhile: {normal} in {normal_ms:.1f} ms; /slow reached primary: {bool(slow_seen)}",
            "normal_ms": normal_ms}  # fmt: skip


async def trickled_body(primary: Backend, shadow: Backend) -> dict[str, Any]:
    service = await with_proxy(primary.url, None, listen={"request_timeout": 1.0})
    host, port = str(service.address).rsplit(":", 1)
    try:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, int(port))

        async def trickle() -> None:  # 1 byte every 0.1 s of a 100-byte body: 10 s if let be
            for _ in range(100):
                await asyncio.sleep(0.1)
                writer.write(b"x")
                await writer.drain()

        try:
            writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
            await writer.drain()
            feeder = asyncio.create_task(trickle())
            head = await read_head(reader, 10)
            ms = (time.perf_counter() - started) * 1000
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        finally:
            writer.close()
    finally:
        await service.stop()
    reached = bool(primary.seen)
    primary.seen.clear()
    return {"check": "trickled body", "setting": "listen.request_timeout 1.0", "expected": "408 at ~1000 ms",
            "ms": ms, "result": head.split(b"\r\n", 1)[0].decode("latin-1") or "closed",
            "note": f"reached primary: {reached}"}  # fmt: skip


async def connection_cap(primary: Backend, shadow: Backend) -> dict[str, Any]:
    cap = 50
    service = await with_proxy(primary.url, None, listen={"max_connections": cap})
    host, port = str(service.address).rsplit(":", 1)
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(cap):
            held.append((await asyncio.open_connection(host, int(port)))[1])
        await asyncio.sleep(0.1)  # all accepted by the proxy
        ms, status = await one_request(f"http://{service.address}", GET)
        for writer in held:
            writer.close()
        held.clear()
        await asyncio.sleep(0.1)
        _, after = await one_request(f"http://{service.address}", GET)
        shed = counters(service).value("shadowdiff_connections_shed_total")
    finally:
        for writer in held:
            writer.close()
        await service.stop()
    primary.seen.clear()
    return {"check": "connection cap (51st)", "setting": "listen.max_connections 50", "expected": "503 at once",
            "ms": ms, "result": status, "note": f"connections_shed_total {shed:.0f}; once freed: {after}"}  # fmt: skip


# -- report -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = cpu_model(platform.machine())
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "aiohttp": aiohttp.__version__,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_errors(d: dict[str, float]) -> str:
    return " ".join(f"{k}:{v:.0f}" for k, v in d.items()) or "-"


def report(runs: list[Run], rounds: list[list[dict[str, Any]]], checks: list[dict[str, Any]]) -> dict[str, Any]:
    base = next(r for r in runs if r.scenario == "healthy")
    base_p50, base_p99, base_rps = percentile(base.latencies_ms, 0.5), percentile(base.latencies_ms, 0.99), base.rps
    print(f"\nBaseline (healthy shadow, {base.requests} requests over {len(rounds)} rounds): p50 {base_p50:.2f} ms, "
          f"p99 {base_p99:.2f} ms, {base_rps:.0f} req/s")  # fmt: skip
    # Per round, each scenario's throughput against the same round's healthy run: the spread shows the noise.
    per_round: dict[str, list[float]] = {r.scenario: [] for r in runs}
    for detail in rounds:
        healthy_rps = next(d["rps"] for d in detail if d["scenario"] == "healthy")
        for d in detail:
            per_round[d["scenario"]].append(d["rps"] / healthy_rps)
    header = ("| scenario | req/s | p50 ms | p99 ms | max ms | fails | peak in-flight | mirrored | overload "
              "| shadow errors | p50 ratio | p99 ratio | tput ratio | tput ratio per round |")  # fmt: skip
    print("\n" + header)
    print("|" + "|".join("---" if i == 0 or i == 9 else "--:" for i in range(header.count("|") - 1)) + "|")
    rows, notes = [], []
    for r in runs:
        label = r.scenario
        p50, p99 = percentile(r.latencies_ms, 0.5), percentile(r.latencies_ms, 0.99)
        mx = max(r.latencies_ms, default=float("nan"))
        fails = sum(r.failures.values())
        spread = per_round[r.scenario]
        row = {
            **r.summary(),
            "p50_ratio": p50 / base_p50, "p99_ratio": p99 / base_p99, "throughput_ratio": r.rps / base_rps,
            "throughput_ratio_per_round": spread,
        }  # fmt: skip
        rows.append(row)
        print(f"| {label} | {r.rps:.0f} | {p50:.2f} | {p99:.2f} | {mx:.1f} | {fails} | {r.peak_in_flight} "
              f"| {r.mirrored:.0f} | {r.overload:.0f} | {fmt_errors(r.shadow_errors)} "
              f"| {row['p50_ratio']:.2f}x | {row['p99_ratio']:.2f}x | {row['throughput_ratio']:.2f}x "
              f"| {min(spread):.2f}-{max(spread):.2f}x |")  # fmt: skip
        if fails:
            notes.append(f"{label}: {fails} client failures {dict(r.failures)}")
        if r.peak_in_flight > CAP:
            notes.append(f"{label}: peak in-flight {r.peak_in_flight} > cap {CAP}")
        if r.primary_errors:
            notes.append(f"{label}: {r.primary_errors:.0f} primary errors")
        if r.library_errors:
            notes.append(f"{label}: asyncio logged {r.library_errors}")
        if not r.settled:
            notes.append(f"{label}: shadow work had not drained {SETTLE_S} s after a round")
        if row["p99_ratio"] > 1.5:
            notes.append(f"{label}: p99 {row['p99_ratio']:.2f}x the baseline")
        if row["throughput_ratio"] < 0.8:
            notes.append(f"{label}: throughput {row['throughput_ratio']:.2f}x the baseline")
    healthy = [next(d for d in detail if d["scenario"] == "healthy") for detail in rounds]
    if len(healthy) > 1:
        def listed(key: str, digits: int) -> str:
            return ", ".join(f"{d[key]:.{digits}f}" for d in healthy)

        print(f"\nDrift, the healthy baseline round by round: {listed('rps', 0)} req/s; "
              f"p50 {listed('p50_ms', 2)} ms; p99 {listed('p99_ms', 2)} ms")
    print("\nPrimary and client faults (once each):\n")
    print("| check | setting | expected | measured ms | result | note |")
    print("|---|---|---|--:|---|---|")
    for c in checks:
        if c.get("library_errors"):
            notes.append(f"{c['check']}: asyncio logged {c['library_errors']}")
        print(f"| {c['check']} | {c['setting']} | {c['expected']} | {c['ms']:.1f} | {c['result']} | {c['note']} |")
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")
    return {"baseline": {"p50_ms": base_p50, "p99_ms": base_p99, "rps": base_rps}, "scenarios": rows,
            "checks": checks, "notes": notes}  # fmt: skip


async def main(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    print(f"Python {info['python']} ({info['implementation']}), aiohttp {info['aiohttp']}")
    print(f"CPU: {info['cpu']}, {info['cores']} cores; load average {info['loadavg']}; {info['date']}")
    print(f"{args.requests} requests at concurrency {args.concurrency} per scenario, in {args.rounds} rounds; "
          f"shadow.timeout 1.0, connect_timeout 0.5, mirror.max_in_flight {CAP}\n")  # fmt: skip
    began = time.perf_counter()
    primary = await Backend("primary").start()
    shadow = await Backend("shadow").start()
    totals = {name: Run(name) for name in SCENARIOS}
    rounds: list[list[dict[str, Any]]] = []
    checks: list[dict[str, Any]] = []
    try:
        warmup = await run_scenario("healthy", primary, min(args.requests, WARMUP_REQUESTS), args.concurrency)
        print(f"  warm-up          {warmup.requests} requests (not reported)", flush=True)
        for r in range(args.rounds):
            n = args.requests // args.rounds + (1 if r < args.requests % args.rounds else 0)
            rounds.append([])
            for name in round_order(r, args.rounds):
                run = await run_scenario(name, primary, n, args.concurrency)
                totals[name].merge(run)
                rounds[-1].append(run.summary())
                print(f"  round {r + 1} {name:<15} {run.requests:5d} requests in {run.seconds:4.1f} s, "
                      f"p50 {percentile(run.latencies_ms, 0.5):6.2f} ms, "
                      f"p99 {percentile(run.latencies_ms, 0.99):6.2f} ms, "
                      f"failures {sum(run.failures.values())}", flush=True)  # fmt: skip
        for check in (primary_refusing, primary_black_hole, slowloris, trickled_body, connection_cap):
            shadow.seen.clear()
            checks.append(await asyncio.wait_for(check(primary, shadow), 30))
            gc.collect()
            checks[-1]["library_errors"] = LIBRARY_ERRORS.take()
            print(f"  {checks[-1]['check']:<26} {checks[-1]['ms']:7.1f} ms  {checks[-1]['result']}", flush=True)
    finally:
        await primary.stop()
        await shadow.stop()
    result = report(list(totals.values()), rounds, checks)
    elapsed = time.perf_counter() - began
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nTotal {elapsed:.0f} s; load average at the end {load_end}")
    return {"machine": info, "requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
            "seconds": elapsed, "rounds_detail": rounds, **result}  # fmt: skip


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="client requests in flight (default 16)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="split each scenario's requests over this many rounds, in rotated order (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1 or not 1 <= args.rounds <= args.requests:
        parser.error("--requests and --concurrency must be positive, --rounds between 1 and --requests")
    log.configure("error")  # mismatch and warning lines would flood the output
    for handler in logging.getLogger().handlers:
        handler.addFilter(LIBRARY_ERRORS)
    result = asyncio.run(asyncio.wait_for(main(args), TOTAL_WALL_S))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    cli()

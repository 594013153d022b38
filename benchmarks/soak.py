"""Soak test: mixed traffic through a real `shadowdiff serve` process, with a flapping shadow.

    .venv/bin/python benchmarks/soak.py [--duration 600] [--interval 10] [--rate 300]
                                        [--concurrency 20] [--warmup 60] [--json PATH]

Everything runs on 127.0.0.1, as separate processes started by this script:

  primary   a small aiohttp app (this file, `--role primary`): GET /users/{id} (small JSON),
            GET /catalog (~100 KB JSON), POST /orders (echoes the body), GET /report
            (gzip-encoded JSON), GET /ping (204)
  shadow    the same app (`--role shadow`), which mostly agrees: /users/{id} carries a
            different `ts` (excused by an ignore rule: `ignored`), and for ids divisible by
            10 another name (`mismatch`); /catalog has one other price (`mismatch`, compared
            in the proxy's worker process); /report is gzip-compressed at another level
            (bytes differ, content equal: `match` after decoding); /orders and /ping match
  proxy     `python -m shadowdiff serve` with a config in --workdir (POST mirrored,
            logging.level warning); its stdout and stderr go to WORKDIR/proxy.log

The shadow flaps deterministically: every --flap-period seconds (default 30) it spends the
last --fault-seconds (default 10) of the period in a fault mode, cycling through
  slow     every answer after 2 s (at the default rate this fills mirror.max_in_flight,
           so copies are dropped as `overload`)
  down     the shadow process is killed (SIGKILL) and restarted on the same port afterwards
  garbage  every request answered with a line that is not HTTP, then the connection closed
and is healthy in between.

The load generator (in this process) sends requests at a paced --rate with at most
--concurrency in flight, mixing the routes. Every answer must have the primary's status
(200, or 204 for /ping) and /orders must echo its body: anything else, and any client-side
error or timeout, is a failure: the proxy must never fail a client because of the shadow.

Every --interval seconds one line: elapsed, requests so far, req/s and latency p50/p99 in the
interval, failures, the proxy's RSS (VmRSS of the proxy process; `tree` adds its children:
the forkserver and the comparison worker), open fds, threads, CPU, shadow in-flight (now and
the maximum of 1 s scrapes), and counters from the admin /metrics. shadowdiff exports no
asyncio task count, so the script reports the proxy's OS threads (/proc/PID/status Threads)
and the in-flight gauge, which counts the shadow tasks (each copy is one task); it picks up
any metric whose name contains "task" if one appears.

At the end: least-squares slopes after --warmup of RSS (MB/min), fds (/min) and in-flight
(/min), a summary, and a verdict ("RSS flat" if |slope| < 0.5 MB/min). The proxy gets
SIGTERM and must exit 0 within 20 s. Children are stopped on any exit path (Ctrl-C included);
they also get SIGTERM if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from common import (
    child_setup,
    code_version,
    cpu_model,
    cpu_seconds,
    descendants,
    free_port,
    percentile,
    proc_status,
    rss_mb,
    run_loop,
    run_supervised,
    stop_process,
    wait_for_signal,
)

FAULTS = ("slow", "down", "garbage")
SLOW_SECONDS = 2.0
RSS_FLAT_MB_PER_MIN = 0.5
PROXY_STOP_TIMEOUT = 20.0
ROUTES = (("users", 50), ("catalog", 10), ("orders", 20), ("report", 10), ("ping", 10))
EXPECTED_STATUS = {"users": 200, "catalog": 200, "orders": 200, "report": 200, "ping": 204}
SEED = 20261121


# -- the backends (primary and shadow), run as `soak.py --role primary|shadow` ----------------


def shadow_mode(now: float, epoch: float, period: float, fault: float) -> str:
    """The shadow's mode at wall-clock `now`: healthy, then the last `fault` s of each period a fault."""
    if now < epoch:
        return "healthy"
    cycle, pos = divmod(now - epoch, period)
    if pos < period - fault:
        return "healthy"
    return FAULTS[int(cycle) % len(FAULTS)]


def catalog(variant: str) -> bytes:
    rng = random.Random(SEED)
    items = []
    for i in range(720):
        items.append(
            {
                "id": i,
                "sku": f"SKU-{i:06d}-{rng.randrange(16**6):06x}",
                "name": f"Item {i} " + "".join(rng.choice("abcdefghij") for _ in range(12)),
                "price": round(rng.uniform(1, 500), 2),
                "stock": rng.randrange(1000),
                "score": round(rng.random(), 6),
                "tags": rng.sample(["red", "blue", "green", "sale", "new", "eco", "xl"], 3),
            }
        )
    if variant == "shadow":
        items[7]["price"] = round(items[7]["price"] + 1, 2)
    return orjson.dumps({"meta": {"count": len(items), "currency": "EUR"}, "items": items})


def report(variant: str) -> bytes:
    rows = [{"day": d, "orders": (d * 37) % 101, "revenue": round(d * 13.7, 2)} for d in range(2000)]
    return gzip.compress(orjson.dumps({"rows": rows}), compresslevel=9 if variant == "primary" else 1, mtime=0)


def backend_app(variant: str, epoch: float, period: float, fault: float) -> web.Application:
    catalog_body = catalog(variant)
    report_body = report(variant)

    def mode() -> str:
        return "healthy" if variant == "primary" else shadow_mode(time.time(), epoch, period, fault)

    @web.middleware
    async def flapping(request: web.Request, handler: Any) -> web.StreamResponse:
        current = mode()
        if current == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        elif current == "garbage":
            await request.read()
            transport = request.transport
            if transport is not None:
                transport.write(b"THIS IS NOT HTTP\r\n\r\n")
                transport.close()
            raise asyncio.CancelledError  # the connection is gone; nothing more to send
        return await handler(request)

    async def users(request: web.Request) -> web.Response:
        uid = int(request.match_info["id"])
        name = f"user-{uid}" if variant == "primary" or uid % 10 else f"User {uid}"
        body = {"id": uid, "name": name, "email": f"u{uid}@example.test", "roles": ["reader"], "ts": time.time()}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def catalog_handler(request: web.Request) -> web.Response:
        return web.Response(body=catalog_body, content_type="application/json")

    async def orders(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/json")

    async def report_handler(request: web.Request) -> web.Response:
        return web.Response(body=report_body, content_type="application/json", headers={"Content-Encoding": "gzip"})

    async def ping(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[flapping], client_max_size=1024**2)
    app.router.add_get("/users/{id}", users)
    app.router.add_get("/catalog", catalog_handler)
    app.router.add_post("/orders", orders)
    app.router.add_get("/report", report_handler)
    app.router.add_get("/ping", ping)
    app.router.add_get("/_soak_health", health)
    return app


async def serve_backend(args: argparse.Namespace) -> None:
    app = backend_app(args.role, args.epoch, args.flap_period, args.fault_seconds)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True).start()
    # A backend never outlives its bound, even if its parent vanished without a signal.
    await wait_for_signal(args.max_lifetime)
    await runner.cleanup()


# -- process handling -----------------------------------------------------------------------


def spawn(cmd: list[str], log_path: str) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    try:
        # A new session: Ctrl-C in the terminal reaches this script only, which stops the children.
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=child_setup(),
        )
    finally:
        log.close()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int, ports: dict[str, int]) -> dict[str, int]:
    """The proxy's fds by kind: TCP connections to the primary, to the shadow, from clients
    (on the traffic port), and everything else (listeners, admin, pipes, files, epoll)."""
    sockets: dict[str, tuple[int, int, str]] = {}  # inode -> (local port, remote port, state)
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                    sockets[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
        except OSError:
            pass
    out = {"primary": 0, "shadow": 0, "client": 0, "other": 0}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = "other"
        if target.startswith("socket:["):
            local, remote, state = sockets.get(target[8:-1], (0, 0, ""))
            if state != "0A":  # not a listener
                if remote == ports["primary"]:
                    kind = "primary"
                elif remote == ports["shadow"]:
                    kind = "shadow"
                elif local == ports["proxy"]:
                    kind = "client"
        out[kind] += 1
    return out


def tree_rss_mb(pid: int) -> float:
    total = rss_mb(pid)
    for child in descendants(pid):
        try:
            total += rss_mb(child)
        except (OSError, KeyError):
            pass
    return total


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores"


# -- statistics -----------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; nan with fewer than 2."""
    if len(points) < 2:
        return math.nan
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def cycle_minima(samples: list[dict[str, Any]], cycle: float) -> list[tuple[float, int]]:
    """The lowest fd count in each whole flap cycle, at the time it was seen.

    Open fds follow the phase (a slow shadow leaves up to max_in_flight idle pooled connections
    until its next restart), so a slope over raw samples depends on where the run stops; the
    per-cycle minimum does not.
    """
    by_cycle: dict[int, tuple[float, int]] = {}
    last = samples[-1]["t"] if samples else 0.0
    for s in samples:
        k = int(s["t"] // cycle)
        if (k + 1) * cycle > last + 1:  # the last cycle is incomplete
            continue
        if k not in by_cycle or s["fds"] < by_cycle[k][1]:
            by_cycle[k] = (s["t"], s["fds"])
    return [by_cycle[k] for k in sorted(by_cycle)]


def parse_metrics(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {
        "in_flight": 0.0,
        "overload": 0.0,
        "mirrored": 0.0,
        "shadow_errors": Counter(),
        "primary_errors": Counter(),
        "outcomes": Counter(),
        "skipped": Counter(),
        "shadow_up": None,
        "tasks": None,
        "log_dropped": 0.0,
    }
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == "shadowdiff_shadow_in_flight":
                out["in_flight"] = value
            elif name == "shadowdiff_mirror_skipped_total":
                out["skipped"][labels["reason"]] += value
                if labels["reason"] == "overload":
                    out["overload"] = value
            elif name == "shadowdiff_upstream_errors_total":
                key = "shadow_errors" if labels["upstream"] == "shadow" else "primary_errors"
                out[key][labels["kind"]] += value
            elif name == "shadowdiff_comparisons_total":
                out["outcomes"][labels["outcome"]] += value
            elif name == "shadowdiff_mirrored_total":
                out["mirrored"] += value
            elif name == "shadowdiff_upstream_up" and labels.get("upstream") == "shadow":
                out["shadow_up"] = value
            elif name == "shadowdiff_log_lines_dropped_total":
                out["log_dropped"] = value
            elif "task" in name and not name.endswith(("_created", "_bucket", "_sum", "_count")):
                out["tasks"] = (out["tasks"] or 0) + value
    return out


# -- the load generator and the sampler --------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    failures: int = 0
    missed_slots: int = 0  # slots skipped because the generator was more than 1 s behind
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    failure_examples: list[str] = field(default_factory=list)
    latencies: array = field(default_factory=lambda: array("d"))
    interval_latencies: list[float] = field(default_factory=list)
    interval_requests: int = 0

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.failure_examples) < 20:
            self.failure_examples.append(what)


class Load:
    def __init__(self, base: str, rate: float, concurrency: int, start: float, end: float) -> None:
        self.base, self.rate, self.concurrency = base, rate, concurrency
        self.start, self.end = start, end
        self.stats = Stats()
        self._slot = 0
        self.last_done = start  # loop time of the last answer or error
        self._rng = random.Random(SEED)
        names, weights = zip(*ROUTES)
        self._names, self._weights = names, weights

    async def run(self) -> None:
        connector = TCPConnector(limit=self.concurrency, force_close=False)
        async with ClientSession(
            connector=connector, timeout=ClientTimeout(total=10), auto_decompress=False
        ) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self.concurrency)))

    async def _worker(self, session: ClientSession) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slot = self._slot
            self._slot += 1
            at = self.start + slot / self.rate
            if at >= self.end:
                return
            route = self._rng.choices(self._names, self._weights)[0]
            now = loop.time()
            if at > now:
                await asyncio.sleep(at - now)
            elif now - at > 1.0:
                self.stats.missed_slots += 1
                continue
            await self._one(session, route, slot)

    async def _one(self, session: ClientSession, route: str, slot: int) -> None:
        stats = self.stats
        data = None
        if route == "users":
            method, path = "GET", f"/users/{slot % 1000}"
        elif route == "orders":
            method, path = "POST", "/orders"
            data = orjson.dumps({"order": slot, "items": [{"sku": f"SKU-{slot % 97}", "qty": slot % 5 + 1}] * 4})
        else:
            method, path = "GET", f"/{route}"
        began = time.perf_counter()  # uvloop's loop.time() has 1 ms resolution
        try:
            headers = {"Content-Type": "application/json"} if data is not None else None
            async with session.request(method, self.base + path, data=data, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
        except Exception as exc:  # noqa: BLE001 - every client-side error is a counted failure
            self.last_done = asyncio.get_running_loop().time()
            stats.requests += 1
            stats.interval_requests += 1
            stats.errors[type(exc).__name__] += 1
            stats.fail(f"{method} {path}: {type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - began
        self.last_done = asyncio.get_running_loop().time()
        stats.requests += 1
        stats.interval_requests += 1
        stats.statuses[status] += 1
        stats.latencies.append(elapsed)
        stats.interval_latencies.append(elapsed)
        if status != EXPECTED_STATUS[route]:
            stats.fail(f"{method} {path}: status {status}")
        elif data is not None and body != data:
            stats.fail(f"{method} {path}: echoed body differs ({len(body)} bytes)")


HEADER = (
    f"{'t_s':>5} {'reqs':>7} {'rps':>5} {'p50ms':>6} {'p99ms':>7} {'fail':>4} {'rssMB':>6} {'treeMB':>6} "
    f"{'fds':>4} {'fd p/s/c/o':>12} {'thr':>3} {'cpu%':>4} {'infl':>4} {'max':>4} {'overld':>6} "
    f"{'shadow_err c/t/r/p':>18} {'cmp match/mism/ign/serr':>24}  mode"
)


async def sample_loop(
    proxy_pid: int,
    admin: str,
    ports: dict[str, int],
    load: Load,
    args: argparse.Namespace,
    mode_now: Any,
    samples: list[dict[str, Any]],
) -> None:
    loop = asyncio.get_running_loop()
    interval_max_inflight = 0.0
    next_line = load.start + args.interval
    last_line_t = load.start
    last_cpu = cpu_seconds(proxy_pid)
    modes: list[str] = []  # the shadow's modes seen during the interval, in order
    async with ClientSession(timeout=ClientTimeout(total=5)) as session:
        while True:
            now = loop.time()
            if now >= load.end + 0.5:
                return
            await asyncio.sleep(min(1.0, max(0.0, next_line - now)))
            if mode_now() not in modes:
                modes.append(mode_now())
            metrics = None
            try:
                async with session.get(admin + "/metrics") as resp:
                    metrics = parse_metrics(await resp.text())
                interval_max_inflight = max(interval_max_inflight, metrics["in_flight"])
            except Exception as exc:  # noqa: BLE001
                print(f"# metrics scrape failed: {type(exc).__name__}: {exc}", flush=True)
            now = loop.time()
            if now < next_line - 0.01:
                continue
            stats = load.stats
            elapsed = now - load.start
            span = now - last_line_t
            status = proc_status(proxy_pid)
            cpu = cpu_seconds(proxy_pid)
            lat = stats.interval_latencies
            sample = {
                "t": round(elapsed, 2),
                "requests": stats.requests,
                "rps": stats.interval_requests / span if span > 0 else math.nan,
                "p50_ms": percentile(lat, 0.5) * 1000,
                "p99_ms": percentile(lat, 0.99) * 1000,
                "failures": stats.failures,
                "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                "tree_rss_mb": tree_rss_mb(proxy_pid),
                "fds": fd_count(proxy_pid),
                "fd_kinds": fd_kinds(proxy_pid, ports),
                "threads": int(status["Threads"]),
                "cpu_pct": 100 * (cpu - last_cpu) / span if span > 0 else math.nan,
                "in_flight": metrics["in_flight"] if metrics else math.nan,
                "in_flight_max": interval_max_inflight,
                "overload": metrics["overload"] if metrics else math.nan,
                "shadow_errors": dict(metrics["shadow_errors"]) if metrics else {},
                "outcomes": dict(metrics["outcomes"]) if metrics else {},
                "tasks": metrics["tasks"] if metrics else None,
                "modes": "+".join(modes),
            }
            samples.append(sample)
            se, oc = sample["shadow_errors"], sample["outcomes"]
            fdk = "/".join(str(sample["fd_kinds"][k]) for k in ("primary", "shadow", "client", "other"))
            errs = "/".join(str(int(se.get(k, 0))) for k in ("connect", "timeout", "reset", "protocol"))
            cmps = "/".join(str(int(oc.get(k, 0))) for k in ("match", "mismatch", "ignored", "shadow_error"))
            print(
                f"{elapsed:5.0f} {stats.requests:7d} {sample['rps']:5.0f} {sample['p50_ms']:6.1f} "
                f"{sample['p99_ms']:7.1f} {stats.failures:4d} {sample['rss_mb']:6.1f} {sample['tree_rss_mb']:6.1f} "
                f"{sample['fds']:4d} {fdk:>12} {sample['threads']:3d} {sample['cpu_pct']:4.0f} {sample['in_flight']:4.0f} "
                f"{interval_max_inflight:4.0f} {sample['overload']:6.0f} {errs:>18} {cmps:>24}  {sample['modes']}"
                + (f" tasks={sample['tasks']:.0f}" if sample["tasks"] is not None else ""),
                flush=True,
            )
            stats.interval_latencies = []
            stats.interval_requests = 0
            interval_max_inflight = 0.0
            modes = [mode_now()]
            last_line_t, last_cpu = now, cpu
            next_line += args.interval


async def wait_http(session: ClientSession, url: str, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode} before answering {url}")
        try:
            async with session.get(url) as resp:
                if resp.status < 500:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in time")
        await asyncio.sleep(0.1)


# -- the orchestration --------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = args.workdir
        os.makedirs(self.work, exist_ok=True)
        self.primary_port, self.shadow_port = free_port(), free_port()
        self.proxy_port, self.admin_port = free_port(), free_port()
        self.primary: subprocess.Popen[bytes] | None = None
        self.shadow: subprocess.Popen[bytes] | None = None
        self.proxy: subprocess.Popen[bytes] | None = None
        self.shadow_restarts = 0
        self.epoch = 0.0
        self.proxy_exit: int | None = None
        self.samples: list[dict[str, Any]] = []
        self.load: Load | None = None
        self.final_metrics: dict[str, Any] | None = None
        self.drain_seconds: float | None = None
        self.idle_fds: int | None = None
        self.idle_fd_kinds: dict[str, int] | None = None

    def backend_cmd(self, role: str, port: int) -> list[str]:
        a = self.args
        lifetime = a.duration + a.warmup + 300
        return [
            sys.executable, os.path.abspath(__file__), "--role", role, "--port", str(port),
            "--epoch", repr(self.epoch), "--flap-period", str(a.flap_period),
            "--fault-seconds", str(a.fault_seconds), "--max-lifetime", str(lifetime),
        ]

    def ports(self) -> dict[str, int]:
        return {"primary": self.primary_port, "shadow": self.shadow_port, "proxy": self.proxy_port}

    def start_shadow(self) -> None:
        self.shadow = spawn(self.backend_cmd("shadow", self.shadow_port), os.path.join(self.work, "shadow.log"))

    def mode(self) -> str:
        return shadow_mode(time.time(), self.epoch, self.args.flap_period, self.args.fault_seconds)

    def write_config(self) -> str:
        path = os.path.join(self.work, "soak-config.yaml")
        with open(path, "w") as f:
            f.write(
                "# written by benchmarks/soak.py\n"
                "mirror:\n"
                "  methods: [GET, POST]\n"
                "compare:\n"
                "  rules:\n"
                "    - kind: ignore\n"
                "      path: \"$.ts\"\n"
                "      routes: [\"/users/{id}\"]\n"
                "      reason: \"response timestamp differs on every call\"\n"
                "routes: [\"/users/{id}\"]\n"
                "logging:\n"
                "  level: warning\n"
            )
        return path

    async def run(self) -> None:
        a = self.args
        loop = asyncio.get_running_loop()
        # The shadow's flap schedule starts with the load, healthy first; start-up takes a few seconds.
        self.epoch = time.time() + 10.0
        self.primary = spawn(self.backend_cmd("primary", self.primary_port), os.path.join(self.work, "primary.log"))
        self.start_shadow()
        config = self.write_config()
        proxy_log = os.path.join(self.work, "proxy.log")
        admin = f"http://127.0.0.1:{self.admin_port}"
        async with ClientSession(timeout=ClientTimeout(total=2)) as session:
            # The backends first: the proxy probes the shadow once at start-up.
            deadline = time.monotonic() + 30
            await wait_http(session, f"http://127.0.0.1:{self.primary_port}/_soak_health", deadline, self.primary)
            await wait_http(session, f"http://127.0.0.1:{self.shadow_port}/_soak_health", deadline, self.shadow)
        self.proxy = spawn(
            [
                sys.executable, "-m", "shadowdiff", "serve", "--config", config,
                "--primary", f"http://127.0.0.1:{self.primary_port}",
                "--shadow", f"http://127.0.0.1:{self.shadow_port}",
                "--listen", f"127.0.0.1:{self.proxy_port}",
                "--admin", f"127.0.0.1:{self.admin_port}",
            ],
            proxy_log,
        )
        async with ClientSession(timeout=ClientTimeout(total=2)) as session:
            await wait_http(session, admin + "/readyz", time.monotonic() + 30, self.proxy)
        print(
            f"# proxy pid {self.proxy.pid} on 127.0.0.1:{self.proxy_port} (admin {self.admin_port}); "
            f"primary :{self.primary_port}, shadow :{self.shadow_port}; proxy log {proxy_log}",
            flush=True,
        )
        print(
            f"# rate {a.rate:g}/s, concurrency {a.concurrency}, duration {a.duration:g} s, warm-up {a.warmup:g} s; "
            f"shadow: every {a.flap_period:g} s, {a.fault_seconds:g} s of {'/'.join(FAULTS)} in turn",
            flush=True,
        )
        print("# rssMB: proxy VmRSS; treeMB: with its children (forkserver, compare worker); thr: proxy OS threads "
              "(no asyncio task metric is exported); infl/max: shadow in-flight now / max of 1 s scrapes; "
              "counters are cumulative", flush=True)
        print(HEADER, flush=True)
        # Start the load when the flap schedule starts.
        start = loop.time() + max(0.0, self.epoch - time.time())
        self.load = load = Load(f"http://127.0.0.1:{self.proxy_port}", a.rate, a.concurrency, start, start + a.duration)
        await asyncio.sleep(max(0.0, start - loop.time()))
        await asyncio.gather(
            load.run(),
            sample_loop(self.proxy.pid, admin, self.ports(), load, a, self.mode, self.samples),
            self.flap(load.end),
        )
        # Let shadow work drain, then take the final counters and the idle fd count.
        drain_began = loop.time()
        async with ClientSession(timeout=ClientTimeout(total=5)) as session:
            while True:
                async with session.get(admin + "/metrics") as resp:
                    metrics = parse_metrics(await resp.text())
                if metrics["in_flight"] == 0 or loop.time() - drain_began > 15:
                    break
                await asyncio.sleep(0.2)
        self.drain_seconds = loop.time() - drain_began
        self.final_metrics = metrics
        self.idle_fds = fd_count(self.proxy.pid)
        self.idle_fd_kinds = fd_kinds(self.proxy.pid, self.ports())

    async def flap(self, end: float) -> None:
        """Kill the shadow for its `down` phases and bring it back on the same port afterwards."""
        loop = asyncio.get_running_loop()
        while loop.time() < end:
            mode = self.mode()
            alive = self.shadow is not None and self.shadow.poll() is None
            if mode == "down" and alive:
                assert self.shadow is not None
                self.shadow.kill()
                self.shadow.wait()
            elif mode != "down" and not alive:
                self.start_shadow()
                self.shadow_restarts += 1
            await asyncio.sleep(0.1)
        if self.shadow is None or self.shadow.poll() is not None:
            self.start_shadow()
            self.shadow_restarts += 1

    def stop(self) -> None:
        """Stop the proxy (SIGTERM, exit 0 expected within 20 s), then the backends. Idempotent."""
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGTERM)
            began = time.monotonic()
            try:
                self.proxy.wait(PROXY_STOP_TIMEOUT)
                self.proxy_stop_seconds = time.monotonic() - began
            except subprocess.TimeoutExpired:
                print(f"# proxy did not exit within {PROXY_STOP_TIMEOUT:g} s of SIGTERM: killed", flush=True)
                self.proxy.kill()
                self.proxy.wait(5)
                self.proxy_stop_seconds = math.inf
            self.proxy_exit = self.proxy.returncode
        elif self.proxy is not None:
            self.proxy_exit = self.proxy.returncode
        stop_process(self.shadow)
        stop_process(self.primary)

    def summary(self) -> dict[str, Any]:
        a = self.args
        load = self.load
        stats = load.stats if load else Stats()
        after = [s for s in self.samples if s["t"] >= a.warmup]
        rss = [s["rss_mb"] for s in self.samples]
        fm = self.final_metrics or {}
        outcomes = fm.get("outcomes", Counter())
        identity = (
            fm.get("mirrored") == sum(outcomes.get(k, 0) for k in ("match", "mismatch", "ignored", "shadow_error"))
            if fm
            else None
        )
        cycle = a.flap_period * len(FAULTS)  # one slow, one down, one garbage phase
        return {
            "python": platform.python_version(),
            "machine": machine(),
            "shadowdiff": code_version(),
            "args": {k: v for k, v in vars(a).items() if k not in ("role",)},
            "requests": stats.requests,
            "failures": stats.failures,
            "failure_examples": stats.failure_examples,
            "client_errors": dict(stats.errors),
            "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "missed_slots": stats.missed_slots,
            "achieved_rps": stats.requests / (load.last_done - load.start) if load and load.last_done > load.start else math.nan,
            "p50_ms": percentile(stats.latencies, 0.5) * 1000,
            "p99_ms": percentile(stats.latencies, 0.99) * 1000,
            "max_ms": max(stats.latencies, default=math.nan) * 1000,
            "rss_start_mb": after[0]["rss_mb"] if after else math.nan,
            "rss_first_mb": rss[0] if rss else math.nan,
            "rss_end_mb": rss[-1] if rss else math.nan,
            "rss_peak_mb": max(rss, default=math.nan),
            "tree_rss_end_mb": self.samples[-1]["tree_rss_mb"] if self.samples else math.nan,
            "rss_slope_mb_per_min": slope([(s["t"] / 60, s["rss_mb"]) for s in after]),
            "tree_rss_slope_mb_per_min": slope([(s["t"] / 60, s["tree_rss_mb"]) for s in after]),
            "fd_slope_per_min": slope([(s["t"] / 60, s["fds"]) for s in after]),
            "in_flight_slope_per_min": slope([(s["t"] / 60, s["in_flight"]) for s in after]),
            "fd_cycle_minima": cycle_minima(after, cycle),
            "fd_cycle_min_slope_per_min": slope([(t / 60, v) for t, v in cycle_minima(after, cycle)]),
            "idle_fd_kinds_after_drain": self.idle_fd_kinds,
            "fds_min_max": [min((s["fds"] for s in after), default=None), max((s["fds"] for s in after), default=None)],
            "idle_fds_after_drain": self.idle_fds,
            "threads_min_max": [min((s["threads"] for s in after), default=None),
                                max((s["threads"] for s in after), default=None)],
            "in_flight_max": max((s["in_flight_max"] for s in self.samples), default=math.nan),
            "in_flight_after_drain": fm.get("in_flight"),
            "drain_seconds": self.drain_seconds,
            "overload": fm.get("overload"),
            "skipped": dict(fm.get("skipped", {})),
            "shadow_errors": dict(fm.get("shadow_errors", {})),
            "primary_errors": dict(fm.get("primary_errors", {})),
            "outcomes": dict(outcomes),
            "mirrored": fm.get("mirrored"),
            "mirrored_equals_outcomes": identity,
            "log_lines_dropped": fm.get("log_dropped"),
            "shadow_restarts": self.shadow_restarts,
            "proxy_exit_code": self.proxy_exit,
            "proxy_stop_seconds": getattr(self, "proxy_stop_seconds", None),
            "samples": self.samples,
        }


def print_summary(s: dict[str, Any], warmup: float) -> None:
    def f(x: Any, fmt: str = ".1f") -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    print("\n== summary ==")
    print(f"requests {s['requests']} ({f(s['achieved_rps'])}/s achieved, {s['missed_slots']} slots missed), "
          f"failures {s['failures']}, client errors {s['client_errors'] or 0}, statuses {s['statuses']}")
    for example in s["failure_examples"][:5]:
        print(f"  failure: {example}")
    print(f"latency p50 {f(s['p50_ms'], '.2f')} ms, p99 {f(s['p99_ms'], '.2f')} ms, max {f(s['max_ms'])} ms")
    print(f"proxy RSS first {f(s['rss_first_mb'])} MB, after warm-up {f(s['rss_start_mb'])} MB, "
          f"end {f(s['rss_end_mb'])} MB, peak {f(s['rss_peak_mb'])} MB; with children at end "
          f"{f(s['tree_rss_end_mb'])} MB")
    print(f"slopes after {warmup:g} s warm-up: RSS {f(s['rss_slope_mb_per_min'], '+.3f')} MB/min "
          f"(with children {f(s['tree_rss_slope_mb_per_min'], '+.3f')}), fds {f(s['fd_slope_per_min'], '+.3f')}/min "
          f"(range {s['fds_min_max']}), in-flight {f(s['in_flight_slope_per_min'], '+.3f')}/min")
    minima = ", ".join(f"{v}@{t:.0f}s" for t, v in s["fd_cycle_minima"])
    print(f"fds, lowest per {'/'.join(FAULTS)} cycle: {minima or 'n/a'} (slope {f(s['fd_cycle_min_slope_per_min'], '+.3f')}/min); "
          f"{s['idle_fds_after_drain']} after drain {s['idle_fd_kinds_after_drain']}")
    print(f"threads {s['threads_min_max']}; shadow in-flight max {f(s['in_flight_max'], '.0f')}, "
          f"{f(s['in_flight_after_drain'], '.0f')} after {f(s['drain_seconds'])} s drain")
    print(f"mirror skipped {s['skipped']}; shadow errors {s['shadow_errors']}; primary errors {s['primary_errors']}")
    print(f"comparisons {s['outcomes']}; mirrored {f(s['mirrored'], '.0f')}, equals the outcomes' sum: "
          f"{s['mirrored_equals_outcomes']}; log lines dropped {f(s['log_lines_dropped'], '.0f')}; "
          f"shadow restarts {s['shadow_restarts']}")
    print(f"proxy exit code {s['proxy_exit_code']} after SIGTERM ({f(s['proxy_stop_seconds'], '.2f')} s)")
    slope_mb = s["rss_slope_mb_per_min"]
    if slope_mb is None or math.isnan(slope_mb):
        print("verdict: RSS unknown (too few samples after warm-up)")
    else:
        word = "RSS flat" if abs(slope_mb) < RSS_FLAT_MB_PER_MIN else "RSS growing" if slope_mb > 0 else "RSS shrinking"
        print(f"verdict: {word} "
              f"(|{slope_mb:+.3f}| {'<' if abs(slope_mb) < RSS_FLAT_MB_PER_MIN else '>='} "
              f"{RSS_FLAT_MB_PER_MIN} MB/min)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600, metavar="SECONDS", help="load duration (default 600)")
    p.add_argument("--interval", type=float, default=10, metavar="SECONDS", help="report interval (default 10)")
    p.add_argument("--rate", type=float, default=300, metavar="RPS", help="target request rate (default 300)")
    p.add_argument("--concurrency", type=int, default=20, metavar="N", help="requests in flight at most (default 20)")
    p.add_argument("--warmup", type=float, default=60, metavar="SECONDS", help="excluded from slopes (default 60)")
    p.add_argument("--json", metavar="PATH", help="also write the summary and samples as JSON")
    p.add_argument("--workdir", default="/tmp/soak", help="config and logs (default /tmp/soak)")
    p.add_argument("--flap-period", type=float, default=30, metavar="SECONDS", help="shadow fault period (default 30)")
    p.add_argument("--fault-seconds", type=float, default=10, metavar="SECONDS", help="fault part of each period (default 10)")
    # internal: the backends
    p.add_argument("--role", choices=("primary", "shadow"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--epoch", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--max-lifetime", type=float, default=3600, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role is None:
        if not (0 < args.duration <= 24 * 3600) or args.interval <= 0 or args.rate <= 0 or args.concurrency < 1:
            p.error("need 0 < --duration <= 86400, --interval > 0, --rate > 0, --concurrency >= 1")
        if not (0 < args.fault_seconds < args.flap_period):
            p.error("need 0 < --fault-seconds < --flap-period")
    return args


def main() -> int:
    args = parse_args()
    if args.role is not None:
        run_loop(serve_backend(args))
        return 0
    print(f"# soak.py: Python {platform.python_version()} ({platform.python_implementation()}), "
          f"{machine()}, {platform.system()} {platform.release()}", flush=True)
    print(f"# shadowdiff {code_version()}", flush=True)

    soak = Soak(args)
    interrupted = run_supervised(soak.run, soak.stop)
    summary = soak.summary()
    summary["interrupted"] = interrupted
    print_summary(summary, args.warmup)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print(f"# JSON written to {args.json}")
    ok = summary["failures"] == 0 and summary["proxy_exit_code"] == 0 and not interrupted
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

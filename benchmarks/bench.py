"""Side-by-side throughput benchmark: direct, shadowdiff (four set-ups) and nginx (three).

    make bench                                   # or: .venv/bin/python benchmarks/bench.py
    .venv/bin/python benchmarks/bench.py --quick # 3 s runs
    .venv/bin/python benchmarks/bench.py --rows 1,3,7 --duration 5 --connections 50

One run measures, one after the other, with the same load and the same backends:

  1 direct       the load generator talks to the primary backend itself (no proxy)
  2 sd-off       shadowdiff, mirroring off
  3 sd-diff      shadowdiff, mirroring and comparing; the shadow answers the same JSON
  4 sd-slow      shadowdiff, the shadow answers the same JSON after 200 ms
  5 sd-dead      shadowdiff, the shadow is a port nobody listens on (connection refused)
  6 nginx        nginx reverse proxy, no mirror
  7 nginx-mirror nginx with its mirror module, to the healthy shadow
  8 nginx-slow   nginx with its mirror module, to the 200 ms shadow
  9 sd-1w        as row 3, but the proxy may run on every CPU (the scaling baseline)
 10 sd-2w        as row 9 with `--workers 2`: two proxy processes on one port (SO_REUSEPORT)

Rows 6-8 need nginx (apt-get install nginx-light); without it they are skipped. Backends:
with nginx installed, a separate nginx instance serves the ~1 KB JSON file as the primary and
as the healthy shadow; otherwise an aiohttp process (`bench.py --role backend`) does. The 200 ms
shadow is always an aiohttp process (`bench.py --role slow-backend`) answering the same
body and headers. Load comes from wrk (`wrk -t1 -c50 -d10s --latency`) when it is
installed (apt-get install wrk), else from the built-in loader (asyncio, keep-alive, fixed
connections, fixed duration). Every row gets a fresh proxy process and a 1 s unmeasured
warm-up.

With more than one CPU, the load generator, the backends and this script run on the first
CPU and the proxy under test (one shadowdiff process, or nginx with worker_processes 1) on
the second (os.sched_setaffinity, as `taskset -c` would). Rows 9 and 10 leave the proxy
free to run on every CPU, so 1 -> 2 workers is measured with the same freedom; on a
2-core machine the second worker competes with the load generator and the backends for
the first core, so the scaling there is well below 2x.

Per row: req/s, p50 and p99 latency, proxy CPU seconds per 1,000 requests (utime+stime of the
proxy's process tree from /proc/PID/stat, before and after the measured run), peak RSS of the
proxy process (VmRSS of the shadowdiff process or of the nginx worker, sampled every 0.2 s),
its growth during the run, and errors (non-2xx answers, socket errors). Then ratios, a
comparison at a fixed 1,000 req/s (wrk2 if installed, else the built-in loader, paced), and
the issue-5 targets. Results go to benchmarks/results/bench-<UTC time>.json and .md, and
benchmarks/results/latest.md.

Everything runs on 127.0.0.1 with free ports, and is bounded in time. Every process the
script starts is stopped on the way out, Ctrl-C included; they also get SIGTERM if this
process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from common import (
    REPO,
    child_setup,
    children_of,
    code_version,
    cpu_model,
    cpu_seconds,
    descendants,
    free_port,
    rss_mb,
    run_loop,
    run_supervised,
    stop_process,
    wait_for_signal,
)
from loadgen import LoadResult, builtin_load, parse_wrk

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
PATH = "/data.json"
SLOW_DELAY = 0.2
WARMUP_SECONDS = 1
SAMPLE_INTERVAL = 0.2
PACED_RATE = 1000.0
PACED_CONNECTIONS = 16
BACKEND_LIFETIME = 3600.0  # backends stop on their own after this, whatever happens to the parent
NGINX_HINT = "apt-get install nginx-light"
WRK_HINT = "apt-get install wrk"

ROWS: list[tuple[int, str, str]] = [
    (1, "direct", "direct to the backend (no proxy)"),
    (2, "sd-off", "shadowdiff, mirroring off"),
    (3, "sd-diff", "shadowdiff, mirror + diff (healthy shadow)"),
    (4, "sd-slow", "shadowdiff, shadow takes 200 ms"),
    (5, "sd-dead", "shadowdiff, dead shadow (refusing port)"),
    (6, "nginx", "nginx reverse proxy, no mirror"),
    (7, "nginx-mirror", "nginx + mirror module (healthy shadow)"),
    (8, "nginx-slow", "nginx + mirror module, shadow takes 200 ms"),
    (9, "sd-1w", "shadowdiff, mirror + diff, 1 worker, unpinned"),
    (10, "sd-2w", "shadowdiff, mirror + diff, --workers 2, unpinned"),
]
ROW_BY_NUMBER = {n: (key, label) for n, key, label in ROWS}
ROW_BY_KEY = {key: n for n, key, _ in ROWS}
NGINX_ROWS = (6, 7, 8)
UNPINNED_ROWS = ("sd-1w", "sd-2w")

# issue 5, part 2: the targets on one proxy core, mirroring and diffing on, small JSON bodies
TARGET_RPS = 6700.0  # 1.5x the naive aiohttp + uvloop proxy (~4,500 req/s)
TARGET_VS_NGINX_MIRROR = 0.5
TARGET_FAULT_TPUT = 0.95
TARGET_FAULT_P99 = 1.2
TARGET_P50_OVERHEAD_MS = 1.0
TARGET_RSS_MB = 80.0
RSS_FLAT_MB = 2.0  # growth over one measured run below this counts as flat


# -- the body and the backends (`bench.py --role backend|slow-backend`) -------------------------


def json_body() -> bytes:
    """A deterministic catalogue-like JSON document of about 1 KB."""
    items = []
    for i in range(9):
        items.append({
            "id": 1000 + i,
            "sku": f"SKU-{i * 7919 % 100000:06d}",
            "name": f"Item {i} " + "abcdefghij"[i:] + "klmnopqrs"[: 9 - i],
            "price": round(9.99 + i * 3.25, 2),
            "stock": (i * 37) % 101,
            "tags": ["red", "sale", "eco"][: 1 + i % 3],
        })
    doc = {"meta": {"count": len(items), "currency": "EUR", "page": 1, "version": "2026-11"}, "items": items}
    return json.dumps(doc, separators=(",", ":")).encode()


async def serve_backend(ports: list[int], delay: float, headers: dict[str, str], lifetime: float) -> None:
    from aiohttp import web

    body = json_body()
    extra = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}

    async def data(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json", headers=extra)

    app = web.Application()
    app.router.add_get("/{tail:.*}", data)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024).start()
    await wait_for_signal(lifetime)
    await runner.cleanup()


# -- processes ----------------------------------------------------------------------------------


class Processes:
    """Every process this script starts, so that all of them are stopped on the way out."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], log_path: str, cpu: int | None = None, cpus: set[int] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start `cmd` on `cpus`, or on `cpu` alone, or where this script runs."""
        with open(log_path, "wb") as log:  # each run starts its logs afresh (wrk's output is parsed from it)
            # A new session: Ctrl-C in the terminal reaches this script only, which stops the children.
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=child_setup(cpus or ({cpu} if cpu is not None else None)), cwd=REPO,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
        code = stop_process(proc, timeout)
        if proc is not None and proc in self.procs:
            self.procs.remove(proc)
        return code

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, timeout=5.0)


def process_tree(pid: int) -> list[int]:
    return [pid] + descendants(pid)


def cpu_seconds_by_pid(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            pass
    return out


def rss_mb_or_none(pid: int) -> float | None:
    try:
        return rss_mb(pid)
    except (OSError, KeyError):
        return None


# -- a tiny HTTP client for readiness checks and metrics --------------------------------------


async def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    async def go() -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            raw = await reader.read(-1)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = dechunk(body)
        return status, headers, body

    return await asyncio.wait_for(go(), timeout)


def dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[eol + 2: eol + 2 + size]
        pos = eol + 2 + size + 2


async def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            status, _, _ = await http_get(port, path, timeout=1.0)
            if status == 200:
                return
            last = f"status {status}"
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready on port {port} after {limit:g} s ({last})")


async def run_tool(cmd: list[str], log_path: str, limit: float, procs: Processes) -> str:
    proc = procs.spawn(cmd, log_path)
    deadline = time.monotonic() + limit
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not finish within {limit:g} s")
            await asyncio.sleep(0.05)
    finally:
        procs.stop(proc, timeout=2)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


# -- the benchmark --------------------------------------------------------------------------------


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def package_version(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - not installed
        return "not installed"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx",
                                                      "/usr/local/nginx/sbin/nginx") if os.access(p, os.X_OK)), None)


@dataclass
class Row:
    number: int
    key: str
    label: str
    load: LoadResult | None = None
    cpu_per_1k: float | None = None
    rss_peak_mb: float | None = None
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    counters: dict[str, Any] | None = None
    note: str = ""
    skipped: str = ""
    failed: str = ""

    @property
    def ok(self) -> bool:
        return self.load is not None and not self.failed and not self.skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.number, "key": self.key, "label": self.label,
            "load": self.load.to_json() if self.load else None,
            "proxy_cpu_s_per_1k": self.cpu_per_1k, "rss_peak_mb": self.rss_peak_mb,
            "rss_start_mb": self.rss_start_mb, "rss_end_mb": self.rss_end_mb,
            "rss_growth_mb": (self.rss_end_mb - self.rss_start_mb)
            if self.rss_end_mb is not None and self.rss_start_mb is not None else None,
            "shadowdiff_counters": self.counters, "note": self.note,
            "skipped": self.skipped or None, "failed": self.failed or None,
        }


def parse_counters(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"mirrored": 0, "outcomes": {}, "skipped": {}, "shadow_errors": {}, "in_flight": 0}
    for line in text.splitlines():
        if not line.startswith("shadowdiff_") or line.startswith("#"):
            continue
        m = re.match(r"(\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        name, labels_text, value = m.group(1), m.group(2) or "", float(m.group(3))
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        if name == "shadowdiff_mirrored_total":
            out["mirrored"] += int(value)
        elif name == "shadowdiff_comparisons_total":
            out["outcomes"][labels["outcome"]] = out["outcomes"].get(labels["outcome"], 0) + int(value)
        elif name == "shadowdiff_mirror_skipped_total" and value:
            out["skipped"][labels["reason"]] = out["skipped"].get(labels["reason"], 0) + int(value)
        elif name == "shadowdiff_upstream_errors_total" and labels.get("upstream") == "shadow" and value:
            out["shadow_errors"][labels["kind"]] = out["shadow_errors"].get(labels["kind"], 0) + int(value)
        elif name == "shadowdiff_shadow_in_flight":
            out["in_flight"] = int(value)
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, procs: Processes) -> None:
        self.args = args
        self.procs = procs
        self.work = args.workdir
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o755)  # an nginx worker running as nobody reads its files
        self.wrk = None if args.no_wrk else shutil.which("wrk")
        self.wrk2 = None if args.no_wrk else shutil.which("wrk2")
        self.nginx = None if args.no_nginx else find_nginx()
        self.nginx_mirror = False
        self.nginx_built = ""
        if self.nginx:
            try:
                built = subprocess.run([self.nginx, "-V"], capture_output=True, text=True, timeout=10)
                self.nginx_built = built.stdout + built.stderr
            except (OSError, subprocess.SubprocessError):
                self.nginx = None
            self.nginx_mirror = "--without-http_mirror_module" not in self.nginx_built
        cpus = sorted(os.sched_getaffinity(0))
        self.all_cpus: set[int] | None = set(cpus)
        if len(cpus) > 1:
            self.load_cpu: int | None = cpus[0]
            self.proxy_cpu: int | None = cpus[1]
            os.sched_setaffinity(0, {cpus[0]})  # this script (and the built-in loader), wrk and the backends
            self.pinning = (f"load generator, backends and this script on CPU {cpus[0]}; the proxy under test "
                            f"on CPU {cpus[1]} (os.sched_setaffinity, as `taskset -c {cpus[1]}` would); "
                            f"one shadowdiff process, nginx with worker_processes 1")
        else:
            self.load_cpu = self.proxy_cpu = None
            self.pinning = "not pinned: only one CPU is available, the proxy shares it with the load generator"
        self.body = json_body()
        self.primary_port = self.shadow_port = self.slow_port = self.dead_port = 0
        self.backend_kind = ""
        self.rows: list[Row] = []
        self.paced: dict[str, Any] | None = None
        self.started = dt.datetime.now(dt.timezone.utc)

    # -- backends

    def nginx_common(self, name: str) -> str:
        temp = os.path.join(self.work, f"{name}-temp")
        os.makedirs(temp, exist_ok=True)
        os.chmod(temp, 0o755)
        lines = [f"client_body_temp_path {temp}/body;", f"proxy_temp_path {temp}/proxy;"]
        for module in ("fastcgi", "uwsgi", "scgi"):
            if f"--without-http_{module}_module" not in self.nginx_built:
                lines.append(f"{module}_temp_path {temp}/{module};")
        return "\n    ".join(lines)

    def nginx_conf(self, name: str, http_body: str) -> str:
        path = os.path.join(self.work, f"{name}.conf")
        with open(path, "w") as f:
            f.write(f"""# written by benchmarks/bench.py
worker_processes 1;
pid {self.work}/{name}.pid;
error_log {self.work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    {self.nginx_common(name)}
{http_body}
}}
""")
        os.chmod(path, 0o644)
        return path

    def start_nginx(self, name: str, conf: str, cpu: int | None) -> subprocess.Popen[bytes]:
        assert self.nginx
        return self.procs.spawn(
            [self.nginx, "-p", self.work, "-e", f"{self.work}/{name}-error.log", "-c", conf, "-g", "daemon off;"],
            os.path.join(self.work, f"{name}.out"), cpu=cpu,
        )

    async def start_backends(self) -> None:
        self.primary_port, self.shadow_port = free_port(), free_port()
        self.slow_port, self.dead_port = free_port(), free_port()
        headers: dict[str, str] = {}
        if self.nginx:
            www = os.path.join(self.work, "www")
            os.makedirs(www, exist_ok=True)
            os.chmod(www, 0o755)
            with open(os.path.join(www, PATH.lstrip("/")), "wb") as f:
                f.write(self.body)
            os.chmod(os.path.join(www, PATH.lstrip("/")), 0o644)
            conf = self.nginx_conf("nginx-backend", f"""    default_type application/json;
    server {{
        listen 127.0.0.1:{self.primary_port} backlog=1024;
        listen 127.0.0.1:{self.shadow_port} backlog=1024;
        root {www};
        location / {{ }}
    }}""")
            proc = self.start_nginx("nginx-backend", conf, self.load_cpu)
            await wait_ready(self.primary_port, PATH, proc, "the backend nginx")
            await wait_ready(self.shadow_port, PATH, proc, "the backend nginx")
            self.backend_kind = (f"nginx serving a static {len(self.body):,}-byte JSON file (worker_processes 1), "
                                 "the primary and the healthy shadow on two ports")
            # the 200 ms shadow answers what nginx answers: the same body and the headers compared
            _, got, _ = await http_get(self.primary_port, PATH)
            headers = {k: v for k, v in got.items() if k.lower() in ("server", "etag", "last-modified", "accept-ranges")}
        else:
            for port, what in ((self.primary_port, "primary"), (self.shadow_port, "shadow")):
                proc = self.procs.spawn(
                    [sys.executable, os.path.abspath(__file__), "--role", "backend", "--port", str(port)],
                    os.path.join(self.work, f"backend-{what}.log"), cpu=self.load_cpu)
                await wait_ready(port, PATH, proc, f"the {what} backend")
            self.backend_kind = (f"aiohttp + uvloop processes (bench.py --role backend) answering a "
                                 f"{len(self.body):,}-byte JSON body, one for the primary, one for the healthy shadow "
                                 f"(nginx not installed)")
        proc = self.procs.spawn(
            [sys.executable, os.path.abspath(__file__), "--role", "slow-backend", "--port", str(self.slow_port),
             "--headers", json.dumps(headers)],
            os.path.join(self.work, "backend-slow.log"), cpu=self.load_cpu)
        await wait_ready(self.slow_port, PATH, proc, "the 200 ms shadow", limit=30)
        s1, _, b1 = await http_get(self.primary_port, PATH)
        s2, _, b2 = await http_get(self.slow_port, PATH)
        if (s1, b1) != (200, self.body) or (s2, b2) != (200, self.body):
            raise RuntimeError("the backends do not answer the expected body")

    # -- proxies under test

    async def start_shadowdiff(self, row: Row) -> tuple[subprocess.Popen[bytes], int, int]:
        port, admin = free_port(), free_port()
        shadow = {"sd-off": self.shadow_port, "sd-diff": self.shadow_port, "sd-1w": self.shadow_port,
                  "sd-2w": self.shadow_port, "sd-slow": self.slow_port, "sd-dead": self.dead_port}[row.key]
        path = os.path.join(self.work, f"shadowdiff-{row.key}.yaml")
        with open(path, "w") as f:
            f.write(f"""# written by benchmarks/bench.py, row {row.number}: {row.label}
listen:
  address: "127.0.0.1:{port}"
  shutdown_timeout: 2
  workers: {2 if row.key == "sd-2w" else 1}
primary:
  url: "http://127.0.0.1:{self.primary_port}"
shadow:
  url: "http://127.0.0.1:{shadow}"
mirror:
  enabled: {"false" if row.key == "sd-off" else "true"}
  drain_timeout: 1
admin:
  listen: "127.0.0.1:{admin}"
logging:
  level: warning
""")
        log = os.path.join(self.work, f"shadowdiff-{row.key}.log")
        cpus = self.all_cpus if row.key in UNPINNED_ROWS else ({self.proxy_cpu} if self.proxy_cpu is not None else None)
        proc = self.procs.spawn([sys.executable, "-m", "shadowdiff", "serve", "--config", path], log, cpus=cpus)
        await wait_ready(admin, "/readyz", proc, "shadowdiff")
        await wait_ready(port, PATH, proc, "shadowdiff")
        return proc, port, admin

    async def start_nginx_proxy(self, row: Row) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        shadow = self.slow_port if row.key == "nginx-slow" else self.shadow_port
        mirror = "            mirror /mirror;\n" if row.key != "nginx" else ""
        conf = self.nginx_conf(f"nginx-{row.key}", f"""    upstream primary {{ server 127.0.0.1:{self.primary_port}; keepalive 64; keepalive_requests 1000000; }}
    upstream shadow {{ server 127.0.0.1:{shadow}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
{mirror}            proxy_pass http://primary;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /mirror {{
            internal;
            proxy_pass http://shadow$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""")
        proc = self.start_nginx(f"nginx-{row.key}", conf, self.proxy_cpu)
        await wait_ready(port, PATH, proc, f"nginx ({row.key})")
        return proc, port

    # -- load

    def tool_line(self) -> str:
        a = self.args
        if self.wrk:
            return f"wrk -t1 -c{a.connections} -d{wrk_seconds(a.duration)}s --latency (wrk {wrk_version(self.wrk)})"
        return (f"built-in loader (asyncio + uvloop in this script, {a.connections} keep-alive connections, "
                f"{a.duration:g} s; wrk not installed: {WRK_HINT})")

    async def load(self, port: int, seconds: float, tag: str) -> LoadResult:
        c = self.args.connections
        if self.wrk:
            cmd = [self.wrk, "-t1", f"-c{c}", f"-d{wrk_seconds(seconds)}s", "--latency", f"http://127.0.0.1:{port}{PATH}"]
            out = await run_tool(cmd, os.path.join(self.work, f"wrk-{tag}.txt"), wrk_seconds(seconds) + 20, self.procs)
            return parse_wrk(out, "wrk", seconds)
        return await builtin_load(port, seconds, c, path=PATH)

    async def measure(self, row: Row, port: int, proxy_pid: int | None, rss_pids: Callable[[], list[int]]) -> None:
        await self.load(port, WARMUP_SECONDS, f"{row.key}-warmup")
        tree = process_tree(proxy_pid) if proxy_pid else []
        before = cpu_seconds_by_pid(tree)
        samples: list[float] = []

        async def sample() -> None:
            while True:
                pids = rss_pids()
                values = [v for v in (rss_mb_or_none(p) for p in pids) if v is not None]
                if values:
                    samples.append(sum(values))
                await asyncio.sleep(SAMPLE_INTERVAL)

        sampler = asyncio.ensure_future(sample()) if proxy_pid else None
        try:
            row.load = await self.load(port, self.args.duration, row.key)
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
        if proxy_pid:
            after = cpu_seconds_by_pid(process_tree(proxy_pid))
            used = sum(after[p] - before.get(p, 0.0) for p in after)
            if row.load.requests:
                row.cpu_per_1k = used / row.load.requests * 1000
            if samples:
                row.rss_peak_mb, row.rss_start_mb, row.rss_end_mb = max(samples), samples[0], samples[-1]

    async def run_row(self, row: Row) -> None:
        if row.number == 1:
            await self.measure(row, self.primary_port, None, lambda: [])
            return
        if row.key.startswith("sd-"):
            proc, port, admin = await self.start_shadowdiff(row)
            # with --workers: the supervisor and its workers (not the comparison helpers below them)
            proxies = (lambda: [proc.pid, *children_of(proc.pid)]) if row.key == "sd-2w" else (lambda: [proc.pid])
            try:
                await self.measure(row, port, proc.pid, proxies)
                try:
                    _, _, text = await http_get(admin, "/metrics", timeout=5)
                    row.counters = parse_counters(text.decode())
                except (OSError, asyncio.TimeoutError, ValueError) as exc:
                    row.note = f"metrics not read: {type(exc).__name__}"
            finally:
                code = self.procs.stop(proc, timeout=15)
            log = os.path.join(self.work, f"shadowdiff-{row.key}.log")
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            mismatches = text.count('"event":"mismatch"') + text.count('"event": "mismatch"')
            tracebacks = text.count("Traceback")
            row.counters = (row.counters or {}) | {"mismatch_log_lines": mismatches, "tracebacks": tracebacks,
                                                   "exit_code": code}
            return
        proc, port = await self.start_nginx_proxy(row)
        try:
            await self.measure(row, port, proc.pid, lambda: children_of(proc.pid))
        finally:
            self.procs.stop(proc, timeout=10)

    async def run_paced(self) -> None:
        a = self.args
        seconds = 3.0 if a.quick else 5.0
        row = Row(3, "sd-diff", "paced")
        proc, port, _ = await self.start_shadowdiff(row)
        results: dict[str, LoadResult] = {}
        try:
            for name, target in (("direct", self.primary_port), ("shadowdiff", port)):
                if self.wrk2:
                    cmd = [self.wrk2, "-t1", f"-c{PACED_CONNECTIONS}", f"-d{wrk_seconds(seconds)}s",
                           f"-R{PACED_RATE:g}", "--latency", f"http://127.0.0.1:{target}{PATH}"]
                    await run_tool(cmd[:3] + ["-d1s"] + cmd[4:], os.path.join(self.work, f"wrk2-{name}-warmup.txt"),
                                   25, self.procs)
                    out = await run_tool(cmd, os.path.join(self.work, f"wrk2-{name}.txt"), seconds + 25, self.procs)
                    results[name] = parse_wrk(out, f"wrk2 -R{PACED_RATE:g}", seconds)
                else:
                    await builtin_load(target, WARMUP_SECONDS, PACED_CONNECTIONS, rate=PACED_RATE, path=PATH)
                    results[name] = await builtin_load(target, seconds, PACED_CONNECTIONS, rate=PACED_RATE, path=PATH)
        finally:
            self.procs.stop(proc, timeout=15)
        d, s = results["direct"], results["shadowdiff"]
        self.paced = {
            "rate": PACED_RATE, "seconds": seconds, "connections": PACED_CONNECTIONS,
            "tool": d.tool if self.wrk2 else "built-in loader, paced (wrk2 not installed)",
            "direct": d.to_json(), "shadowdiff": s.to_json(),
            "p50_overhead_ms": s.p50_ms - d.p50_ms, "p99_overhead_ms": s.p99_ms - d.p99_ms,
        }

    async def run(self) -> None:
        selected = self.args.rows
        print(f"# bench.py: {self.machine_line()}", flush=True)
        print(f"# load: {self.tool_line()}", flush=True)
        print(f"# pinning: {self.pinning}", flush=True)
        await self.start_backends()
        print(f"# backends: {self.backend_kind}; 200 ms shadow: aiohttp process (bench.py --role slow-backend); "
              f"ports: primary {self.primary_port}, shadow {self.shadow_port}, slow {self.slow_port}, "
              f"dead {self.dead_port}", flush=True)
        for number in selected:
            key, label = ROW_BY_NUMBER[number]
            row = Row(number, key, label)
            self.rows.append(row)
            if number in NGINX_ROWS and not self.nginx:
                row.skipped = f"skipped: nginx not installed ({NGINX_HINT})"
            elif number in (7, 8) and not self.nginx_mirror:
                row.skipped = "skipped: this nginx is built without the mirror module"
            if row.skipped:
                print(f"# row {number} {key}: {row.skipped}", flush=True)
                continue
            print(f"# row {number} {key}: {label} ...", end="", flush=True)
            try:
                await self.run_row(row)
            except (RuntimeError, OSError, ValueError, asyncio.TimeoutError) as exc:
                row.failed = f"{type(exc).__name__}: {exc}"
                print(f" FAILED: {row.failed}", flush=True)
                continue
            assert row.load is not None
            print(f" {row.load.rps:,.0f} req/s, p50 {row.load.p50_ms:.2f} ms, p99 {row.load.p99_ms:.2f} ms", flush=True)
        if not self.args.no_paced and 1 in selected and 3 in selected:
            print(f"# fixed rate: {PACED_RATE:g} req/s, direct then shadowdiff (mirror + diff) ...", end="", flush=True)
            try:
                await self.run_paced()
                assert self.paced
                print(f" p50 overhead {self.paced['p50_overhead_ms']:+.3f} ms", flush=True)
            except (RuntimeError, OSError, ValueError, asyncio.TimeoutError) as exc:
                self.paced = {"failed": f"{type(exc).__name__}: {exc}"}
                print(f" FAILED: {self.paced['failed']}", flush=True)

    # -- report

    def machine(self) -> dict[str, str]:
        return {
            "cpu": cpu_model(), "cores": str(os.cpu_count()), "kernel": f"{platform.system()} {platform.release()}",
            "python": f"{platform.python_version()} ({platform.python_implementation()})",
            "aiohttp": package_version("aiohttp"), "uvloop": package_version("uvloop"),
            "shadowdiff": code_version(package_version("shadowdiff")),
            "nginx": tool_version([self.nginx, "-v"]).replace("nginx version: nginx/", "") if self.nginx
            else f"not installed ({NGINX_HINT})",
            "wrk": wrk_version(self.wrk) if self.wrk else f"not installed ({WRK_HINT})",
            "wrk2": self.wrk2 or "not installed",
        }

    def machine_line(self) -> str:
        m = self.machine()
        return (f"{m['cpu']}, {m['cores']} cores, {m['kernel']}; Python {m['python']}, aiohttp {m['aiohttp']}, "
                f"uvloop {m['uvloop']}; nginx {m['nginx']}; wrk {m['wrk']}; shadowdiff {m['shadowdiff']}")

    def by_key(self, key: str) -> Row | None:
        for row in self.rows:
            if row.key == key and row.ok:
                return row
        return None

    def ratios(self) -> list[tuple[str, str, dict[str, float]]]:
        out = []

        def add(name: str, a: str, b: str) -> None:
            ra, rb = self.by_key(a), self.by_key(b)
            if not ra or not rb or not ra.load or not rb.load:
                return
            vals = {"throughput": ra.load.rps / rb.load.rps if rb.load.rps else math.nan,
                    "p50": ra.load.p50_ms / rb.load.p50_ms if rb.load.p50_ms else math.nan,
                    "p99": ra.load.p99_ms / rb.load.p99_ms if rb.load.p99_ms else math.nan}
            if ra.cpu_per_1k and rb.cpu_per_1k:
                vals["cpu_per_1k"] = ra.cpu_per_1k / rb.cpu_per_1k
            out.append((name, f"{a}/{b}", vals))

        add("shadowdiff (mirror + diff) / direct", "sd-diff", "direct")
        add("shadowdiff (mirror + diff) / nginx mirror", "sd-diff", "nginx-mirror")
        add("shadowdiff slow shadow / fast shadow", "sd-slow", "sd-diff")
        add("shadowdiff dead shadow / fast shadow", "sd-dead", "sd-diff")
        add("shadowdiff mirror + diff / mirroring off", "sd-diff", "sd-off")
        add("shadowdiff mirroring off / nginx no mirror", "sd-off", "nginx")
        add("nginx mirror slow shadow / fast shadow", "nginx-slow", "nginx-mirror")
        add("nginx mirror / nginx no mirror", "nginx-mirror", "nginx")
        add("shadowdiff --workers 2 / 1 worker (both unpinned)", "sd-2w", "sd-1w")
        return out

    def targets(self) -> list[tuple[str, str, str]]:
        """(target, measured, verdict) for the issue-5 targets this run can judge."""
        out: list[tuple[str, str, str]] = []
        diff, mirror = self.by_key("sd-diff"), self.by_key("nginx-mirror")

        def verdict(ok: bool, margin: str) -> str:
            return ("met" if ok else "MISSED") + f" ({margin})"

        if diff and diff.load:
            r = diff.load.rps
            out.append((f"mirror + diff >= {TARGET_RPS:,.0f} req/s", f"{r:,.0f} req/s",
                        verdict(r >= TARGET_RPS, f"{r / TARGET_RPS:.2f}x of the target")))
            if mirror and mirror.load:
                x = r / mirror.load.rps
                out.append((f"mirror + diff >= {TARGET_VS_NGINX_MIRROR:g}x nginx mirror", f"{x:.2f}x",
                            verdict(x >= TARGET_VS_NGINX_MIRROR, f"{x / TARGET_VS_NGINX_MIRROR:.2f}x of the target")))
            for key, what in (("sd-slow", "200 ms shadow"), ("sd-dead", "dead shadow")):
                f = self.by_key(key)
                if not f or not f.load:
                    continue
                t = f.load.rps / r
                p = f.load.p99_ms / diff.load.p99_ms
                out.append((f"{what}: throughput >= {TARGET_FAULT_TPUT:g}x fast shadow", f"{t:.2f}x",
                            verdict(t >= TARGET_FAULT_TPUT, f"{t - TARGET_FAULT_TPUT:+.2f}")))
                out.append((f"{what}: p99 <= {TARGET_FAULT_P99:g}x fast shadow", f"{p:.2f}x",
                            verdict(p <= TARGET_FAULT_P99, f"{TARGET_FAULT_P99 - p:+.2f} to spare")))
                if f.rss_start_mb is not None and f.rss_end_mb is not None:
                    g = f.rss_end_mb - f.rss_start_mb
                    out.append((f"{what}: RSS flat (grows < {RSS_FLAT_MB:g} MB over the run)",
                                f"{f.rss_start_mb:.1f} -> {f.rss_end_mb:.1f} MB",
                                verdict(g < RSS_FLAT_MB, f"{g:+.1f} MB")))
        if self.paced and "p50_overhead_ms" in self.paced:
            o = self.paced["p50_overhead_ms"]
            out.append((f"p50 overhead over direct at {PACED_RATE:,.0f} req/s < {TARGET_P50_OVERHEAD_MS:g} ms",
                        f"{o:+.3f} ms", verdict(o < TARGET_P50_OVERHEAD_MS, f"{TARGET_P50_OVERHEAD_MS - o:.3f} ms to spare"
                                                if o < TARGET_P50_OVERHEAD_MS else f"{o - TARGET_P50_OVERHEAD_MS:.3f} ms over")))
        # one proxy process (row 10's figure is the supervisor and both workers together)
        peaks = [r.rss_peak_mb for r in self.rows if r.ok and r.key.startswith("sd-") and r.key != "sd-2w" and r.rss_peak_mb]
        if peaks:
            p = max(peaks)
            out.append((f"shadowdiff RSS < {TARGET_RSS_MB:g} MB", f"peak {p:.1f} MB",
                        verdict(p < TARGET_RSS_MB, f"{TARGET_RSS_MB - p:.1f} MB to spare" if p < TARGET_RSS_MB
                                else f"{p - TARGET_RSS_MB:.1f} MB over")))
        return out

    def table(self) -> str:
        lines = ["| # | setup | req/s | p50 ms | p99 ms | proxy CPU s / 1k req | peak RSS MB | RSS growth MB | errors |",
                 "|--:|---|--:|--:|--:|--:|--:|--:|---|"]
        for r in self.rows:
            if not r.ok:
                lines.append(f"| {r.number} | {r.label} | {r.skipped or 'FAILED: ' + r.failed} | | | | | | |")
                continue
            assert r.load is not None
            L = r.load
            if L.errors:
                parts = ([f"non-2xx {L.non2xx}"] if L.non2xx else []) + [f"{k} {v}" for k, v in L.socket_errors.items()]
                errors = ", ".join(parts)
            else:
                errors = "0"
            cpu = f"{r.cpu_per_1k:.3f}" if r.cpu_per_1k is not None else "—"
            peak = f"{r.rss_peak_mb:.1f}" if r.rss_peak_mb is not None else "—"
            growth = (f"{r.rss_end_mb - r.rss_start_mb:+.1f}"
                      if r.rss_end_mb is not None and r.rss_start_mb is not None else "—")
            lines.append(f"| {r.number} | {r.label} | {L.rps:,.0f} | {L.p50_ms:.2f} | {L.p99_ms:.2f} | {cpu} | "
                         f"{peak} | {growth} | {errors} |")
        return "\n".join(lines)

    def report(self) -> str:
        out = [f"## bench.py, {self.started:%Y-%m-%d %H:%M} UTC", ""]
        out.append(f"Machine: {self.machine_line()}.  ")
        out.append(f"Load: {self.tool_line()}; {WARMUP_SECONDS} s unmeasured warm-up per row, a fresh proxy per row.  ")
        out.append(f"Pinning: {self.pinning}.  ")
        out.append(f"Backends: {self.backend_kind}; the 200 ms shadow is an aiohttp process answering the same "
                   f"body and headers; the dead shadow is a free port nobody listens on. shadowdiff runs "
                   f"`{os.path.basename(sys.executable)} -m shadowdiff serve` with defaults but logging.level warning.")
        out += ["", self.table(), ""]
        skipped = [r for r in self.rows if r.skipped]
        if skipped and all(r.number in NGINX_ROWS for r in skipped) and not self.nginx:
            out += [f"Rows 6-8 skipped: nginx not installed ({NGINX_HINT}).", ""]
        ratios = self.ratios()
        if ratios:
            out.append("Ratios (throughput: higher is better; latency and CPU: lower is better):")
            out.append("")
            for name, _, v in ratios:
                extra = f", CPU/1k {v['cpu_per_1k']:.2f}x" if "cpu_per_1k" in v else ""
                out.append(f"- {name}: throughput {v['throughput']:.2f}x, p50 {v['p50']:.2f}x, "
                           f"p99 {v['p99']:.2f}x{extra}")
            out.append("")
        if self.paced:
            p = self.paced
            if "failed" in p:
                out += [f"Fixed rate {PACED_RATE:,.0f} req/s: FAILED ({p['failed']})", ""]
            else:
                d, s = p["direct"], p["shadowdiff"]
                out.append(f"Fixed rate {p['rate']:,.0f} req/s ({p['tool']}, {p['connections']} connections, "
                           f"{p['seconds']:g} s each): direct p50 {d['p50_ms']:.3f} ms, p99 {d['p99_ms']:.3f} ms "
                           f"({d['rps']:,.0f} req/s, {d['errors']} errors); shadowdiff mirror + diff p50 "
                           f"{s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms ({s['rps']:,.0f} req/s, {s['errors']} "
                           f"errors); overhead p50 {p['p50_overhead_ms']:+.3f} ms, p99 {p['p99_overhead_ms']:+.3f} ms.")
                out.append("")
        targets = self.targets()
        if targets:
            out += ["Issue-5 targets (one proxy core, mirroring and diffing on):", "",
                    "| target | measured | verdict |", "|---|---|---|"]
            out += [f"| {t} | {m} | {v} |" for t, m, v in targets]
            out.append("")
        notes = []
        for r in self.rows:
            c = r.counters
            if r.ok and c and "outcomes" in c:
                outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(c["outcomes"].items()) if v) or "none"
                skipped_ = ", ".join(f"{k} {v:,}" for k, v in sorted(c["skipped"].items())) or "none"
                errs = ", ".join(f"{k} {v:,}" for k, v in sorted(c["shadow_errors"].items())) or "none"
                notes.append(f"- row {r.number} {r.key}: mirrored {c['mirrored']:,}; comparisons: {outcomes}; "
                             f"skipped: {skipped_}; shadow errors: {errs}; in flight at the end {c['in_flight']}; "
                             f"mismatch log lines {c.get('mismatch_log_lines', 0)}, tracebacks {c.get('tracebacks', 0)}, "
                             f"exit code {c.get('exit_code')}")
        if notes:
            out += ["shadowdiff's own counters (whole life of each proxy, warm-up included):", ""] + notes + [""]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "started_utc": self.started.isoformat(timespec="seconds"),
            "machine": self.machine(),
            "settings": {"duration_s": self.args.duration, "connections": self.args.connections,
                         "rows": self.args.rows, "quick": self.args.quick, "warmup_s": WARMUP_SECONDS,
                         "load": self.tool_line(), "pinning": self.pinning, "backends": self.backend_kind,
                         "body_bytes": len(self.body)},
            "rows": [r.to_json() for r in self.rows],
            "ratios": [{"name": n, "rows": k, **v} for n, k, v in self.ratios()],
            "paced": self.paced,
            "targets": [{"target": t, "measured": m, "verdict": v} for t, m, v in self.targets()],
        }


def wrk_version(path: str) -> str:
    text = tool_version([path, "--version"]).split(" Copyright")[0]  # "wrk debian/4.1.0-3+b2 [epoll]"
    return text[4:] if text.startswith("wrk ") else text


def wrk_seconds(seconds: float) -> int:
    return max(1, int(round(seconds)))


def parse_rows(text: str) -> list[int]:
    rows = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.isdigit() and int(part) in ROW_BY_NUMBER:
            rows.append(int(part))
        elif part in ROW_BY_KEY:
            rows.append(ROW_BY_KEY[part])
        else:
            raise argparse.ArgumentTypeError(f"unknown row {part!r}: use 1-{len(ROWS)} or {', '.join(ROW_BY_KEY)}")
    return sorted(set(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--duration", type=float, default=10.0, metavar="SECONDS", help="measured seconds per row (default 10)")
    p.add_argument("--connections", type=int, default=50, metavar="N", help="concurrent connections (default 50)")
    p.add_argument("--rows", type=parse_rows, default=[n for n, _, _ in ROWS],
                   help="rows to run, e.g. 1,3,7 or direct,sd-diff (default: all)")
    p.add_argument("--quick", action="store_true", help="3 s runs (and a 3 s fixed-rate comparison)")
    p.add_argument("--no-paced", action="store_true", help=f"skip the fixed {PACED_RATE:g} req/s comparison")
    p.add_argument("--no-nginx", action="store_true", help="act as if nginx were not installed (aiohttp backends)")
    p.add_argument("--no-wrk", action="store_true", help="act as if wrk and wrk2 were not installed (built-in loader)")
    p.add_argument("--workdir", default="/tmp/bench", help="configs, logs and nginx files (default /tmp/bench)")
    p.add_argument("--results", default=RESULTS_DIR, help="where to save JSON and markdown (default benchmarks/results)")
    # internal: the backends
    p.add_argument("--role", choices=("backend", "slow-backend"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, action="append", help=argparse.SUPPRESS)
    p.add_argument("--delay", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--headers", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--max-lifetime", type=float, default=BACKEND_LIFETIME, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    if args.role is None:
        if not (0 < args.duration <= 600) or not (1 <= args.connections <= 1000):
            p.error("need 0 < --duration <= 600 and 1 <= --connections <= 1000")
        if not args.rows:
            p.error("--rows selects nothing")
    elif not args.port:
        p.error("--role needs --port")
    return args


def main() -> int:
    args = parse_args()
    if args.role is not None:
        delay = args.delay if args.delay is not None else (SLOW_DELAY if args.role == "slow-backend" else 0.0)
        run_loop(serve_backend(args.port, delay, json.loads(args.headers), args.max_lifetime))
        return 0
    try:
        import importlib.util
        if importlib.util.find_spec("shadowdiff") is None or importlib.util.find_spec("aiohttp") is None:
            raise ImportError
    except ImportError:
        print(f"bench.py: shadowdiff is not importable by {sys.executable}; run it with the project's "
              "virtualenv (`make bench`, or .venv/bin/python benchmarks/bench.py)", file=sys.stderr)
        return 2

    procs = Processes()
    bench = Bench(args, procs)
    interrupted = run_supervised(bench.run, procs.stop_all)
    if interrupted:
        print("# interrupted: nothing saved", flush=True)
        return 130
    report = bench.report()
    print()
    print(report, flush=True)
    os.makedirs(args.results, exist_ok=True)
    stamp = f"{bench.started:%Y%m%d-%H%M%S}"
    base = os.path.join(args.results, f"bench-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(bench.to_json(), f, indent=1, default=str)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(report + "\n")
    with open(os.path.join(args.results, "latest.md"), "w") as f:
        f.write(report + "\n")
    print(f"# saved {base}.json and .md, and {os.path.join(args.results, 'latest.md')}", flush=True)
    failed = any(r.failed for r in bench.rows) or bool(bench.paced and "failed" in bench.paced)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

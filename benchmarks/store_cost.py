"""What the mismatch store costs the primary's clients, and how fast it grows: store on against off.

    .venv/bin/python benchmarks/store_cost.py              # ~5.5 min: 2 phases x 12 rounds x 4 configs x 3 s
    .venv/bin/python benchmarks/store_cost.py --quick      # a smoke run: 1 round of 2 s each, nothing saved
    .venv/bin/python benchmarks/store_cost.py --rounds 8 --seconds 5 --connections 50

On 127.0.0.1: three backend processes (aiohttp + uvloop, `--role backend`), one primary and two
shadows, answering small JSON documents like the demo's on three routes, /users/{id} (ids 1-200),
/products/{id} (1-60) and /orders/{id} (1-140): 400 paths. The `demo` shadow differs as the demo's
candidate does: every seventh user's `plan` is changed and every product has an added `currency`,
so 88 of the 400 paths (22 %, about 1 in 4.5) are mismatches, on two routes, two fields; the
orders match. The `all` shadow changes every answer (the plan of every user, `currency` on every
product, an added `status` on every order): 100 % mismatches, three routes, three fields.
Four `python -m shadowdiff serve --config FILE` proxies run at once, each with its own store file
in a temp dir and `logging: {level: error}` (no mismatch lines, whose writing would dwarf the
store's cost):

  demo-off   the demo shadow     store: {enabled: false}
  demo-on    the demo shadow     store: {url: sqlite:///TMP/demo-on.db} (the rest the defaults)
  all-off    the all shadow      store: {enabled: false}
  all-on     the all shadow      store: {url: sqlite:///TMP/all-on.db}

The proxies take the same load in turns, the order ABCD in odd rounds and DCBA in even ones, so
drift falls on all four alike. With more than one CPU the proxies (and so the store's writer
thread) share the last CPU, the load generator, the backends and this script the first (as
noise_cost.py does): the proxy's cost per request is what limits req/s. Two phases, each
`--rounds` rounds of the four turns:
- throughput: closed loop, `wrk -t1 -cN --latency -s paths.lua` (a Lua script that sends the 400
  paths in a fixed shuffled order) for `--seconds` a turn, so the proxy's CPU is saturated and
  req/s and CPU per request are what a config costs. Its p99 is queueing, printed, not judged;
- latency: the built-in loader of loadgen.py paced at a fixed rate, the same for all four
  (`--rate`, by default 30 % of all-off's median req/s from the first phase). The built-in loader
  sends one path, so nine run at once on nine paths of the three routes (two of them mismatches
  with the demo shadow: the same 22 %), each at a ninth of the rate, their schedules interleaved;
  a turn's p50 and p99 are the medians over the nine paths' own.
Without wrk (or with --no-wrk) the throughput phase uses the nine built-in loaders closed loop.

Read, per pair (demo, all): the medians of the per-round ratios on/off (the figures to read; the
spread is their range). The targets (issue 13): throughput >= 0.95x of the store off, and the
paced p99 within noise: inside off's own round-to-round range (its min and max over its median,
or +-5 %, whichever is wider); judged again over the rounds in which neither turn of the pair sent a
request late (the loader's CPU taken by something else: on a busy machine those turns are not paced
and their p99 is the machine's). CPU per request on/off is the steadier throughput figure when other
work takes the proxy's CPU in bursts: req/s then follows what the proxy was given. The store: its file (.db plus -wal) at the end, with the proxy
still running, over the mismatches the proxy counted (`shadowdiff_comparisons_total{outcome=
"mismatch"}`, warm-up included) x 1,000; then the .db alone after the proxy stopped (its last
flush and checkpoint done) and its rows per table. Samples are kept per (route, part, path)
signature (store.samples_per_field, 5, then one per 10 minutes), so after the warm-up they stop,
and what grows is statistics: one row per route and per (route, field, kind) per minute, whatever
the rate. Bytes per 1,000 mismatches therefore fall as the rate rises; they are a figure for this
rate and run length, not a constant. Most of the live figure is the -wal, SQLite's write-ahead log,
which is written over from its start after each checkpoint (about every 4 MB), not grown without end. `shadowdiff_store_dropped_total` and
`shadowdiff_store_errors_total` should be 0. Bounded: 2 x rounds x 4 x seconds of load plus 2 s
of warm-up per proxy. A full run saves its report as benchmarks/results/store_cost-<UTC time>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from common import (
    REPO,
    child_setup,
    code_version,
    cpu_model,
    cpu_seconds,
    free_port,
    run_loop,
    stop_process,
    wait_for_signal,
)
from loadgen import LoadResult, builtin_load, parse_wrk
from noise_cost import Load, wait_ready

BACKEND_LIFETIME = 1800.0  # a backend stops on its own after this, whatever happens to this script
WARMUP_SECONDS = 2.0  # per proxy: pools, caches, the noise verdicts, and the store's first samples
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PLANS = ("free", "pro", "team")
USERS, PRODUCTS, ORDERS = 200, 60, 140
SHADOWS = {"demo-off": "demo", "demo-on": "demo", "all-off": "all", "all-on": "all"}
PAIRS = {"demo": ("demo-off", "demo-on"), "all": ("all-off", "all-on")}
# The paced phase's paths, one built-in loader each: 2 of 9 mismatch with the demo shadow (22 %, as the mix).
PACED_PATHS = ("/users/7", "/users/1", "/users/2", "/users/3", "/users/4", "/products/1", "/orders/1", "/orders/2",
               "/orders/3")


def mix_paths() -> list[str]:
    """The 400 paths of the throughput phase, in a fixed shuffled order (the routes evenly spread in time)."""
    paths = [f"/users/{i}" for i in range(1, USERS + 1)] + [f"/products/{i}" for i in range(1, PRODUCTS + 1)]
    paths += [f"/orders/{i}" for i in range(1, ORDERS + 1)]
    random.Random(13).shuffle(paths)
    return paths


# -- the backend (`store_cost.py --role backend --answers primary|demo|all --port N`) ------------


async def serve_backend(port: int, answers: str, lifetime: float) -> None:
    """The primary's answers, or a shadow's: `demo` differs on every 7th user and every product, `all` everywhere."""
    from aiohttp import web

    every = answers == "all"

    async def user(request: web.Request) -> web.Response:
        uid = int(request.match_info["id"])
        plan = PLANS[uid % 3]
        if every or (answers == "demo" and uid % 7 == 0):
            plan = PLANS[(uid + 1) % 3]
        return web.json_response({"id": uid, "name": f"user-{uid}", "plan": plan, "active": True})

    async def product(request: web.Request) -> web.Response:
        pid = int(request.match_info["id"])
        body: dict[str, object] = {"id": pid, "name": f"product-{pid}", "price": round(4.5 + pid % 20, 2)}
        if answers != "primary":
            body["currency"] = "EUR"
        return web.json_response(body)

    async def order(request: web.Request) -> web.Response:
        oid = int(request.match_info["id"])
        body: dict[str, object] = {"id": oid, "items": [{"sku": f"sku-{oid % 10}", "qty": 1 + oid % 3}],
                                   "total": round(9.99 * (1 + oid % 3), 2)}
        if every:
            body["status"] = "open"
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/products/{id}", product)
    app.router.add_get("/orders/{id}", order)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024).start()
    await wait_for_signal(lifetime)
    await runner.cleanup()


# -- load ---------------------------------------------------------------------------------------


async def paths_load(port: int, seconds: float, connections: int, rate: float | None = None) -> LoadResult:
    """One built-in loader per PACED_PATHS entry at once, each with a share of the connections (and of
    the rate, started 1/rate apart so the schedules interleave); p50/p99 are the medians of theirs."""
    share = max(1, connections // len(PACED_PATHS))

    async def one(n: int, path: str) -> LoadResult:
        if rate:
            await asyncio.sleep(n / rate)
        return await builtin_load(port, seconds, share, rate / len(PACED_PATHS) if rate else None, path=path)

    rows = await asyncio.gather(*(one(n, path) for n, path in enumerate(PACED_PATHS)))
    out = LoadResult(tool=rows[0].tool + f", {len(PACED_PATHS)} paths", seconds=seconds)
    out.requests = sum(r.requests for r in rows)
    out.rps = sum(r.rps for r in rows)
    out.p50_ms = statistics.median(r.p50_ms for r in rows)
    out.p99_ms = statistics.median(r.p99_ms for r in rows)
    out.non2xx = sum(r.non2xx for r in rows)
    out.late = sum(r.late for r in rows)
    for r in rows:
        for kind, n in r.socket_errors.items():
            out.socket_errors[kind] = out.socket_errors.get(kind, 0) + n
    return out


class PathsLoad(Load):
    """noise_cost's Load over the 400 paths: wrk with a Lua script, else the nine built-in loaders."""

    def __init__(self, connections: int, cpu: int, use_wrk: bool, script: str) -> None:
        super().__init__(connections, cpu, use_wrk)
        self.script = script

    def describe(self) -> str:
        if self.wrk:
            return f"wrk -t1 -c{self.connections} --latency -s paths.lua ({len(mix_paths())} paths in turn)"
        return (f"{len(PACED_PATHS)} built-in loaders (loadgen.py), one per path, {self.connections} connections "
                "in all (wrk not installed, or --no-wrk)")

    def run(self, port: int, seconds: float) -> LoadResult:
        if self.wrk:
            cmd = ["taskset", "-c", str(self.cpu), self.wrk, "-t1", f"-c{self.connections}", f"-d{seconds:g}s",
                   "--latency", "-s", self.script, f"http://127.0.0.1:{port}/"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
            return parse_wrk(out, "wrk", seconds)
        return run_loop(paths_load(port, seconds, self.connections))


def write_script(path: str) -> None:
    """wrk's Lua script: each request the next of mix_paths(), round and round."""
    listed = ",\n".join(f'  "{p}"' for p in mix_paths())
    with open(path, "w") as f:
        f.write(f"local paths = {{\n{listed}\n}}\nlocal i = 0\n"
                "request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")


def order(n: int) -> list[str]:
    """Round n's turns: ABCD, then DCBA, alternating."""
    names = list(SHADOWS)
    return names if n % 2 == 0 else names[::-1]


# -- the store's side ----------------------------------------------------------------------------


def counters(admin_port: int) -> dict[str, float]:
    """Outcomes, A/A comparisons and the store's drops and errors from the proxy's /metrics, summed by label.

    (noise_cost.counters() reads labels up to the first `}`, which a route template such as /users/{id}
    has: prometheus_client's own parser reads them here.)"""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    keys = {
        "shadowdiff_comparisons_total": lambda labels: f"outcome {labels['outcome']}",
        "shadowdiff_aa_comparisons_total": lambda labels: f"aa {labels['source']} {labels['outcome']}",
        "shadowdiff_store_dropped_total": lambda labels: f"dropped {labels['what']}",
        "shadowdiff_store_errors_total": lambda labels: f"errors {labels['op']}",
    }
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in keys:
                key = keys[sample.name](sample.labels)
                out[key] = out.get(key, 0.0) + sample.value
    return out


@dataclass
class StoreFile:
    """One store-on proxy's file: its size empty, at the end (running), after stop, and its tables then."""

    path: str
    empty: int = 0
    live: int = 0
    closed: int = 0
    tables: dict[str, tuple[int, int | None]] = field(default_factory=dict)


def file_bytes(db: str) -> int:
    """The store's .db plus its -wal (the -shm is an index of the WAL, no data)."""
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


def table_rows(db: str) -> dict[str, tuple[int, int | None]]:
    """Rows per table of a closed store, and the bytes of each (SQLite's dbstat, when compiled in)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'")]
        try:
            sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        except sqlite3.Error:
            sizes = {}
        return {name: (conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0], sizes.get(name)) for name in names}
    finally:
        conn.close()


# -- the run ------------------------------------------------------------------------------------


class Output:
    """What is printed, kept for the saved report (the rounds as a fenced block)."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.rounds: list[str] = []
        self.body: list[str] = []

    def say(self, line: str = "", part: str = "body") -> None:
        print(line, flush=True)
        getattr(self, part).append(line)

    def markdown(self, started: dt.datetime) -> str:
        title = f"## store_cost.py, {started:%Y-%m-%d %H:%M} UTC"
        head = [line.removeprefix("# ") + "  " for line in self.head]  # plain lines, not headings
        return "\n".join([title, "", *head, "", "```", *self.rounds, "```", *self.body]) + "\n"


def run(args: argparse.Namespace, out: Output) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    load_cpu, proxy_cpu = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {load_cpu})  # this script, and the built-in loaders
    procs: list[subprocess.Popen[bytes]] = []
    workdir = tempfile.mkdtemp(prefix="shadowdiff-store-cost-")

    def start(argv: list[str], cpu: int, log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(workdir, log_name), "wb")
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_setup({cpu}))
        log.close()
        procs.append(proc)
        return proc

    script = os.path.join(workdir, "paths.lua")
    write_script(script)
    load = PathsLoad(args.connections, load_cpu, not args.no_wrk, script)
    results: dict[str, list[LoadResult]] = {name: [] for name in SHADOWS}
    cpu_us: dict[str, list[float]] = {name: [] for name in SHADOWS}
    idle_ms: dict[str, float] = {name: 0.0 for name in SHADOWS}  # CPU while the others took the load
    paced: dict[str, list[LoadResult]] = {name: [] for name in SHADOWS}
    final: dict[str, dict[str, float]] = {}
    store = {name: StoreFile(os.path.join(workdir, f"{name}.db")) for name in SHADOWS if name.endswith("-on")}
    try:
        ports = {role: free_port() for role in ("primary", "demo", "all")}
        for role, port in ports.items():
            proc = start([sys.executable, os.path.abspath(__file__), "--role", "backend", "--answers", role,
                          "--port", str(port)], load_cpu, f"backend-{role}.log")
            wait_ready(port, proc, f"the {role} backend", path="/users/1")
        proxies: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}
        for name, shadow in SHADOWS.items():
            port, admin = free_port(), free_port()
            section = f"{{url: 'sqlite:///{store[name].path}'}}" if name in store else "{enabled: false}"
            config = os.path.join(workdir, f"{name}.yaml")
            with open(config, "w") as f:
                f.write(f"primary: {{url: 'http://127.0.0.1:{ports['primary']}'}}\n"
                        f"shadow: {{url: 'http://127.0.0.1:{ports[shadow]}'}}\n"
                        f"listen: {{address: '127.0.0.1:{port}'}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n"
                        "logging: {level: error}\nroutes: ['/users/{id}', '/products/{id}', '/orders/{id}']\n"
                        f"store: {section}\n")
            proc = start([sys.executable, "-m", "shadowdiff", "serve", "--config", config], proxy_cpu, f"{name}.log")
            proxies[name] = (proc, port, admin)
        for name, (proc, port, _) in proxies.items():
            wait_ready(port, proc, f"the {name} proxy (log: {workdir}/{name}.log)", path="/users/1")
        for info in store.values():
            info.empty = file_bytes(info.path)
        out.say(f"# store_cost.py: shadowdiff {code_version()}; {args.rounds} round(s) x {len(SHADOWS)} configs x "
                f"{args.seconds:g} s, ABCD/DCBA; load: {load.describe()}; proxies on CPU {proxy_cpu}, load and "
                f"backends on CPU {load_cpu}; logging.level error", "head")
        out.say(f"# {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python "
                f"{platform.python_version()}; sqlite {sqlite3.sqlite_version}", "head")
        for _, port, _ in proxies.values():
            load.run(port, WARMUP_SECONDS)

        def turn(name: str, measure: Callable[[], LoadResult], cpu: list[float] | None) -> LoadResult:
            """One proxy's turn; its CPU per request into `cpu` (closed loop only), the others' CPU into idle_ms."""
            before = {other: cpu_seconds(p.pid) for other, (p, _, _) in proxies.items()}
            res = measure()
            for other, (p, _, _) in proxies.items():
                if p.poll() is not None:
                    raise RuntimeError(f"the {other} proxy exited ({p.returncode}); log: {workdir}/{other}.log")
                used = cpu_seconds(p.pid) - before[other]
                if other != name:
                    idle_ms[other] += used * 1000
                elif cpu is not None:
                    cpu.append(used / max(res.requests, 1) * 1e6)
            return res

        for n in range(args.rounds):
            cells = []
            for name in order(n):
                port = proxies[name][1]
                res = turn(name, lambda port=port: load.run(port, args.seconds), cpu_us[name])
                results[name].append(res)
                errors = f" ({res.errors} errors)" if res.errors else ""
                cells.append(f"{name} {res.rps:>6,.0f} req/s p99 {res.p99_ms:5.2f} ms{errors}")
            out.say(f"round {n + 1:>2}: " + " | ".join(cells), "rounds")
        rate = args.rate or round(0.3 * statistics.median(r.rps for r in results["all-off"]), -1)
        out.say(f"# latency: {len(PACED_PATHS)} built-in loaders, one per path, paced at {rate:g} req/s in all, "
                f"{max(1, args.connections // len(PACED_PATHS))} connections each", "rounds")
        for n in range(args.rounds):
            cells = []
            for name in order(n):
                port = proxies[name][1]
                res = turn(name, lambda port=port: run_loop(paths_load(port, args.seconds, args.connections, rate)), None)
                paced[name].append(res)
                errors = f" ({res.errors} errors, {res.late} late)" if res.errors or res.late else ""
                cells.append(f"{name} p50 {res.p50_ms:5.2f} p99 {res.p99_ms:5.2f} ms{errors}")
            out.say(f"round {n + 1:>2}: " + " | ".join(cells), "rounds")
        time.sleep(2.5)  # a flush interval: the last statistics written; and the admin's metrics render expired
        for name, (_, _, admin) in proxies.items():
            final[name] = counters(admin)
        for name, info in store.items():
            info.live = file_bytes(info.path)
            stop_process(proxies[name][0])  # its last flush, and SQLite's checkpoint into the .db
    finally:
        for proc in reversed(procs):
            stop_process(proc)
    for info in store.values():
        info.closed = file_bytes(info.path)
        info.tables = table_rows(info.path)
    report(out, results, cpu_us, idle_ms, paced, final, store, rate)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(r.errors for rows in (*results.values(), *paced.values()) for r in rows) else 0


def p99_judgement(on: list[LoadResult], off: list[LoadResult]) -> tuple[float, list[float], float, float]:
    """The median of the per-round p99 ratios on/off, those ratios, and off's own spread (min and max
    over its median, at least +-5 %) that the median is judged against."""
    ratios = [a.p99_ms / b.p99_ms for a, b in zip(on, off)]
    off_p99 = [r.p99_ms for r in off]
    middle = statistics.median(off_p99)
    return statistics.median(ratios), ratios, min(min(off_p99) / middle, 0.95), max(max(off_p99) / middle, 1.05)


def report(out: Output, results: dict[str, list[LoadResult]], cpu_us: dict[str, list[float]],
           idle_ms: dict[str, float], paced: dict[str, list[LoadResult]], final: dict[str, dict[str, float]],
           store: dict[str, StoreFile], rate: float) -> None:
    """Medians per config, the per-round ratios on/off per pair, the targets, the store's growth and counters."""
    say = out.say
    rounds = len(results["demo-off"])

    def ratios(on: list[float], off: list[float]) -> list[float]:
        return [a / b for a, b in zip(on, off)]

    say()
    say("| config | req/s | CPU us/req | closed-loop p99 ms | paced p50 ms | paced p99 ms | CPU while idle, ms/round |")
    say("|---|--:|--:|--:|--:|--:|--:|")
    for name, rows in results.items():
        say(f"| {name} | {statistics.median(r.rps for r in rows):,.0f} | {statistics.median(cpu_us[name]):.1f} | "
            f"{statistics.median(r.p99_ms for r in rows):.1f} | {statistics.median(r.p50_ms for r in paced[name]):.2f} | "
            f"{statistics.median(r.p99_ms for r in paced[name]):.2f} | {idle_ms[name] / rounds / 2:.0f} |")
    say()
    say("Store on / off, medians of the per-round ratios (range over the rounds):")
    say()
    say("| pair | req/s on/off | range | CPU us/req on/off | range | paced p50 on/off | paced p99 on/off | range | "
        "off's own p99 spread | p99 within noise |")
    say("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    verdicts, clean_lines = [], []
    for pair, (off, on) in PAIRS.items():
        tput = ratios([r.rps for r in results[on]], [r.rps for r in results[off]])
        cpu = ratios(cpu_us[on], cpu_us[off])
        p50 = ratios([r.p50_ms for r in paced[on]], [r.p50_ms for r in paced[off]])
        q, p99, lo, hi = p99_judgement(paced[on], paced[off])
        t = statistics.median(tput)
        inside = lo <= q <= hi
        say(f"| {pair} | {t:.3f}x | {min(tput):.2f}-{max(tput):.2f} | {statistics.median(cpu):.3f}x | "
            f"{min(cpu):.2f}-{max(cpu):.2f} | {statistics.median(p50):.3f}x | {q:.3f}x | {min(p99):.2f}-{max(p99):.2f} | "
            f"{lo:.2f}-{hi:.2f}x | {'yes' if inside else 'NO'} |")
        verdicts.append(f"target: {pair} throughput >= 0.95x of the store off: {t:.3f}x, "
                        f"{'met' if t >= 0.95 else 'MISSED'} (CPU per request {statistics.median(cpu):.3f}x)")
        verdicts.append(f"target: {pair} paced p99 within noise ({lo:.2f}-{hi:.2f}x): {q:.3f}x, "
                        f"{'met' if inside else 'MISSED'}")
        clean = [n for n in range(rounds) if not paced[on][n].late and not paced[off][n].late]
        if len(clean) >= 2:
            cq, cp99, clo, chi = p99_judgement([paced[on][n] for n in clean], [paced[off][n] for n in clean])
            clean_lines.append(f"  {pair}: {len(clean)} of {rounds} rounds, p99 on/off {cq:.3f}x "
                               f"({min(cp99):.2f}-{max(cp99):.2f}), off's own spread {clo:.2f}-{chi:.2f}x: "
                               f"{'within' if clo <= cq <= chi else 'OUTSIDE'}")
        else:
            clean_lines.append(f"  {pair}: {len(clean)} of {rounds} rounds, too few to judge")
    say()
    say(f"(paced at {rate:g} req/s; off's own p99 spread: its min and max over the rounds against its median, "
        "or +-5 %, whichever is wider)")
    say("The same over the rounds in which neither turn of the pair sent a request late (> 5 ms after its slot: "
        "the loader's CPU was taken, so the turn was not paced):")
    for line in clean_lines:
        say(line)
    say()
    for line in verdicts:
        say(line)
    say()
    say("The store, in bytes (mismatches from /metrics, warm-up included; per 1,000: over those mismatches):")
    say()
    say("| config | mismatches | compared | .db + -wal empty | .db + -wal at the end | per 1,000 mismatches | "
        "growth per 1,000 | .db after stop | per 1,000 mismatches | dropped | errors |")
    say("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, info in store.items():
        values = final[name]
        mismatches = values.get("outcome mismatch", 0.0)
        compared = sum(v for k, v in values.items() if k.startswith("outcome "))
        dropped = sum(v for k, v in values.items() if k.startswith("dropped "))
        errors = sum(v for k, v in values.items() if k.startswith("errors "))
        per = 1000 / mismatches if mismatches else float("nan")
        say(f"| {name} | {mismatches:,.0f} | {compared:,.0f} | {info.empty:,} | {info.live:,} | {info.live * per:,.0f} | "
            f"{(info.live - info.empty) * per:,.0f} | {info.closed:,} | {info.closed * per:,.0f} | {dropped:.0f} | "
            f"{errors:.0f} |")
    say()
    say("Rows per table after stop (bytes from SQLite's dbstat, when it is compiled in):")
    for name, info in store.items():
        shown = ", ".join(f"{t} {rows:,}" + (f" ({size:,} B)" if size else "") for t, (rows, size) in info.tables.items())
        say(f"  {name}: {shown}")
    say("Samples stop after store.samples_per_field (5) per (route, part, path), then one per 10 minutes; what grows "
        "with time is statistics (a row per route, and per route, field and kind, per minute), not with mismatches: "
        "bytes per 1,000 mismatches hold for this rate and run length only. The live figure is mostly the -wal, "
        "which SQLite writes over from its start after each checkpoint (about every 4 MB).")
    say()
    say("counters at the end (warm-up included):")
    for name, values in final.items():
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(values.items()) if v)
        say(f"  {name}: {shown or 'none'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=12, help="rounds; each runs all four configs once (default 12)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of load per config per round (default 3)")
    p.add_argument("--connections", type=int, default=50, help="concurrent client connections (default 50)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="the latency phase's paced rate, req/s (default: 30 %% of all-off's closed-loop median)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 2 s per config, nothing saved")
    p.add_argument("--no-wrk", action="store_true", help="use the built-in loaders even if wrk is installed")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="where the report is saved (default benchmarks/results; --quick saves only when given)")
    # internal: the backends
    p.add_argument("--role", choices=("backend",), help=argparse.SUPPRESS)
    p.add_argument("--answers", choices=("primary", "demo", "all"), default="primary", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if args.results is None and not args.quick:
        args.results = RESULTS_DIR
    if args.role is None and not (1 <= args.rounds <= 100 and 0.5 <= args.seconds <= 120
                                  and len(PACED_PATHS) <= args.connections <= 1000 and 0 <= args.rate <= 100_000):
        p.error(f"need 1 <= --rounds <= 100, 0.5 <= --seconds <= 120, {len(PACED_PATHS)} <= --connections <= 1000, "
                "0 <= --rate <= 100000")
    if args.role is not None and args.port is None:
        p.error("--role needs --port")
    return args


def main() -> int:
    args = parse_args()
    if args.role == "backend":
        run_loop(serve_backend(args.port, args.answers, BACKEND_LIFETIME))
        return 0
    started = dt.datetime.now(dt.UTC)
    out = Output()
    try:
        code = run(args, out)
    except KeyboardInterrupt:
        print("\n# interrupted: stopped every process started, nothing saved", file=sys.stderr)
        return 130
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        path = os.path.join(args.results, f"store_cost-{started:%Y%m%d-%H%M%S}.md")
        with open(path, "w") as f:
            f.write(out.markdown(started))
        print(f"# saved {path}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

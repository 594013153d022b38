"""What noise detection costs the primary's clients: four A/A set-ups, interleaved.

    .venv/bin/python benchmarks/noise_cost.py                  # ~3 min: 2 phases x 4 rounds x 4 configs x 5 s
    .venv/bin/python benchmarks/noise_cost.py --quick          # a smoke run: 1 round of 2 s each
    .venv/bin/python benchmarks/noise_cost.py --rounds 8 --seconds 3 --connections 50

On 127.0.0.1: three backend processes (primary, shadow, secondary: aiohttp + uvloop, each
answering a ~1 KB catalogue JSON with three volatile fields, `served_at` (an ISO time to the
microsecond), `query_ms` (a timing, as Datasette's) and `n` (a counter), so
A/A comparisons really differ and noise verdicts have work to do), and four
`python -m shadowdiff serve --config FILE` proxies running at once, one per config:

  off        noise: {repeats: false}                     no A/A source at all (the baseline)
  repeats    no noise key (the defaults: repeats on)      the same request seen again, no extra call
  reask      noise: {reask_rate: 0.1, repeats: false}   10 % of mirrored GETs asked of the primary again
  secondary  noise: {secondary: URL, repeats: false}    every mirrored request also sent to a 2nd primary

Every proxy mirrors to the same shadow and compares. The proxies take the same load in turns
(wrk -t1 -cN --latency for --seconds a turn, else the built-in loader of loadgen.py), the order
ABCD in odd rounds and DCBA in even ones, so drift falls on all four alike. With more than one
CPU the proxies share the last CPU and the load generator, the backends and this script the
first (as versus.py does): the proxy's cost per request is what limits req/s.

The logging level is `error` by default, so no config writes mismatch lines: without noise
detection every comparison here is a mismatch (the volatile fields), with it most become `noise`
and are not logged, and the log writer's cost would flatter the noise configs. `--log-mismatches`
uses `warning` (the shipped default) instead, to see that end-to-end effect.

Two phases, each `--rounds` rounds of the four turns:
- throughput: closed loop (each connection sends its next request when the last is answered),
  so the proxy's CPU is saturated and req/s and CPU per request are what a config costs. The
  p99 of a saturated closed loop is queueing (about connections / req/s), so it is printed but
  not judged;
- latency: the built-in loader paced at a fixed rate, the same for all four (`--rate`, by
  default 30 % of `off`'s median req/s from the first phase), as a client sees the proxy in
  normal operation: p50 and p99 are what noise detection adds to a request.

Read: per config the medians over the rounds, then the medians of the per-round ratios
against `off` (the figures to read; the spread is their range). The targets (issue 12): the
paced p99 unchanged within noise (here: inside off's own round-to-round range, +-5 %),
throughput with a secondary >= 0.75x of off, with the defaults (repeats) >= 0.95x. The
proxies' counters at the end (A/A comparisons by source, outcomes) show each config did the
A/A work it claims. Bounded: 2 x rounds x 4 x seconds of load plus 2 s of warm-up per proxy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import REPO, child_setup, code_version, cpu_seconds, free_port, run_loop, stop_process, wait_for_signal
from loadgen import LoadResult, builtin_load, parse_wrk

PATH = "/data.json"
BACKEND_LIFETIME = 1800.0  # a backend stops on its own after this, whatever happens to this script
WARMUP_SECONDS = 2.0  # per proxy: enough for the noise verdicts (20 A/A observations) to settle
CONFIGS: dict[str, str] = {
    "off": "noise: {repeats: false}\n",
    "repeats": "",
    "reask": "noise: {reask_rate: 0.1, repeats: false}\n",
    "secondary": "noise: {secondary: 'http://127.0.0.1:SECONDARY_PORT', repeats: false}\n",
}


# -- the backend (`noise_cost.py --role backend --port N`) -------------------------------------


def _body_parts() -> tuple[bytes, bytes]:
    """bench.py's ~1 KB catalogue document, split where the volatile fields go (in front of meta)."""
    from bench import json_body  # this directory is on sys.path (the script's own)

    body, start = json_body(), b'{"meta":{'
    assert body.startswith(start)
    return start + b'"served_at":', body[len(start):]


async def serve_backend(port: int, lifetime: float) -> None:
    """Answer every GET with the catalogue and fresh `meta.served_at`, `meta.query_ms` and `meta.n`."""
    from aiohttp import web

    head, tail = _body_parts()
    count = 0

    async def data(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        timing = f"{(time.perf_counter_ns() % 10_000) / 1000:.3f}"  # like Datasette's query_ms
        body = b"".join((head, b'"', stamp.encode(), b'","query_ms":', timing.encode(), b',"n":', str(count).encode(),
                         b",", tail))
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", data)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024).start()
    await wait_for_signal(lifetime)
    await runner.cleanup()


# -- helpers ------------------------------------------------------------------------------------


def wait_ready(port: int, proc: subprocess.Popen[bytes], what: str, path: str = PATH, limit: float = 30.0) -> None:
    """Poll until `port` answers `path` with 200, or fail if `proc` exits or `limit` s pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on port {port} within {limit:g} s")


def counters(admin_port: int) -> dict[str, float]:
    """The proxy's A/A and outcome counters from its admin /metrics, summed by their labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    wanted = r"(shadowdiff_aa_comparisons_total|shadowdiff_aa_skipped_total|shadowdiff_comparisons_total)"
    for m in re.finditer(rf"^{wanted}\{{([^}}]*)\}} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if m.group(1) == "shadowdiff_comparisons_total":
            key = f"outcome {labels.get('outcome')}"
        elif m.group(1) == "shadowdiff_aa_comparisons_total":
            key = f"aa {labels.get('source')} {labels.get('outcome')}"
        else:
            key = f"aa skipped {labels.get('source')} {labels.get('reason')}"
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


class Load:
    """One turn of load on a port: wrk when installed (pinned to the load CPU), else loadgen's built-in loader."""

    def __init__(self, connections: int, cpu: int, use_wrk: bool) -> None:
        self.connections = connections
        self.wrk = shutil.which("wrk") if use_wrk else None
        self.cpu = cpu

    def describe(self) -> str:
        if self.wrk:
            return f"wrk -t1 -c{self.connections} --latency"
        return f"built-in loader (loadgen.py), {self.connections} connections (wrk not installed)"

    def run(self, port: int, seconds: float) -> LoadResult:
        if self.wrk:
            cmd = ["taskset", "-c", str(self.cpu), self.wrk, "-t1", f"-c{self.connections}", f"-d{seconds:g}s",
                   "--latency", f"http://127.0.0.1:{port}{PATH}"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
            return parse_wrk(out, "wrk", seconds)
        return run_loop(builtin_load(port, seconds, self.connections, path=PATH))


def order(n: int) -> list[str]:
    """Round n's turns: ABCD, then DCBA, alternating."""
    names = list(CONFIGS)
    return names if n % 2 == 0 else names[::-1]


# -- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    load_cpu, proxy_cpu = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {load_cpu})  # this script, and the built-in loader if used
    procs: list[subprocess.Popen[bytes]] = []
    workdir = tempfile.mkdtemp(prefix="shadowdiff-noise-cost-")

    def start(argv: list[str], cpu: int, log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(workdir, log_name), "wb")
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_setup({cpu}))
        log.close()
        procs.append(proc)
        return proc

    load = Load(args.connections, load_cpu, not args.no_wrk)
    level = "warning" if args.log_mismatches else "error"
    results: dict[str, list[LoadResult]] = {name: [] for name in CONFIGS}
    cpu_us: dict[str, list[float]] = {name: [] for name in CONFIGS}
    paced: dict[str, list[LoadResult]] = {name: [] for name in CONFIGS}
    final: dict[str, dict[str, float]] = {}
    try:
        ports = {role: free_port() for role in ("primary", "shadow", "secondary")}
        for role, port in ports.items():
            proc = start([sys.executable, os.path.abspath(__file__), "--role", "backend", "--port", str(port)],
                         load_cpu, f"backend-{role}.log")
            wait_ready(port, proc, f"the {role} backend")
        proxies: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}
        for name, noise in CONFIGS.items():
            port, admin = free_port(), free_port()
            config = os.path.join(workdir, f"{name}.yaml")
            with open(config, "w") as f:
                f.write(f"primary: {{url: 'http://127.0.0.1:{ports['primary']}'}}\n"
                        f"shadow: {{url: 'http://127.0.0.1:{ports['shadow']}'}}\n"
                        f"listen: {{address: '127.0.0.1:{port}'}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n"
                        f"logging: {{level: {level}}}\n" + noise.replace("SECONDARY_PORT", str(ports["secondary"])))
            proc = start([sys.executable, "-m", "shadowdiff", "serve", "--config", config], proxy_cpu, f"{name}.log")
            proxies[name] = (proc, port, admin)
        for name, (proc, port, _) in proxies.items():
            wait_ready(port, proc, f"the {name} proxy (log: {workdir}/{name}.log)")
        print(f"# noise_cost.py: shadowdiff {code_version()}; {args.rounds} round(s) x {len(CONFIGS)} configs x "
              f"{args.seconds:g} s, ABCD/DCBA; load: {load.describe()}; proxies on CPU {proxy_cpu}, load and "
              f"backends on CPU {load_cpu}; logging.level {level}", flush=True)
        for name, (_, port, _) in proxies.items():  # warm-up: pools, caches, and the noise verdicts
            load.run(port, WARMUP_SECONDS)
        for n in range(args.rounds):
            cells = []
            for name in order(n):
                proc, port, _ = proxies[name]
                cpu0 = cpu_seconds(proc.pid)
                res = load.run(port, args.seconds)
                used = cpu_seconds(proc.pid) - cpu0
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} proxy exited ({proc.returncode}); log: {workdir}/{name}.log")
                results[name].append(res)
                cpu_us[name].append(used / max(res.requests, 1) * 1e6)
                errors = f" ({res.errors} errors)" if res.errors else ""
                cells.append(f"{name} {res.rps:>6,.0f} req/s p99 {res.p99_ms:5.2f} ms{errors}")
            print(f"round {n + 1:>2}: " + " | ".join(cells), flush=True)
        rate = args.rate or round(0.3 * statistics.median(r.rps for r in results["off"]), -1)
        print(f"# latency: the built-in loader paced at {rate:g} req/s, {args.connections} connections", flush=True)
        for n in range(args.rounds):
            cells = []
            for name in order(n):
                proc, port, _ = proxies[name]
                res = run_loop(builtin_load(port, args.seconds, args.connections, rate, path=PATH))
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} proxy exited ({proc.returncode}); log: {workdir}/{name}.log")
                paced[name].append(res)
                errors = f" ({res.errors} errors, {res.late} late)" if res.errors or res.late else ""
                cells.append(f"{name} p50 {res.p50_ms:5.2f} p99 {res.p99_ms:5.2f} ms{errors}")
            print(f"round {n + 1:>2}: " + " | ".join(cells), flush=True)
        time.sleep(1.5)  # let the last copies drain and the admin's metrics render expire
        for name, (_, _, admin) in proxies.items():
            final[name] = counters(admin)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
    report(results, cpu_us, paced, final)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(r.errors for rows in (*results.values(), *paced.values()) for r in rows) else 0


def report(results: dict[str, list[LoadResult]], cpu_us: dict[str, list[float]], paced: dict[str, list[LoadResult]],
           final: dict[str, dict[str, float]]) -> None:
    """Medians per config, medians of the per-round ratios against off, the targets, the counters."""

    def ratios(rows: list[LoadResult], base: list[LoadResult], attr: str) -> list[float]:
        return [getattr(r, attr) / getattr(b, attr) for r, b in zip(rows, base)]

    print()
    print("| config | req/s | CPU us/req | req/s / off | spread | closed-loop p99 ms | paced p50 ms | paced p99 ms | "
          "paced p99 / off | spread |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    ratio: dict[str, tuple[float, float]] = {}
    for name, rows in results.items():
        tput, p99 = ratios(rows, results["off"], "rps"), ratios(paced[name], paced["off"], "p99_ms")
        ratio[name] = (statistics.median(tput), statistics.median(p99))
        print(f"| {name} | {statistics.median(r.rps for r in rows):,.0f} | {statistics.median(cpu_us[name]):.1f} | "
              f"{ratio[name][0]:.3f}x | {min(tput):.2f}-{max(tput):.2f} | {statistics.median(r.p99_ms for r in rows):.1f} | "
              f"{statistics.median(r.p50_ms for r in paced[name]):.2f} | "
              f"{statistics.median(r.p99_ms for r in paced[name]):.2f} | {ratio[name][1]:.3f}x | "
              f"{min(p99):.2f}-{max(p99):.2f} |")
    off_p99 = [r.p99_ms for r in paced["off"]]
    lo, hi = min(off_p99) / statistics.median(off_p99), max(off_p99) / statistics.median(off_p99)
    lo, hi = min(lo, 0.95), max(hi, 1.05)
    print()
    print(f"off's own paced p99 over the rounds, or +-5 %: {lo:.2f}-{hi:.2f}x of its median "
          "(the noise a p99 ratio is read against)")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for name in ("repeats", "reask", "secondary"):
        p99 = ratio[name][1]
        print(f"target: {name} paced p99 unchanged within noise: {p99:.3f}x, {verdict(lo <= p99 <= hi)}")
    print(f"target: secondary throughput >= 0.75x of off: {ratio['secondary'][0]:.3f}x, "
          f"{verdict(ratio['secondary'][0] >= 0.75)}")
    print(f"target: repeats (the default, no A/A source configured) throughput >= 0.95x of off: "
          f"{ratio['repeats'][0]:.3f}x, {verdict(ratio['repeats'][0] >= 0.95)}")
    print()
    print("counters at the end (warm-up included):")
    for name, values in final.items():
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(values.items()) if v)
        print(f"  {name}: {shown or 'none'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4, help="rounds; each runs all four configs once (default 4)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of load per config per round (default 5)")
    p.add_argument("--connections", type=int, default=50, help="concurrent client connections (default 50)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="the latency phase's paced rate, req/s (default: 30 %% of off's closed-loop median)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 2 s per config")
    p.add_argument("--no-wrk", action="store_true", help="use the built-in loader even if wrk is installed")
    p.add_argument("--log-mismatches", action="store_true",
                   help="logging.level warning (mismatch lines written) instead of error")
    # internal: the backends
    p.add_argument("--role", choices=("backend",), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if args.role is None and not (1 <= args.rounds <= 100 and 0.5 <= args.seconds <= 120
                                  and 1 <= args.connections <= 1000 and 0 <= args.rate <= 100_000):
        p.error("need 1 <= --rounds <= 100, 0.5 <= --seconds <= 120, 1 <= --connections <= 1000, 0 <= --rate <= 100000")
    if args.role is not None and args.port is None:
        p.error("--role needs --port")
    return args


def main() -> int:
    args = parse_args()
    if args.role == "backend":
        run_loop(serve_backend(args.port, BACKEND_LIFETIME))
        return 0
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\n# interrupted: stopped every process started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""This checkout against another one, interleaved: is a change slower than what it replaces?

    .venv/bin/python benchmarks/versus.py --baseline /tmp/baseline          # mirror + diff
    .venv/bin/python benchmarks/versus.py --baseline /tmp/baseline --mirror-off --rounds 8

`make bench` runs its rows one after the other, and on a shared machine the speed drifts
by 10-30 % within minutes: two `make bench` runs of the same code disagree by more than a
small regression. Here both proxies run at once (`python -m shadowdiff serve` from each
checkout, each with its own venv, pinned to the same CPU), in front of the same backends,
and take turns under the same load: wrk -t1 -c50 for `--seconds` per turn, the order
alternating each round (ABBA), so drift falls on both alike. Per round: req/s and CPU
microseconds per request (utime, stime of the proxy from /proc). At the end: medians, and
the median of the per-round ratios this/baseline (the figure to read).

The baseline is a checkout with its own `.venv` (e.g. `git clone . /tmp/baseline && git -C
/tmp/baseline checkout REV && make -C /tmp/baseline .venv/.installed`). Needs wrk (apt-get
install wrk). Bounded: rounds x 2 x seconds of load, on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, child_setup, free_port, stop_process


def _cpu_split(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, metavar="DIR", help="the other checkout (with its .venv)")
    p.add_argument("--rounds", type=int, default=10, help="turns each (default 10)")
    p.add_argument("--seconds", type=float, default=3.0, help="load per turn (default 3)")
    p.add_argument("--mirror-off", action="store_true", help="mirroring off (the proxy alone)")
    args = p.parse_args()
    if not os.path.exists(os.path.join(args.baseline, ".venv", "bin", "python")):
        p.error(f"{args.baseline} has no .venv: run `make -C {args.baseline} .venv/.installed` first")
    cpus = sorted(os.sched_getaffinity(0))
    load_cpu, proxy_cpu = {cpus[0]}, {cpus[-1]}
    procs: list[subprocess.Popen[bytes]] = []
    workdir = tempfile.mkdtemp(prefix="shadowdiff-versus-")

    def start(argv: list[str], cpu: set[int], cwd: str | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=child_setup(cpu))
        procs.append(proc)
        return proc

    primary, shadow = free_port(), free_port()
    try:
        start([sys.executable, os.path.join(REPO, "benchmarks", "bench.py"), "--role", "backend",
               "--port", str(primary), "--port", str(shadow)], load_cpu)
        proxies = {}
        for name, checkout in (("baseline", args.baseline), ("this", REPO)):
            port = free_port()
            config = os.path.join(workdir, f"{name}.yaml")
            with open(config, "w") as f:
                f.write(f"primary: {{url: 'http://127.0.0.1:{primary}'}}\nshadow: {{url: 'http://127.0.0.1:{shadow}'}}\n"
                        f"listen: {{address: '127.0.0.1:{port}'}}\nadmin: {{listen: '127.0.0.1:{free_port()}'}}\n"
                        f"logging: {{level: warning}}\nmirror: {{enabled: {'false' if args.mirror_off else 'true'}}}\n")
            python = os.path.join(checkout, ".venv", "bin", "python")
            proxies[name] = (start([python, "-m", "shadowdiff", "serve", "--config", config], proxy_cpu, cwd=checkout), port)
        time.sleep(3)
        for name, (proc, _) in proxies.items():
            if proc.poll() is not None:
                print(f"versus: the {name} proxy exited ({proc.returncode})", file=sys.stderr)
                return 1
        wrk = ["taskset", "-c", str(cpus[0]), "wrk", "-t1", "-c50"]
        for _, port in proxies.values():  # warm-up
            subprocess.run([*wrk, "-d1s", f"http://127.0.0.1:{port}/data.json"], capture_output=True, check=True)
        results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "this": []}
        print(f"# versus.py: {'mirroring off' if args.mirror_off else 'mirror + diff'}, {args.rounds} rounds of "
              f"{args.seconds:g} s each, ABBA; proxy on CPU {cpus[-1]}, wrk and backends on CPU {cpus[0]}")
        for n in range(args.rounds):
            for name in (("baseline", "this") if n % 2 == 0 else ("this", "baseline")):
                proc, port = proxies[name]
                user0, sys0 = _cpu_split(proc.pid)
                out = subprocess.run([*wrk, f"-d{args.seconds:g}s", f"http://127.0.0.1:{port}/data.json"],
                                     capture_output=True, text=True, check=True).stdout
                user1, sys1 = _cpu_split(proc.pid)
                count = int(re.search(r"(\d+) requests in", out).group(1))
                results[name].append((count / args.seconds, (user1 - user0) / count * 1e6, (sys1 - sys0) / count * 1e6))
            b, t = results["baseline"][-1], results["this"][-1]
            print(f"round {n + 1:>2}: baseline {b[0]:>7,.0f} req/s {b[1] + b[2]:6.1f} us/req | "
                  f"this {t[0]:>7,.0f} req/s {t[1] + t[2]:6.1f} us/req | ratio {t[0] / b[0]:.2f}", flush=True)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
    for name, rows in results.items():
        print(f"{name:>8}: median {statistics.median(r[0] for r in rows):,.0f} req/s, CPU per request: user "
              f"{statistics.median(r[1] for r in rows):.1f} us, system {statistics.median(r[2] for r in rows):.1f} us")
    ratios = [t[0] / b[0] for b, t in zip(results["baseline"], results["this"])]
    cpu = [(t[1] + t[2]) / (b[1] + b[2]) for b, t in zip(results["baseline"], results["this"])]
    print(f"this / baseline: throughput {statistics.median(ratios):.3f}x, CPU per request {statistics.median(cpu):.3f}x "
          f"(medians of the per-round ratios; spread {min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

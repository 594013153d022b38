"""The worst comparison the event loop can be asked to make inline, with every rule kind on.

    .venv/bin/python benchmarks/inline_worst.py [--offload-bytes N] [--repeat N]

Every rule kind is on (ignore, mask with an RE2 pattern, tolerance, unordered,
ignore_header) and each body is shaped to make one of them work hardest, at the
largest size that still goes inline at `compare.offload_bytes` (64 KiB by default):

  masked-uuids   every string a UUID that differs: each is masked on both sides
  masked-tiny    ~16,000 two-character strings that differ: the most mask calls per byte
  tolerated      every number drifts within the tolerance: each pair is walked, none reported
  unordered      one array of small objects, reversed: sorted by canonical JSON on both sides
  many-diffs     every value changed: the walk stops at MAX_FOUND (200) differences
  host-urls      every string a URL differing only by the shadow's own authority: each explained
  deep-exact     big integers (the exact parser) with every one changed within tolerance
  text-masked    a text body whose every line has a masked token

For each it prints what `Comparator.compare_now()` costs the event loop (the inline
path as the proxy runs it, decision included), in milliseconds (median of --repeat
runs) and as a ratio to `orjson.loads` of the control's body once, and whether the
comparison was made inline or given up at the inline budget (compare.budget,
INLINE_STEPS) and sent to the worker: what the loop spent on a given-up attempt is
counted too, since that is what a client waits behind. The last line is the worst of
all: the bound the budget is meant to keep near 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: tests.values

from shadowdiff.compare.rules import Rules  # noqa: E402 - after the path set-up above
from shadowdiff.config import CompareConfig, RuleConfig  # noqa: E402
from shadowdiff.experiment.comparator import Comparator  # noqa: E402
from shadowdiff.model import SHADOW  # noqa: E402
from tests.values import exchange, seen  # noqa: E402

RULES = Rules(
    [
        RuleConfig(kind="ignore", path="$.meta.at", reason="bench"),
        RuleConfig(kind="mask", pattern="[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]", reason="bench"),
        RuleConfig(kind="tolerance", absolute=1e-3, reason="bench"),
        RuleConfig(kind="unordered", path="$.items", reason="bench"),
        RuleConfig(kind="ignore_header", header="x-trace", reason="bench"),
    ]
).for_route("/bench")
# The control asked with the client's Host, the shadow with its own (shadow.host_header: own); no
# digits in them, which the mask rule would hide before the Host policy could see them.
HOSTS = ("api.example.com", "shadow.example.net")


def _fit(size: Callable[[int], int], limit: int) -> int:
    """The largest n with size(n) <= limit (size grows with n)."""
    low, high = 1, 1
    while size(high) <= limit:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) <= limit else (low, middle)
    return low


def shapes(limit: int) -> dict[str, tuple[bytes, bytes]]:
    def uuids(n: int, seed: int) -> bytes:
        return orjson.dumps({"meta": {"at": seed}, "ids": [str(uuid.UUID(int=i * 7919 + seed)) for i in range(n)]})

    def tiny(n: int, seed: int) -> bytes:
        return orjson.dumps({"v": [f"a{(i + seed) % 10}" for i in range(n)]})

    def numbers(n: int, seed: int) -> bytes:
        return orjson.dumps({"v": [i + seed * 1e-4 for i in range(n)]})

    def objects(n: int, reverse: bool) -> bytes:
        items = [{"k": i, "name": f"n{i}"} for i in range(n)]
        return orjson.dumps({"items": items[::-1] if reverse else items})

    def changed(n: int, seed: int) -> bytes:
        return orjson.dumps({f"k{i}": i + seed for i in range(n)})

    def big(n: int, seed: int) -> bytes:
        return ("[" + ",".join(str(10**22 + i + seed) for i in range(n)) + "]").encode()

    def urls(n: int, seed: int) -> bytes:
        host = HOSTS[seed]
        return orjson.dumps({"links": [f"https://{host}/Rows/{i}.json" for i in range(n)]})

    def text(n: int, seed: int) -> bytes:
        return "".join(f"line {i} id {(i + seed) % 10}\n" for i in range(n)).encode()

    out = {}
    for name, make in (
        ("masked-uuids", uuids), ("masked-tiny", tiny), ("tolerated", numbers), ("many-diffs", changed),
        ("deep-exact", big), ("host-urls", urls), ("text-masked", text),
    ):  # fmt: skip
        n = _fit(lambda n, make=make: max(len(make(n, 0)), len(make(n, 1))), limit)
        out[name] = (make(n, 0), make(n, 1))
    n = _fit(lambda n: len(objects(n, True)), limit)
    out["unordered"] = (objects(n, False), objects(n, True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offload-bytes", type=int, default=CompareConfig().offload_bytes)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    comparator = Comparator(CompareConfig(offload_bytes=args.offload_bytes, max_differences=20))
    print(f"compare.offload_bytes = {args.offload_bytes}; every rule kind on; median of {args.repeat}")
    print(f"{'shape':<14} {'bytes':>7} {'inline':>7} {'ms':>8} {'x parse':>8}  outcome")
    worst = 0.0
    for name, (a, b) in shapes(args.offload_bytes).items():
        headers = {"Content-Type": "text/plain" if name.startswith("text") else "application/json", "X-Trace": name}
        pair = exchange(seen("primary", a, headers=headers), seen("shadow", b, headers={**headers, "X-Trace": "other"}))
        pair.request.client_host, pair.candidates[SHADOW].host = HOSTS
        times, parse = [], []
        comparison = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            orjson.loads(a) if not name.startswith("text") else a.decode().splitlines()
            parse.append(time.perf_counter() - started)
            started = time.perf_counter()
            comparison = comparator.compare_now(pair, SHADOW, RULES)
            times.append(time.perf_counter() - started)
        inline = comparison is not None
        ms = statistics.median(times) * 1e3
        ratio = ms / (statistics.median(parse) * 1e3)
        worst = max(worst, ms)
        outcome = comparison.outcome if comparison else "(to the worker)"
        print(f"{name:<14} {len(a):>7} {'yes' if inline else 'no':>7} {ms:>8.2f} {ratio:>8.1f}  {outcome}")
    print(f"worst loop time for one comparison (made inline or given up): {worst:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

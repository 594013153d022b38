"""What the store's statistics copy costs the event loop, at the noise caps.

    .venv/bin/python benchmarks/snapshot_cost.py [--quick]

The field statistics live on the event loop, so the copy the store's writer gets is taken
there. This fills a FieldStats to noise.max_fields (4,000 paths over 20 routes, each path
with its examples and 10 transitions of 200-character values: the worst case of
tests/noise/test_fields.py) and times, in one process on the same data:

  whole      snapshot() of every route at once: the baseline (what one copy of it all takes)
  one route  snapshot(routes={route}): what the store takes per loop turn
             (store.attach hands the routes that moved one per turn)
  counts     snapshot(values=False): counts only

and prints the median milliseconds and each one's ratio to `whole`. The figure to read is
one route's: the longest a client's request can wait behind the store's copy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, ".")
from tests.noise.test_fields import full  # noqa: E402  the worst case the tests build


def median_ms(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 30")
    args = parser.parse_args()
    rounds = 5 if args.quick else 30
    stats = full()
    cases = {
        "whole": lambda: stats.snapshot(),
        "one route": lambda: stats.snapshot(routes={"/r0"}),
        "counts": lambda: stats.snapshot(values=False),
    }
    results = {name: median_ms(call, rounds) for name, call in cases.items()}
    print(f"FieldStats at 4,000 paths (20 routes x 200), 200-character values; median of {rounds} rounds")
    for name, ms in results.items():
        print(f"  {name:<10} {ms:8.2f} ms   {ms / results['whole']:5.3f}x whole")
    return 0


if __name__ == "__main__":
    sys.exit(main())

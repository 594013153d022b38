"""What redaction costs per mismatch log line.

    .venv/bin/python benchmarks/redact_cost.py [--quick]

For a few shapes of mismatch it times, in one process on the same data:

  serialize  the log line built from the raw differences and encoded (orjson): the
             baseline, what a line costs with no redaction at all
  redacted   `Redactor.report()` (keys, credential shapes, embedded JSON, cut to
             max_value_chars) and then the same line built and encoded

and prints the median microseconds of each and their ratio. Read the ratio and the
added microseconds, not the absolute figures: the machine is noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import orjson

from shadowdiff.config import LoggingConfig
from shadowdiff.model import Comparison, Difference, MISMATCH, SHADOW
from shadowdiff.publish.redact import Redactor
from shadowdiff.publish.sinks import difference_fields

sys.path.insert(0, "tests")
from values import exchange, seen  # noqa: E402

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def shapes() -> dict[str, tuple[Difference, ...]]:
    typical = (
        Difference("body", "$.items[3].price", "changed", 10.5, 11.0),
        Difference("body", "$.items[7].name", "changed", "blue widget", "blue widget v2"),
        Difference("header", "etag", "changed", '"abc123"', '"abd124"'),
    )
    wide = tuple(
        Difference("body", f"$.rows[{i}].text", "changed", "lorem ipsum dolor " * 12, "lorem ipsum dolor sit " * 10)
        for i in range(20)
    )
    secrets = (
        Difference("body", "$.user.password", "changed", "hunter2", "hunter3"),
        Difference("body", "$.note", "changed", f"Bearer {JWT} ok", f"token={JWT}"),
        Difference("header", "location", "changed", "https://a/cb?access_token=abc&x=1", "https://a/cb?access_token=def"),
        Difference("body", "$.config", "changed", '{"apiKey": "k1", "n": 1}', '{"apiKey": "k2", "n": 2}'),
    )
    subtree = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "owner": {"email": f"u{i}@x"}} for i in range(120)]}
    added = (Difference("body", "$.catalog", "added", None, subtree),)
    return {"3 short differences": typical, "20 x 200-char strings": wide, "4 with secrets": secrets, "10 KB added subtree": added}


def line(differences: tuple[Difference, ...]) -> bytes:
    return orjson.dumps({"event": "mismatch", "differences": [difference_fields(d) for d in differences]}, default=repr)


def median_us(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        batch, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.002:
            fn()
            batch += 1
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    rounds = 15 if args.quick else 101
    redactor = Redactor(LoggingConfig())
    print(f"{'mismatch shape':<24}{'serialize us':>14}{'redacted us':>13}{'ratio':>8}{'added us':>10}")
    for name, differences in shapes().items():
        comparison = Comparison(exchange(seen("primary", {"a": 1}), seen(SHADOW, {"a": 2})), SHADOW, MISMATCH, differences)
        base = median_us(lambda: line(comparison.differences), rounds)
        full = median_us(lambda: line(redactor.report(comparison).differences), rounds)
        print(f"{name:<24}{base:>14.1f}{full:>13.1f}{full / base:>7.1f}x{full - base:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

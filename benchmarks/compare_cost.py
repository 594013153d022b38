"""What one body comparison costs in shadowdiff's diff engine.

    .venv/bin/python benchmarks/compare_cost.py [--quick] [--no-deepdiff] [--json PATH]

For JSON bodies of about 1 KiB, 100 KiB and 1 MiB it times `compare_bodies()` (the
function the proxy runs for every compared exchange, inline or in its worker) on:

  a   equal       byte-identical bodies (separate bytes objects)
  a2  reformatted equal after parsing, but keys in another order (not byte-identical)
  b   3 diffs     a changed number, a changed string deep in an array, a removed key
  c   excused     a volatile timestamp (`ignore` rule) and every score drifting by up
                  to 0.0005 (`tolerance` rule, absolute 0.001): the demo's common case

Baselines, measured in the same process on the same bytes:

  parse     `orjson.loads` of both bodies: the floor for any structural comparison
  deepdiff  `deepdiff.DeepDiff(orjson.loads(a), orjson.loads(b))`, no options

Figures are per comparison: median and p90 over samples; a sample is the mean of a
batch of calls sized to last at least ~0.2 ms (so timer overhead does not dominate
the fast cases). Read the ratio columns, not the milliseconds: the machine is noisy.
The script checks what shadowdiff found (0 differences for a and a2, exactly the 3
expected ones for b, 0 differences and excused for c) and exits 1 if not.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from shadowdiff.compare.body import BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.rules import EMPTY, RuleSet, compile_rules
from shadowdiff.config import RuleConfig
from shadowdiff.model import Body

from common import cpu_model

SIZES = (("1 KiB", 1024), ("100 KiB", 100 * 1024), ("1 MiB", 1024 * 1024))
SEED = 20240501
LIMITS = Limits(max_decoded_bytes=8 * 1024 * 1024, max_differences=20)
DEMO_RULES = compile_rules(
    [
        RuleConfig(kind="ignore", path="$.meta.generated_at", reason="volatile"),
        RuleConfig(kind="tolerance", path="$.items[*].score", absolute=0.001, reason="model drift"),
    ]
)
MIN_SAMPLE_S = 0.0002  # one timed sample lasts at least this long (batched calls)
MIN_REPS = 3


# -- documents ------------------------------------------------------------------------


def make_document(target: int, rng: random.Random) -> dict[str, Any]:
    """A catalogue-like document whose serialized form is just over `target` bytes."""
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    doc: dict[str, Any] = {
        "meta": {
            "generated_at": (start + timedelta(microseconds=rng.randrange(10**9))).isoformat(),
            "count": 0,
            "source": "catalogue",
        },
        "items": [],
    }
    words = ("red", "blue", "steel", "oak", "mini", "pro", "eco", "max", "lite", "duo", "flex", "zen")
    size = len(orjson.dumps(doc))
    i = 0
    while size < target or i < 4:  # at least 4 items: case b changes 3 different ones
        item = {
            "id": i,
            "sku": f"SKU-{rng.randrange(10**8):08d}",
            "name": " ".join(rng.choice(words) for _ in range(3)),
            "price": round(rng.uniform(1, 500), 2),
            "stock": rng.randrange(1000),
            "score": round(rng.random(), 6),
            "tags": [rng.choice(words) for _ in range(rng.randint(1, 4))],
        }
        doc["items"].append(item)
        size += len(orjson.dumps(item)) + 1
        i += 1
    doc["meta"]["count"] = len(doc["items"])
    return doc


def copy(doc: Any) -> Any:
    return orjson.loads(orjson.dumps(doc))


def three_differences(doc: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The shadow's version of `doc` with 3 real differences, and their (path, kind)."""
    shadow = copy(doc)
    items = shadow["items"]
    n = len(items)
    i_num, i_str, i_key = n // 4, n // 2, (3 * n) // 4
    items[i_num]["stock"] += 1
    items[i_str]["tags"][-1] = items[i_str]["tags"][-1] + "-x"
    del items[i_key]["name"]
    expected = {
        (f"$.items[{i_num}].stock", "changed"),
        (f"$.items[{i_str}].tags[{len(items[i_str]['tags']) - 1}]", "changed"),
        (f"$.items[{i_key}].name", "removed"),
    }
    return shadow, expected


def excused_differences(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The shadow's version of `doc` as in the demo: new timestamp, every score drifted."""
    shadow = copy(doc)
    stamp = datetime.fromisoformat(shadow["meta"]["generated_at"]) + timedelta(milliseconds=rng.randint(1, 900))
    shadow["meta"]["generated_at"] = stamp.isoformat()
    for item in shadow["items"]:
        item["score"] = round(item["score"] + rng.uniform(-0.0005, 0.0005), 6)
    return shadow


def reordered(doc: Any) -> Any:
    """The same content with every object's keys in reverse order."""
    if isinstance(doc, dict):
        return {k: reordered(v) for k, v in reversed(list(doc.items()))}
    if isinstance(doc, list):
        return [reordered(v) for v in doc]
    return doc


@dataclass
class Case:
    size_label: str
    name: str
    primary: bytes
    shadow: bytes
    rules: RuleSet
    check: Callable[[BodyResult], str | None]  # None when the result is as expected
    deepdiff_expected: int | None = None  # items DeepDiff must report, when known
    results: dict[str, Any] = field(default_factory=dict)


def build_cases(quick_sizes: tuple[tuple[str, int], ...]) -> list[Case]:
    cases = []
    for label, target in quick_sizes:
        rng = random.Random(f"{SEED}-{target}")
        doc = make_document(target, rng)
        raw = orjson.dumps(doc)
        twin = bytes(bytearray(raw))  # equal, but another object: == must compare the bytes

        def equal(result: BodyResult) -> str | None:
            if result.differences or not result.decoded_equal:
                return f"expected decoded_equal and no differences, got {_describe(result)}"
            return None

        cases.append(Case(label, "a equal", raw, twin, EMPTY, equal, 0))
        cases.append(Case(label, "a2 reformatted", raw, orjson.dumps(reordered(doc)), EMPTY, equal, 0))

        shadow, expected = three_differences(doc)

        def three(result: BodyResult, expected: set[tuple[str, str]] = expected) -> str | None:
            found = {(d.path, d.kind) for d in result.differences}
            if len(result.differences) != len(expected) or found != expected or result.excused:
                return f"expected {sorted(expected)}, got {_describe(result)}"
            return None

        cases.append(Case(label, "b 3 diffs", raw, orjson.dumps(shadow), EMPTY, three, len(expected)))

        def excused(result: BodyResult) -> str | None:
            if result.differences or not result.excused:
                return f"expected 0 differences and excused=True, got {_describe(result)}"
            return None

        cases.append(Case(label, "c excused", raw, orjson.dumps(excused_differences(doc, rng)), DEMO_RULES, excused))
    return cases


def _describe(result: BodyResult) -> str:
    diffs = [(d.path, d.kind) for d in result.differences]
    return f"differences={diffs} excused={result.excused} decoded_equal={result.decoded_equal}"


# -- timing ---------------------------------------------------------------------------


def _calibrate(fn: Callable[[], Any]) -> tuple[int, float]:
    """(calls per sample, seconds of the first call); the first call doubles as warm-up."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first >= MIN_SAMPLE_S:
        return 1, first
    batch = max(1, int(MIN_SAMPLE_S / max(first, 1e-9)))
    t0 = time.perf_counter()
    for _ in range(batch):  # re-estimate on a batch: the first call is often the slowest
        fn()
    per_call = (time.perf_counter() - t0) / batch
    return max(1, int(MIN_SAMPLE_S / max(per_call, 1e-9))), first


def _summary(samples: list[float], calls: int) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p90": p90, "samples": len(ordered), "calls": calls}


def measure(fns: dict[str, Callable[[], Any]], budget: float) -> dict[str, dict[str, float]]:
    """Per-call seconds for each function: median and p90 over samples.

    A sample is the mean of a batch of calls lasting at least MIN_SAMPLE_S. The
    functions are sampled in turn (interleaved), so a burst of noise on the machine
    hits all of them rather than skewing their ratio; sampling goes on until each
    has had `budget` seconds and at least MIN_REPS samples.
    """
    gc.collect()
    batches = {name: _calibrate(fn)[0] for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)
    pending = set(fns)
    while pending:
        for name, fn in fns.items():
            if name not in pending:
                continue
            batch = batches[name]
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            elapsed = time.perf_counter() - t0
            samples[name].append(elapsed / batch)
            spent[name] += elapsed
            if len(samples[name]) >= MIN_REPS and spent[name] >= budget:
                pending.discard(name)
    return {name: _summary(samples[name], len(samples[name]) * batches[name]) for name in fns}


def measure_slow(fn: Callable[[], Any], budget: float, max_reps: int = MIN_REPS) -> dict[str, float]:
    """Like measure() for one function, but a call over `budget` / MIN_REPS is not
    repeated more than `max_reps` times and its first call counts (no warm-up):
    DeepDiff takes seconds on 1 MiB."""
    gc.collect()
    batch, first = _calibrate(fn)
    if first * MIN_REPS < budget:
        return measure({"fn": fn}, budget)["fn"]
    samples = [first]
    while len(samples) < max_reps:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return _summary(samples, len(samples))


def run_case(case: Case, budget: float, with_deepdiff: bool) -> None:
    primary = BodyView(Body(size=len(case.primary), data=case.primary), "application/json", "")
    shadow = BodyView(Body(size=len(case.shadow), data=case.shadow), "application/json", "")

    problem = case.check(compare_bodies(primary, shadow, case.rules, LIMITS))
    case.results["check"] = problem or "ok"
    if problem:
        return

    a, b, rules = case.primary, case.shadow, case.rules
    case.results.update(
        measure(
            {
                "shadowdiff": lambda: compare_bodies(primary, shadow, rules, LIMITS),
                "parse": lambda: (orjson.loads(a), orjson.loads(b)),
            },
            budget,
        )
    )
    if with_deepdiff:
        import deepdiff

        last: list[Any] = []

        def run_deepdiff() -> None:
            last[:] = [deepdiff.DeepDiff(orjson.loads(a), orjson.loads(b))]

        case.results["deepdiff"] = measure_slow(run_deepdiff, budget)
        found = sum(len(v) for v in last[0].values())
        case.results["deepdiff_found"] = found
        if case.deepdiff_expected is not None and found != case.deepdiff_expected:
            case.results["check"] = f"deepdiff found {found} differences, expected {case.deepdiff_expected}: the inputs are wrong"


# -- report ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = cpu_model(platform.machine())
    try:
        import deepdiff

        dd_version = deepdiff.__version__
    except ImportError:  # pragma: no cover
        dd_version = "absent"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "orjson": orjson.__version__,
        "deepdiff": dd_version,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    m = value * 1000
    return f"{m:.4f}" if m < 0.1 else f"{m:.3f}" if m < 10 else f"{m:.1f}"


def ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    r = num / den
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def table(cases: list[Case]) -> str:
    head = ("size", "case", "body bytes", "shadowdiff ms", "p90 ms", "parse ms", "deepdiff ms", "deepdiff/sd", "sd/parse")
    rows = [head]
    for c in cases:
        r = c.results
        sd = r.get("shadowdiff", {}).get("median")
        parse = r.get("parse", {}).get("median")
        dd = r.get("deepdiff", {}).get("median")
        rows.append(
            (
                c.size_label,
                c.name,
                f"{len(c.primary)}/{len(c.shadow)}",
                ms(sd),
                ms(r.get("shadowdiff", {}).get("p90")),
                ms(parse),
                ms(dd),
                ratio(dd, sd),
                ratio(sd, parse),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join(("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~0.1 s per measurement instead of ~0.5 s")
    parser.add_argument("--no-deepdiff", action="store_true", help="skip the DeepDiff baseline (~20 s at 1 MiB)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    budget = 0.1 if args.quick else 0.5

    info = machine()
    print(f"Python {info['python']} ({info['implementation']}), orjson {info['orjson']}, deepdiff {info['deepdiff']}")
    print(f"CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)")
    print(f"{info['date']}; {budget} s per measurement; times are per comparison (both bodies)")
    print()

    started = time.perf_counter()
    cases = build_cases(SIZES)
    failures = []
    for case in cases:
        run_case(case, budget, not args.no_deepdiff)
        check = case.results["check"]
        extra = f", deepdiff reported {case.results['deepdiff_found']}" if "deepdiff_found" in case.results else ""
        print(f"check {case.size_label:>7} {case.name:<15} {check}{extra}", flush=True)
        if check != "ok":
            failures.append(case)
    print()
    print(table(cases))
    print()
    print(f"total {time.perf_counter() - started:.1f} s")

    if args.json:
        out = {
            "machine": info,
            "budget_s": budget,
            "cases": [
                {"size": c.size_label, "case": c.name, "primary_bytes": len(c.primary), "shadow_bytes": len(c.shadow), **c.results}
                for c in cases
            ],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
            f.write("\n")

    if failures:
        print(f"FAILED: shadowdiff's result was not the expected one in {len(failures)} case(s):", file=sys.stderr)
        for c in failures:
            print(f"  {c.size_label} {c.name}: {c.results['check']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`shadowdiff demo`: a primary, a candidate and the proxy, all on loopback.

The candidate differs from the primary the way real rewrites do:
- /users/{id}: every seventh user's `plan` comes back changed (a real bug: mismatch);
- /recommendations: scores drift by up to 0.0005 (an ML model swap: excused by a
  shipped tolerance rule, so `ignored`);
- /orders/{id}: a volatile `generated_at` timestamp, which the primary's own answers
  differ in too: noise detection (re-asks of the primary, noise.reask_rate) finds it,
  and those comparisons end `noise`, not `mismatch`, with no rule written;
- /products/{id}: an added `currency` field (a mismatch on every request).
Traffic is driven at a steady rate with a progress line, then a per-route table,
the fields each route differs in with their verdicts, and a few example
differences are printed. The web UI is served on the admin listener while it runs
(with an operator token of the demo's own, printed, to try the kill switch),
and the run is kept in a store of its own (`demo.db` beside the default store, a
fresh file each run) that `shadowdiff ui` shows afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp
import orjson
from aiohttp import web

from shadowdiff import config as configuration, log
from shadowdiff.model import MISMATCH, NOISE, SHADOW, Comparison
from shadowdiff.noise.views import fields_view
from shadowdiff.publish.redact import Report
from shadowdiff.publish.sinks import difference_fields
from shadowdiff.service import ShadowDiff
from shadowdiff.store.database import default_path

DEMO_RULES = [
    {"kind": "tolerance", "path": "$.items[*].score", "absolute": 0.001,
     "reason": "the new ranking model may move scores by less than 0.001"},
]  # fmt: skip
# The demo's own A/A source: half the mirrored GETs are asked of the primary again.
DEMO_NOISE = {"reask_rate": 0.5, "min_observations": 10}
TOKEN_ENV = "SHADOWDIFF_DEMO_TOKEN"
DEMO_ROUTES = ["/users/{id}", "/orders/{id}", "/products/{id}"]
PLANS = ("free", "pro", "team")
EXAMPLES_PER_ROUTE = 2


def _demo_app(candidate: bool) -> web.Application:
    rng = random.Random(42 if candidate else 7)

    async def user(request: web.Request) -> web.Response:
        user_id = int(request.match_info["id"])
        plan = PLANS[user_id % 3]
        if candidate and user_id % 7 == 0:
            plan = PLANS[(user_id + 1) % 3]  # the bug the demo is there to find
        return web.json_response({"id": user_id, "name": f"user-{user_id}", "plan": plan, "active": True})

    async def recommendations(request: web.Request) -> web.Response:
        user_id = int(request.query.get("user", "1"))
        items = []
        for rank in range(3):
            score = round(1.0 / (rank + 1 + user_id % 5), 6)
            if candidate:
                score = round(score + rng.uniform(-0.0005, 0.0005), 6)  # the new model, nearly the same
            items.append({"sku": f"sku-{(user_id * 7 + rank) % 100}", "score": score})
        return web.json_response({"user": user_id, "model": "ranker", "items": items})

    async def order(request: web.Request) -> web.Response:
        order_id = int(request.match_info["id"])
        body = {
            "id": order_id,
            "items": [{"sku": f"sku-{order_id % 10}", "qty": 1 + order_id % 3}],
            "total": round(9.99 * (1 + order_id % 3), 2),
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        }
        return web.json_response(body)

    async def product(request: web.Request) -> web.Response:
        product_id = int(request.match_info["id"])
        body = {"id": product_id, "name": f"product-{product_id}", "price": round(4.5 + product_id % 20, 2)}
        if candidate:
            body["currency"] = "EUR"  # a new field the rewrite added
        return web.json_response(body)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/recommendations", recommendations)
    app.router.add_get("/orders/{id}", order)
    app.router.add_get("/products/{id}", product)
    app.router.add_get("/health", health)
    return app


async def _start_backend(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def _demo_path(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return f"/users/{rng.randint(1, 200)}"
    if roll < 0.6:
        return f"/recommendations?user={rng.randint(1, 50)}"
    if roll < 0.8:
        return f"/orders/{rng.randint(1000, 9999)}"
    if roll < 0.95:
        return f"/products/{rng.randint(1, 500)}"
    return "/health"


@dataclass
class _Tally:
    """What the demo prints: outcomes per route, and a few example differences (a publish sink)."""

    name = "demo"
    sent: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    examples: dict[str, list[Report]] = field(default_factory=lambda: defaultdict(list))

    def wants(self, comparison: Comparison) -> bool:
        return comparison.lane == SHADOW

    def __call__(self, report: Report) -> None:
        comparison = report.comparison
        route = comparison.request.route
        self.outcomes[route][comparison.outcome] += 1
        # Examples of what the candidate changed: judged a regression (not undecided for want of evidence yet).
        if "regression" in report.verdicts and len(self.examples[route]) < EXAMPLES_PER_ROUTE:
            self.examples[route].append(report)

    def compared(self) -> int:
        return sum(sum(o.values()) for o in self.outcomes.values())

    def mismatches(self) -> int:
        return sum(o.get(MISMATCH, 0) for o in self.outcomes.values())


async def run_demo(*, duration: float | None, rate: float = 50.0) -> int:
    """Run the demo for `duration` seconds (None: until Ctrl-C / SIGTERM). Returns an exit code."""
    log.configure("error")  # mismatch lines would bury the table; `serve` logs them as JSON
    primary_runner, primary_url = await _start_backend(_demo_app(candidate=False))
    shadow_runner, shadow_url = await _start_backend(_demo_app(candidate=True))
    tally = _Tally()
    store = default_path().with_name("demo.db")
    for stale in (store, store.with_name("demo.db-wal"), store.with_name("demo.db-shm")):
        stale.unlink(missing_ok=True)  # each run starts from nothing
    os.environ[TOKEN_ENV] = token = secrets.token_hex(16)  # the demo's own operator, for its kill switch
    service = await _start_proxy(primary_url, shadow_url, tally, store=f"sqlite:///{store}")
    proxy_url, admin_url = f"http://{service.address}", f"http://{service.admin_address}"
    out = sys.stdout
    out.write(
        f"shadowdiff demo\n"
        f"  ui        {admin_url}/   open it: routes, fields, sample diffs, as they come\n"
        f"  primary   {primary_url}  (demo service)\n"
        f"  candidate {shadow_url}  (a rewrite: a /users bug, /recommendations score drift,\n"
        f"                                   /orders timestamps, a new /products field)\n"
        f"  proxy     {proxy_url}   try: curl {proxy_url}/users/7\n"
        f"  metrics   {admin_url}/metrics\n"
        f"  rules     tolerance 0.001 on $.items[*].score\n"
        f"  noise     half the mirrored GETs are asked of the primary again (noise.reask_rate: 0.5)\n"
        f"  api       {admin_url}/api/v1/routes\n"
        f"  controls  operator token {token}: sign in at {admin_url}/ui/sign-in to pause mirroring,\n"
        f"            or: SHADOWDIFF_TOKEN={token} shadowdiff ctl --admin {service.admin_address} pause\n\n"
    )
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers off the main thread
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    sent = 0
    try:
        sent = await _drive(proxy_url, service, tally, rate=rate, duration=duration, stop=stop)
    finally:
        await service.mirror.drain(5)
        _report(tally, sent, admin_url, service, out)
        await service.stop()
        command = "shadowdiff" if shutil.which("shadowdiff") else f"{sys.executable} -m shadowdiff"
        out.write(f"\nThis run is kept in {store}; browse it again with:\n  {command} ui --store sqlite:///{store}\n")
        await primary_runner.cleanup()
        await shadow_runner.cleanup()
    return 0


async def _start_proxy(primary_url: str, shadow_url: str, tally: _Tally, *, store: str) -> ShadowDiff:
    """The proxy on the usual ports if they are free, else on any free ones."""
    last_error: OSError | None = None
    for listen, admin in (("127.0.0.1:8080", "127.0.0.1:9901"), ("127.0.0.1:0", "127.0.0.1:0")):
        config = configuration.from_mapping(
            {
                "listen": {"address": listen},
                "primary": {"url": primary_url},
                "shadow": {"url": shadow_url},
                "routes": DEMO_ROUTES,
                "compare": {"rules": DEMO_RULES},
                "noise": DEMO_NOISE,
                "logging": {"level": "error"},
                "store": {"url": store, "instance": "demo"},
                "admin": {"listen": admin, "tokens": [{"name": "demo", "role": "operator", "token_env": TOKEN_ENV}]},
            }
        )
        service = ShadowDiff(config, extra_sinks=[tally])
        try:
            await service.start()
            return service
        except OSError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


async def _drive(
    proxy_url: str, service: ShadowDiff, tally: _Tally, *, rate: float, duration: float | None, stop: asyncio.Event
) -> int:
    rng = random.Random(1)
    interval = 1.0 / rate
    started = time.monotonic()
    next_progress = started + 1.0
    sent = 0
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            path = _demo_path(rng)
            async with client.get(proxy_url + path) as response:
                await response.read()
            sent += 1
            tally.sent[service.runtime.current.routes.route(path.split("?", 1)[0])] += 1
            if now >= next_progress:
                _progress(now - started, sent, tally, service)
                next_progress += 1.0
            delay = started + sent * interval - time.monotonic()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    return sent


def _progress(elapsed: float, sent: int, tally: _Tally, service: ShadowDiff) -> None:
    compared = tally.compared()
    rate = 100.0 * tally.mismatches() / compared if compared else 0.0
    line = (
        f"[{elapsed:5.1f}s] {sent} requests, {compared} compared, {rate:4.1f}% mismatched, "
        f"{service.mirror.in_flight} in flight"
    )
    # On a terminal the line updates in place; in a log or pipe, one line per second.
    sys.stdout.write(f"\r{line} " if sys.stdout.isatty() else line + "\n")
    sys.stdout.flush()


def _report(tally: _Tally, sent: int, admin_url: str, service: ShadowDiff, out: object) -> None:
    write = out.write  # type: ignore[attr-defined]
    write(f"\n{sent} requests sent through the proxy; every one answered by the primary.\n\n")
    header = (
        f"{'route':<20}{'requests':>9}{'compared':>9}{'match':>8}{'mismatch':>10}{'ignored':>9}{'noise':>7}{'error':>7}\n"
    )
    write(header + "-" * (len(header) - 1) + "\n")
    for route in sorted(set(tally.sent) | set(tally.outcomes)):
        counts = tally.outcomes.get(route, {})
        total = sum(counts.values())

        def pct(outcome: str) -> str:
            return f"{100.0 * counts.get(outcome, 0) / total:.0f}%" if total else "-"

        write(
            f"{route:<20}{tally.sent[route]:>9}{total:>9}{pct('match'):>8}{pct('mismatch'):>10}"
            f"{pct('ignored'):>9}{pct(NOISE):>7}{pct('shadow_error'):>7}\n"
        )
    write(
        "\n'ignored' means the answers differed only where a rule says they may; 'noise' that they\n"
        "differed only where the primary's own answers differ from each other too.\n"
    )
    _verdicts(service, write)
    if any(tally.examples.values()):
        write("\nExample differences (primary -> candidate):\n")
    for route in sorted(tally.examples):
        for report in tally.examples[route]:
            write(f"  {report.comparison.request.method} {report.path}\n")
            for d in report.differences[:4]:  # redacted by the publish pipeline
                write(f"    {d.part} {d.path} {d.kind}: {_short(d.control)} -> {_short(d.candidate)}\n")
    first = next((r for examples in tally.examples.values() for r in examples), None)
    if first is not None:
        line = {"event": "mismatch", "route": first.route, "path": first.path,
                "differences": [difference_fields(d) for d in first.differences]}  # fmt: skip
        write("\nIn `shadowdiff serve` each mismatch is also a JSON log line, e.g.:\n  ")
        write(orjson.dumps(line).decode() + "\n")
    write(f"\nThe UI ({admin_url}/) and metrics ({admin_url}/metrics) were served while the demo ran.\n")


def _verdicts(service: ShadowDiff, write: object) -> None:
    """Each route's differing fields with their verdicts (what /api/v1/fields shows)."""
    snapshot = service.fields.snapshot(values=False)
    rows = []
    for route in sorted(snapshot.get("routes", {})):
        view = fields_view(snapshot, route) or {"fields": []}
        for field_row in view["fields"][:3]:
            rows.append(
                f"  {route:<18} {field_row['part']} {field_row['path']:<18} {field_row['verdict']:<11}"
                f"shadow {field_row['differences']:>4}, A/A {field_row['noise']:>4} of {field_row['aa_observations']}\n"
            )
    if rows:
        write("\nFields that differed, with their verdicts (regression: the candidate's; noise: the service's):\n")  # type: ignore[operator]
        for row in rows:
            write(row)  # type: ignore[operator]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

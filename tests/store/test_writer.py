"""The store's writer against a real SQLite file: what it keeps survives a restart, retention holds
while it runs, and a locked store or a full queue costs clients nothing (errors and drops counted)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path


from shadowdiff.config.schema import LoggingConfig
from shadowdiff.noise.verdict import Thresholds
from shadowdiff.publish.redact import Redactor
from shadowdiff.store.database import Database, Location
from shadowdiff.store.reader import StoreReader
from shadowdiff.store.writer import MAX_PENDING_BUCKETS, StoreWriter
from tests.backends import Backend
from tests.conftest import StartProxy, api, drive, metrics, settle, until

USERS = "/users/{id}"


def _route(view: dict, name: str) -> dict:
    rows = {row["route"]: row for row in view["routes"]}
    assert name in rows, sorted(rows)
    return rows[name]


async def test_what_the_store_keeps_survives_a_restart(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """A second proxy on the same file shows the first one's counts, field and samples through the API,
    and adds its own to them (a restarted process is a new instance, even with the same pid)."""
    store = {"url": f"sqlite:///{tmp_path}/kept.db"}
    first = await start_proxy(store_apps["primary"], store_apps["shadow"], store=store, routes=[USERS])
    await drive(first, [f"/users/{n}" for n in range(20)] + [f"/same/{n}" for n in range(5)])
    await first.stop()

    second = await start_proxy(store_apps["primary"], store_apps["shadow"], store=store, routes=[USERS])
    await drive(second, ["/users/100", "/users/101"])  # the same process, the same minute: added, not replacing
    status, routes = await api(second, "/api/v1/routes")
    assert status == 200, routes
    users = _route(routes, USERS)
    assert users["comparisons"]["mismatch"] == 11 and users["comparisons"]["match"] == 11
    assert routes["store"] == f"sqlite:///{tmp_path}/kept.db"
    status, fields = await api(second, f"/api/v1/fields?route={USERS}")
    assert status == 200
    plan = {row["path"]: row for row in fields["fields"]}["$.plan"]
    assert plan["differences"] == 11
    status, samples = await api(second, f"/api/v1/samples?route={USERS}&path=$.plan")
    assert status == 200
    assert len(samples["samples"]) == 6  # store.samples_per_field from the first, and the second's one
    sample = samples["samples"][0]
    assert sample["primary"]["body"]["content"]["plan"] == "free"
    assert sample["shadow"]["body"]["content"]["plan"] == "pro"
    assert [d["path"] for d in sample["differences"]] == ["$.plan"]


async def _filled(store_apps: dict[str, str], start_proxy: StartProxy, url: str, requests: int, **store: object) -> None:
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"url": url, **store}, routes=[USERS])
    await drive(proxy, [f"/users/{n}" for n in range(requests)])
    await proxy.stop()


def _writer(url: str, *, clock: float, **limits: float) -> StoreWriter:
    """A writer on `url` whose clock reads `clock` (what a proxy running that long later would see)."""
    return StoreWriter(
        Database(Location.parse(url)),
        instance="later/1",
        redaction=lambda: Redactor(LoggingConfig()).spec,
        clock=lambda: clock,
        **limits,
    )


def _counted(url: str) -> int:
    reader = StoreReader(Database(Location.parse(url)))
    try:
        snapshot = reader.snapshot(Thresholds(0.2, 0.0003, 10))
        return sum(sum(route["outcomes"].values()) for route in snapshot["routes"].values())
    finally:
        reader.database.close()


def _samples(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]


async def test_retention_by_age_runs_while_the_writer_runs(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """A running writer whose clock is past store.max_age deletes the older counts and samples."""
    url = f"sqlite:///{tmp_path}/aged.db"
    await _filled(store_apps, start_proxy, url, 10)
    assert _counted(url) == 10 and _samples(tmp_path / "aged.db") == 5
    writer = _writer(url, clock=time.time() + 3 * 3600, max_age=3600)
    writer.start()
    try:
        assert await asyncio.to_thread(writer.flush, 5.0)
    finally:
        writer.close()
    assert _counted(url) == 0
    assert _samples(tmp_path / "aged.db") == 0


async def test_retention_by_size_sheds_the_oldest_samples_first(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """Past store.max_bytes the oldest samples go until the store fits; the newest and the counts stay."""
    url = f"sqlite:///{tmp_path}/big.db"
    await _filled(store_apps, start_proxy, url, 200, samples_per_field=100)
    path = tmp_path / "big.db"
    kept = _samples(path)
    assert kept == 100
    database = Database(Location.parse(url))
    database.connect()
    full = database.size()
    with sqlite3.connect(path) as conn:
        newest = conn.execute("SELECT MAX(id) FROM samples").fetchone()[0]
    database.close()
    limit = full * 2 // 3
    writer = _writer(url, clock=time.time(), max_bytes=limit)
    writer.start()
    try:
        assert await asyncio.to_thread(writer.flush, 5.0)
    finally:
        writer.close()
    database.connect()
    try:
        assert database.size() <= limit
    finally:
        database.close()
    with sqlite3.connect(path) as conn:
        left = conn.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM samples").fetchone()
    assert 0 < left[0] < kept and left[2] == newest and left[1] > 1
    assert _counted(url) == 200  # statistics go only once samples cannot make room


async def test_a_locked_store_costs_clients_nothing_and_loses_no_counts(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """While another process holds the SQLite file locked, every request is answered, the failed
    writes are counted (store errors, dropped samples); once it is released every count is written."""
    path = tmp_path / "locked.db"
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], store={"url": f"sqlite:///{path}", "flush_interval": 0.2}, routes=[USERS]
    )
    await drive(proxy, ["/users/1"])
    await proxy.flush_store()
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        waited = await drive(proxy, [f"/users/{n}" for n in range(2, 42)], settled=False)
        await settle(proxy)
        await until(lambda: metrics(proxy).value("shadowdiff_store_errors_total", op="write") >= 2, timeout=10)
        assert waited < 10, f"40 requests took {waited:.1f} s behind a locked store"
        assert metrics(proxy).value("shadowdiff_store_dropped_total", what="sample") >= 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await proxy.flush_store()
    status, routes = await api(proxy, "/api/v1/routes")
    assert status == 200, routes
    assert sum(_route(routes, USERS)["comparisons"].values()) == 41


async def test_past_max_queued_samples_are_dropped_and_counted(start_proxy: StartProxy, tmp_path: Path) -> None:
    """With the writer idle (a long flush interval) and store.max_queued 3, the 4th sample on is
    dropped and counted, and gives its place in the sampler back (so each later comparison is
    tried again); every client is answered and the statistics still reach the store."""
    primary, shadow = await Backend("primary").start(), await Backend("shadow").start()
    try:
        proxy = await start_proxy(
            primary.url, shadow.url, store={"url": f"sqlite:///{tmp_path}/q.db", "flush_interval": 3600, "max_queued": 3}
        )
        # /whoami differs between the two backends ({"backend": name}); one route, one field:
        # the queue holds three, and each of the five after them is dropped and handed back.
        await drive(proxy, ["/whoami"] * 8)
        assert metrics(proxy).value("shadowdiff_store_dropped_total", what="sample") == 5
        await proxy.flush_store()
        assert _samples(tmp_path / "q.db") == 3
        status, routes = await api(proxy, "/api/v1/routes")
        assert sum(_route(routes, "/whoami")["comparisons"].values()) == 8
    finally:
        await primary.stop()
        await shadow.stop()



async def test_a_long_outage_keeps_every_count_in_a_bounded_number_of_minutes(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """A minute written, then six minutes of statistics against a locked store: each flush fails and
    is counted; once the lock goes every count is written once, in at most MAX_PENDING_BUCKETS + 1
    minutes (the oldest, written before, took in the rest), and nothing was dropped."""
    path = tmp_path / "outage.db"
    url = f"sqlite:///{path}"
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"enabled": False}, routes=[USERS])
    now = [1_800_000_000.0]
    errors: list[str] = []
    drops: list[str] = []
    writer = StoreWriter(
        Database(Location.parse(url)), instance="outage/1", redaction=lambda: Redactor(LoggingConfig()).spec,
        clock=lambda: now[0], on_error=errors.append, on_drop=lambda what, n: drops.append(what),
    )  # fmt: skip
    writer.start()
    await drive(proxy, ["/users/100", "/users/101"])  # written at once: the minute the outage begins in
    writer.stats(proxy.fields.snapshot()["routes"])
    assert await asyncio.to_thread(writer.flush, 10.0) and writer.written == 1
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for minute in range(6):
            await drive(proxy, [f"/users/{minute * 2}", f"/users/{minute * 2 + 1}"])
            writer.stats(proxy.fields.snapshot()["routes"])
            assert await asyncio.to_thread(writer.flush, 10.0)
            now[0] += 60
        assert len(errors) == 6
        lock.execute("ROLLBACK")
        writer.stats(proxy.fields.snapshot()["routes"])
        assert await asyncio.to_thread(writer.flush, 10.0)
    finally:
        lock.close()
        writer.close()
    with sqlite3.connect(path) as conn:
        minutes, compared, mismatches = conn.execute(
            "SELECT COUNT(*), SUM(compared), SUM(o_mismatch) FROM route_stats WHERE route = ?", (USERS,)
        ).fetchone()
    assert (compared, mismatches) == (14, 7)
    assert minutes <= MAX_PENDING_BUCKETS + 1
    assert drops == []

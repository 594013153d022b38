"""A fleet's store on a real PostgreSQL server (started by the suite, tests/store/postgres.py): many
proxies write to one database and each one's API shows the fleet; a server that goes down costs
clients nothing and, once back, gets every count."""

from __future__ import annotations

import asyncio


from shadowdiff.config.schema import LoggingConfig
from shadowdiff.publish.redact import Redactor
from shadowdiff.store.database import Database, Location
from shadowdiff.store.writer import StoreWriter
from tests.conftest import StartProxy, api, drive, metrics, settle, until
from tests.store.postgres import PostgresServer

USERS = "/users/{id}"


def _users(view: dict) -> dict:
    rows = {row["route"]: row for row in view["routes"]}
    assert USERS in rows, sorted(rows)
    return rows[USERS]


async def test_two_proxies_share_one_store_and_each_shows_the_fleet(
    store_apps: dict[str, str], start_proxy: StartProxy, postgres_url: str
) -> None:
    """Proxies a and b write to one database; either one's API sums both and lists both instances,
    and each sample says which instance saw it."""
    a = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"url": postgres_url, "instance": "a"}, routes=[USERS])
    b = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"url": postgres_url, "instance": "b"}, routes=[USERS])
    await drive(a, [f"/users/{n}" for n in range(10)])  # 5 mismatches
    await drive(b, [f"/users/{n}" for n in range(10, 40)])  # 15 mismatches
    await b.flush_store()
    for proxy in (a, b):
        status, view = await api(proxy, "/api/v1/routes")
        assert status == 200, view
        assert _users(view)["comparisons"] == {"match": 20, "mismatch": 20, "ignored": 0, "noise": 0, "shadow_error": 0}
        assert view["store"].startswith("postgresql://postgres@127.0.0.1:")
        assert {row["instance"].split("/")[0] for row in view["instances"]} == {"a", "b"}
        status, fields = await api(proxy, f"/api/v1/fields?route={USERS}")
        assert [(row["path"], row["differences"]) for row in fields["fields"]] == [("$.plan", 20)]
    status, samples = await api(a, f"/api/v1/samples?route={USERS}&path=$.plan")
    assert status == 200
    assert {s["instance"].split("/")[0] for s in samples["samples"]} == {"a", "b"}  # 5 each, newest first
    assert len(samples["samples"]) == 10


async def test_postgresql_down_mid_run_costs_clients_nothing_and_writing_resumes(
    store_apps: dict[str, str], start_proxy: StartProxy, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """With the server stopped, every request is answered and the failed writes are counted; once it
    is back the writer reconnects and every count made meanwhile reaches the store (only the
samples of the failed flushes are lost, and counted)."""
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], store={"url": postgres_url, "flush_interval": 0.2}, routes=[USERS]
    )
    await drive(proxy, ["/users/0"])
    await proxy.flush_store()
    await asyncio.to_thread(postgres_server.stop)
    try:
        waited = await drive(proxy, [f"/users/{n}" for n in range(1, 31)], settled=False)
        assert waited < 10, f"30 requests took {waited:.1f} s with the store down"
        await settle(proxy)
        await until(lambda: metrics(proxy).value("shadowdiff_store_errors_total", op="write") >= 2, timeout=15)
        assert metrics(proxy).value("shadowdiff_store_dropped_total", what="sample") >= 1  # the samples of failed flushes
        status, body = await api(proxy, "/api/v1/routes")
        assert status == 503 and "clients are still served" in body["error"]
    finally:
        await asyncio.to_thread(postgres_server.start)

    async def written() -> bool:
        status, view = await api(proxy, "/api/v1/routes")
        return status == 200 and sum(_users(view)["comparisons"].values()) == 31

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await written():
        assert loop.time() < deadline, "the store did not get the counts back"
        await asyncio.sleep(0.2)


async def test_retention_by_size_on_postgresql_keeps_the_newest(
    store_apps: dict[str, str], start_proxy: StartProxy, postgres_url: str
) -> None:
    """Past store.max_bytes on PostgreSQL (whose files do not shrink after a delete) a running writer's
    retention deletes the oldest samples until the live data fits, and no further: the newest samples
    and every count stay."""
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], store={"url": postgres_url, "samples_per_field": 100}, routes=[USERS]
    )
    await drive(proxy, [f"/users/{n}" for n in range(200)])
    await proxy.stop()
    database = Database(Location.parse(postgres_url))
    database.connect()
    try:
        limit = database.size() * 2 // 3
        count, newest = database.execute("SELECT COUNT(*), MAX(id) FROM samples")[0]
        database.rollback()
        assert count == 100
        writer = StoreWriter(
            Database(Location.parse(postgres_url)), instance="later/1", redaction=lambda: Redactor(LoggingConfig()).spec,
            max_bytes=limit,
        )  # fmt: skip
        writer.start()
        try:
            assert await asyncio.to_thread(writer.flush, 10.0)  # its first flush runs retention
        finally:
            writer.close()
        assert database.size() <= limit
        left, kept_newest = database.execute("SELECT COUNT(*), MAX(id) FROM samples")[0]
        compared = database.execute("SELECT SUM(compared) FROM route_stats WHERE route = ?", (USERS,))[0][0]
        database.rollback()
    finally:
        database.close()
    assert 40 <= left < 100 and kept_newest == newest
    assert compared == 200

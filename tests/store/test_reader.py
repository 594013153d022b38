"""The admin API reads the store: time ranges on routes and fields, trends, and the samples
endpoints' shapes and errors."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.conftest import StartProxy, api, drive

USERS = "/users/{id}"
HOURS_AGO = 3 * 3600


def _users(view: dict) -> dict:
    rows = {row["route"]: row for row in view["routes"]}
    assert USERS in rows, sorted(rows)
    return rows[USERS]


async def test_time_ranges_select_what_the_store_counted_then(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """Counts and samples moved three hours back are outside since=1h and inside a from/to around them;
    with no range both are summed, and the trend has a point for each."""
    path = tmp_path / "ranges.db"
    store = {"url": f"sqlite:///{path}"}
    earlier = await start_proxy(store_apps["primary"], store_apps["shadow"], store=store, routes=[USERS])
    await drive(earlier, [f"/users/{n}" for n in range(10)])  # 5 mismatches, then made old:
    await earlier.stop()
    with sqlite3.connect(path) as conn:
        for table in ("route_stats", "field_stats", "field_values"):
            conn.execute(f"UPDATE {table} SET bucket = bucket - ?", (HOURS_AGO,))
        conn.execute("UPDATE samples SET seen = seen - ?", (HOURS_AGO,))
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], store=store, routes=[USERS])
    await drive(proxy, [f"/users/{n}" for n in range(10, 14)])  # 2 mismatches, now

    status, recent = await api(proxy, "/api/v1/routes?since=1h")
    assert status == 200, recent
    assert _users(recent)["comparisons"]["mismatch"] == 2
    assert recent["range"]["label"] == "1h" and recent["range"]["from"] is not None
    now = int(time.time())
    status, old = await api(proxy, f"/api/v1/routes?from={now - HOURS_AGO - 600}&to={now - HOURS_AGO + 600}")
    assert _users(old)["comparisons"]["mismatch"] == 5 and old["range"]["label"] == "custom"
    status, everything = await api(proxy, "/api/v1/routes")
    users = _users(everything)
    assert users["comparisons"]["mismatch"] == 7
    assert sum(point["mismatch"] for point in users["trend"]) == 7 and len(users["trend"]) == 2
    status, fields = await api(proxy, f"/api/v1/fields?route={USERS}&since=1h")
    assert [(row["path"], row["differences"]) for row in fields["fields"]] == [("$.plan", 2)]
    status, fields = await api(proxy, f"/api/v1/fields?route={USERS}")
    assert sum(fields["fields"][0]["trend"]) == 7
    status, samples = await api(proxy, f"/api/v1/samples?route={USERS}&since=1h")
    assert [s["path"] for s in samples["samples"]] == ["/users/12", "/users/10"]
    status, samples = await api(proxy, f"/api/v1/samples?route={USERS}&path=$.plan")
    assert len(samples["samples"]) == 7  # 5 then, and 2 now (another process: its own 5 per field)


async def test_bad_ranges_are_400_with_what_to_write(store_apps: dict[str, str], start_proxy: StartProxy) -> None:
    """An unknown duration, a malformed instant and an empty span are 400s whose message says the form."""
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"])
    for query, said in (("since=fortnight", "15m, 1h, 24h or 7d"), ("from=yesterday", "ISO 8601"), ("from=200&to=100", "after")):
        status, body = await api(proxy, f"/api/v1/routes?{query}")
        assert status == 400 and said in body["error"], (query, body)


async def test_samples_endpoints_answer_the_documented_shape(store_apps: dict[str, str], start_proxy: StartProxy) -> None:
    """GET /api/v1/samples lists a route's samples newest first (each with request id, method, path,
    differences, each side's status, headers and body), filtered by path and limited; GET
    /api/v1/samples/ID gives one; unknown ids are 404, bad ones 400, a missing route 400."""
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], routes=[USERS])
    await drive(proxy, [f"/users/{n}" for n in range(8)] + ["/same/1"])
    status, body = await api(proxy, f"/api/v1/samples?route={USERS}")
    assert status == 200
    listed = body["samples"]
    assert len(listed) == 4 and [s["id"] for s in listed] == sorted((s["id"] for s in listed), reverse=True)
    first = listed[0]
    for key in ("request_id", "method", "path", "differences", "primary", "shadow", "request", "instance", "seen"):
        assert key in first, key
    assert first["method"] == "GET" and first["path"] == "/users/6"
    assert {side: first[side]["status"] for side in ("primary", "shadow")} == {"primary": 200, "shadow": 200}
    assert dict(first["primary"]["headers"])["Content-Type"].startswith("application/json")
    assert first["differences"][0]["path"] == "$.plan"

    status, body = await api(proxy, f"/api/v1/samples?route={USERS}&path=$.plan&limit=2")
    assert [s["id"] for s in body["samples"]] == [s["id"] for s in listed[:2]]
    status, body = await api(proxy, f"/api/v1/samples?route={USERS}&path=$.nothing")
    assert (status, body["samples"]) == (200, [])
    status, one = await api(proxy, f"/api/v1/samples/{first['id']}")
    assert status == 200 and one == first
    for path, expected in ((f"/api/v1/samples/{first['id'] + 1000}", 404), ("/api/v1/samples/abc", 400), ("/api/v1/samples", 400)):
        status, body = await api(proxy, path)
        assert status == expected and body["error"], (path, body)


async def test_with_the_store_off_the_api_shows_live_counts_and_no_samples(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """store.enabled false: no file is created, routes come from this process ("range": live), and the
    samples endpoints answer 503 saying the store is off."""
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"enabled": False}, routes=[USERS])
    await drive(proxy, [f"/users/{n}" for n in range(4)])
    status, view = await api(proxy, "/api/v1/routes")
    assert status == 200
    assert _users(view)["comparisons"]["mismatch"] == 2
    assert view["range"]["label"] == "live" and view["store"] is None
    for path in (f"/api/v1/samples?route={USERS}", "/api/v1/samples/1"):
        status, body = await api(proxy, path)
        assert status == 503 and "store.enabled" in body["error"]
    assert not (tmp_path / "state").exists()

"""The recorder against real proxies and real files: what it writes, exactly; redaction on disk;
rotation and the total cap; filters; and a directory that cannot be written costs clients nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import aiohttp
import orjson

from shadowdiff.publish.secrets import REDACTED
from shadowdiff.record.recorder import read
from tests.conftest import StartProxy, drive, metrics, settle, url_of

USERS = "/users/{id}"
SECRET = "k-5a4b3c2d1e0f9a8b7c6d"


def recorded(directory: Path) -> list[dict]:
    return [line for path in sorted(directory.glob("shadowdiff-*.jsonl.gz")) for line in read(path)]


async def test_each_compared_exchange_is_one_line_with_both_answers(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """record.enabled writes every compared exchange as one JSON line: route, request (method, target,
    headers), each side's status, headers and body, the differences, timing; the file is gzip."""
    directory = tmp_path / "rec"
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], routes=[USERS], record={"enabled": True, "directory": str(directory)})
    await drive(proxy, ["/users/1", "/users/2", "/same/3"])
    await proxy.stop()
    lines = recorded(directory)
    assert all(dict(x["request"]["headers"])["Host"] for x in lines)
    assert [(x["route"], x["target"], x["outcome"]) for x in lines] == [
        (USERS, "/users/1", "match"), (USERS, "/users/2", "mismatch"), ("/same/{id}", "/same/3", "match"),
    ]  # fmt: skip
    second = lines[1]
    assert second["method"] == "GET" and second["primary"]["status"] == 200 and second["shadow"]["status"] == 200
    assert second["primary"]["body"]["content"] == {"id": 2, "plan": "free"}
    assert second["shadow"]["body"]["content"] == {"id": 2, "plan": "pro"}
    assert [d["path"] for d in second["differences"]] == ["$.plan"]
    assert set(second["timing"]) == {"primary_ms", "shadow_ms"} and second["ts"].endswith("Z")
    assert metrics(proxy).value("shadowdiff_recorded_total") == 3
    [path] = directory.glob("*.jsonl.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"


async def test_secrets_are_redacted_before_they_reach_the_disk(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """A secret in the query, Authorization and a backend's Set-Cookie is in no byte of the recording,
    decompressed; the lines show where it was hidden."""
    directory = tmp_path / "rec"
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], record={"enabled": True, "directory": str(directory)})
    async with aiohttp.ClientSession() as client:
        async with client.get(url_of(proxy) + f"/echo?api_key={SECRET}", headers={"Authorization": f"Bearer {SECRET}"}) as response:
            assert response.status == 200
    await settle(proxy)
    await proxy.stop()
    raw = b"".join(gzip.decompress(p.read_bytes()) for p in directory.glob("*.jsonl.gz"))
    assert b"/echo" in raw and SECRET.encode() not in raw and b"sess-9f8e7d6c5b4a39281706" not in raw
    [line] = recorded(directory)
    assert line["target"] == f"/echo?api_key={REDACTED}" and dict(line["request"]["headers"])["Authorization"] == REDACTED


async def test_files_rotate_by_size_and_the_oldest_go_past_the_total(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """With a tiny record.max_file_bytes each file holds a line or two and a new one opens; with
    max_total_bytes the directory stays near its cap, the newest lines kept, every file readable."""
    directory = tmp_path / "rec"
    record = {"enabled": True, "directory": str(directory), "max_file_bytes": 200, "max_total_bytes": 3000}
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], routes=[USERS], record=record)
    await drive(proxy, [f"/users/{n}" for n in range(40)])
    await proxy.stop()
    files = sorted(directory.glob("*.jsonl.gz"))
    assert len(files) > 3
    assert sum(p.stat().st_size for p in files) <= 3000 + 2 * 600  # the cap, and the files written since the last check
    kept = recorded(directory)
    assert kept and kept[-1]["target"] == "/users/39" and len(kept) < 40


async def test_filters_and_only_mismatches(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """record.paths and record.only_mismatches keep out what they name; record.sample_rate 0 records nothing."""
    directory = tmp_path / "rec"
    record = {"enabled": True, "directory": str(directory), "paths": ["/users/*"], "only_mismatches": True}
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], routes=[USERS], record=record)
    await drive(proxy, ["/users/1", "/users/2", "/same/2", "/users/4"])
    await proxy.stop()
    assert [x["target"] for x in recorded(directory)] == ["/users/2", "/users/4"]
    none = tmp_path / "none"
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], record={"enabled": True, "directory": str(none), "sample_rate": 0})
    await drive(proxy, ["/users/1", "/users/2"])
    await proxy.stop()
    assert recorded(none) == []


async def test_a_directory_that_cannot_be_written_costs_clients_nothing(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """record.directory under a regular file (it cannot be created, whoever runs the test): every
    request is answered 200 and compared, every exchange not written is counted."""
    (tmp_path / "plain").write_text("a file")
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], routes=[USERS], record={"enabled": True, "directory": str(tmp_path / "plain" / "rec")}
    )
    await drive(proxy, [f"/users/{n}" for n in range(10)])
    await proxy.stop()
    m = metrics(proxy)
    assert m.value("shadowdiff_record_errors_total") == 10 and m.value("shadowdiff_recorded_total") == 0
    assert sum(m.value("shadowdiff_comparisons_total", route=USERS, outcome=o) for o in ("match", "mismatch")) == 10


def test_a_recording_cut_short_reads_up_to_its_last_whole_line(tmp_path: Path) -> None:
    """A file whose writer died mid-way (no gzip trailer, a partial line) reads back its whole lines."""
    path = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(b"".join(orjson.dumps({"n": n}) + b"\n" for n in range(3)) + b'{"n": 3')
    path.write_bytes(whole[: len(whole) - 8])  # the trailer gone
    assert [x["n"] for x in read(path)] == [0, 1, 2]

"""Samples are redacted before they are written: a secret a client or a backend sends is in no byte
of the store's files, and the API shows where it was hidden."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

from shadowdiff.publish.secrets import REDACTED
from tests.conftest import StartProxy, api, settle, url_of
from tests.store.apps import BACKEND_SECRET, KEY_SECRET

CLIENT_SECRETS = {
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2VjcmV0LXNpZ25hdHVyZQ",
    "api_key": "k-5a4b3c2d1e0f9a8b7c6d",
    "cookie": "sid-0a1b2c3d4e5f60718293",
    "password": "correct-horse-battery-staple-42",
}


async def test_no_secret_reaches_the_store_files(store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path) -> None:
    """Secrets in the query, Authorization, Cookie, a JSON body and the backends' Set-Cookie and JSON
    answer are absent from the SQLite file and its WAL; the stored sample shows them redacted."""
    path = tmp_path / "secrets.db"
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], store={"url": f"sqlite:///{path}"}, mirror={"methods": ["GET", "POST"]}
    )
    body = orjson.dumps({"user": "ada", "password": CLIENT_SECRETS["password"]})
    async with aiohttp.ClientSession() as client:
        async with client.post(
            url_of(proxy) + f"/echo?page=2&api_key={CLIENT_SECRETS['api_key']}",
            data=body,
            headers={
                "Authorization": f"Bearer {CLIENT_SECRETS['bearer']}",
                "Cookie": f"sid={CLIENT_SECRETS['cookie']}",
                "Content-Type": "application/json",
            },
        ) as response:
            assert response.status == 200
            answered = await response.read()
    assert CLIENT_SECRETS["api_key"].encode() in answered  # the client itself gets every byte back
    await settle(proxy)
    await proxy.flush_store()
    status, samples = await api(proxy, "/api/v1/samples?route=/echo")
    assert status == 200
    [sample] = samples["samples"]
    assert [d["path"] for d in sample["differences"]] == ["$.who"]
    assert sample["target"] == f"/echo?page=2&api_key={REDACTED}"
    headers = dict(sample["request"]["headers"])
    assert headers["Authorization"] == headers["Cookie"] == REDACTED
    assert sample["request"]["body"]["content"] == {"user": "ada", "password": REDACTED}
    assert dict(sample["primary"]["headers"])["Set-Cookie"] == f"session={REDACTED}"
    assert sample["shadow"]["body"]["content"]["session_token"] == REDACTED
    await proxy.stop()  # the last flush, and the WAL checkpointed or not: both files are read

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("secrets.db*"))
    assert b"ada" in stored  # what is no secret is kept (so the check below can fail)
    for name, secret in {**CLIENT_SECRETS, "backend": BACKEND_SECRET}.items():
        assert secret.encode() not in stored, f"the {name} secret is in the store"


async def test_a_multipart_body_and_a_token_as_a_key_stay_out_of_the_store(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """A multipart upload's password field is not stored (the body is kept as its type and size), and a
    token used as a JSON key is hidden in the sample, its differences and the field it is listed under."""
    path = tmp_path / "parts.db"
    proxy = await start_proxy(
        store_apps["primary"], store_apps["shadow"], store={"url": f"sqlite:///{path}"}, mirror={"methods": ["GET", "POST"]}
    )
    form = aiohttp.FormData()
    form.add_field("user", "ada")
    form.add_field("password", CLIENT_SECRETS["password"])
    form.add_field("avatar", b"\x89PNG...", filename="a.png", content_type="image/png")
    async with aiohttp.ClientSession() as client:
        async with client.post(url_of(proxy) + "/echo", data=form) as response:
            assert response.status == 200
        async with client.get(url_of(proxy) + "/keyed") as response:
            assert response.status == 200
    await settle(proxy)
    await proxy.flush_store()
    status, echoed = await api(proxy, "/api/v1/samples?route=/echo")
    assert echoed["samples"][0]["request"]["body"]["type"] == "multipart"
    status, keyed = await api(proxy, "/api/v1/samples?route=/keyed")
    [difference] = keyed["samples"][0]["differences"]
    assert KEY_SECRET not in difference["path"] and difference["path"].startswith("$.sessions")
    status, listed = await api(proxy, f"/api/v1/samples?route=/keyed&path={quote(difference['path'])}")
    assert len(listed["samples"]) == 1  # listed under the redacted path, as the field statistics name it
    await proxy.stop()

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("parts.db*"))
    assert b"ada" in stored  # the echoed form's other field: what is no secret is kept
    for secret in (CLIENT_SECRETS["password"], KEY_SECRET):
        assert secret.encode() not in stored, secret

"""Who may do what on the admin listener: probes and /metrics open, reads open until a viewer token
exists, changes only with an operator token, tokens compared in constant time and never shown, and
no open admin listener on a non-loopback address unless the config says so."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from shadowdiff import access as access_module
from shadowdiff.access import Access
from shadowdiff.config import AdminConfig, TokenConfig
from tests.backends import Backend, free_port
from tests.conftest import StartProxy, admin_url_of, serve_until_exit
from tests.tokens import EYES, OPS, admin_tokens


async def call(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as client:
        data = orjson.dumps(body) if body is not None else None
        async with client.request(method, url, headers=headers, data=data) as response:
            text = await response.text()
            try:
                parsed: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = text
            return response.status, dict(response.headers), parsed


PAUSE = {"mirroring": "paused"}


async def test_with_no_tokens_reads_are_open_and_every_change_is_refused(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """No admin.tokens: the API and the UI answer anyone; a change is a 403 saying no operator token is
    configured, audited as refused; mirroring stays on."""
    proxy = await start_proxy(primary.url, shadow.url)
    admin = admin_url_of(proxy)
    for path in ("/api/v1/routes", "/api/v1/controls", "/", "/metrics"):
        status, _, _ = await call("GET", admin + path)
        assert status == 200, path
    status, _, body = await call("POST", admin + "/api/v1/controls", body=PAUSE)
    assert status == 403 and "no operator token is configured" in body["error"]
    assert proxy.config.mirror.enabled
    [line] = [orjson.loads(x) for x in capsys.readouterr().out.splitlines() if '"event":"audit"' in x]
    assert line["result"].startswith("refused") and line["token"] is None


async def test_a_viewer_token_closes_reads_but_not_the_probes(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a viewer token exists, the API and the UI need a token (401 with WWW-Authenticate, wrong
    ones too); the viewer's and the operator's read; /metrics, /healthz and /readyz stay open."""
    proxy = await start_proxy(primary.url, shadow.url, admin=admin_tokens(tmp_path, monkeypatch))
    admin = admin_url_of(proxy)
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await call("GET", admin + path))[0] == 200, path
    for path in ("/api/v1/routes", "/api/v1/controls", "/"):
        status, headers, body = await call("GET", admin + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert (await call("GET", admin + path, "not-a-token-of-ours-123"))[0] == 401
        assert (await call("GET", admin + path, EYES[:-1] + "x"))[0] == 401  # one character off
        assert (await call("GET", admin + path, EYES))[0] == 200
        assert (await call("GET", admin + path, OPS))[0] == 200
    status, _, who = await call("GET", admin + "/api/v1/whoami", EYES)
    assert who == {"name": "eyes", "role": "viewer", "can_change": False}


async def test_changes_need_the_operators_token(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A change without a token is a 401, with the viewer's a 403, with the operator's it is made; each
    is audited with the token's name and the source address, and no token's value is in any line."""
    proxy = await start_proxy(primary.url, shadow.url, admin=admin_tokens(tmp_path, monkeypatch))
    url = admin_url_of(proxy) + "/api/v1/controls"
    assert (await call("POST", url, body=PAUSE))[0] == 401
    status, _, body = await call("POST", url, EYES, PAUSE)
    assert status == 403 and "viewer" in body["error"]
    assert proxy.config.mirror.enabled
    status, _, body = await call("POST", url, OPS, PAUSE)
    assert status == 200 and body["mirroring"] == "paused" and not proxy.config.mirror.enabled
    out = capsys.readouterr().out
    lines = [orjson.loads(x) for x in out.splitlines() if '"event":"audit"' in x]
    assert [(x["token"], x["result"].split(":")[0]) for x in lines] == [(None, "refused"), ("eyes", "refused"), ("ops", "accepted")]
    assert all(x["source"] == "127.0.0.1" for x in lines)
    assert OPS not in out and EYES not in out


def test_a_token_is_compared_with_every_configured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever token is sent, right or wrong, its SHA-256 is compared with each configured one's by
    hmac.compare_digest (constant time, of one length, and the count says nothing of which matched)."""
    admin = AdminConfig(tokens=tuple(TokenConfig(**t) for t in admin_tokens(tmp_path, monkeypatch)["tokens"]))
    checker = Access.of(admin)
    compared: list[bytes] = []
    real = access_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(access_module.hmac, "compare_digest", counting)
    for sent in (OPS, EYES, "wrong-token-0123456789"):
        compared.clear()
        checker.caller(f"Bearer {sent}")
        assert sorted(compared) == sorted(hashlib.sha256(t.encode()).digest() for t in (OPS, EYES))


@pytest.mark.parametrize(
    ("yaml", "said"),
    [
        ("admin: {tokens: [{name: ops, role: operator, token_env: NOT_SET_ANYWHERE}]}", "admin.tokens[0].token_env"),
        ("admin: {tokens: [{name: ops, role: operator, token_file: /nonexistent/t}]}", "admin.tokens[0].token_file"),
        ("admin: {tokens: [{name: ops, role: operator}]}", "admin.tokens[0]: give the token by token_file or token_env"),
        ("admin: {tokens: [{name: ops, role: root, token_env: X}]}", "admin.tokens[0].role"),
        ("admin: {tokens: [{name: ops, role: operator, token: abcdefabcdefabcdef}]}", "admin.tokens[0].token"),
    ],
)
async def test_a_token_that_cannot_be_used_stops_the_start_with_its_key(
    primary: Backend, tmp_path: Path, yaml: str, said: str
) -> None:
    """A token from an unset variable or an unreadable file, one with no source, a bad role, or a token
    written inline is exit 2 naming the key."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml + "\n")
    code, err = await serve_until_exit("--config", str(path), "--primary", primary.url, "--shadow", primary.url,
                                       "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")  # fmt: skip
    assert code == 2 and said in err.decode(), err


async def test_a_non_loopback_admin_address_with_no_tokens_refuses_to_start(primary: Backend, tmp_path: Path) -> None:
    """--admin 0.0.0.0:PORT with no admin.tokens exits 2 saying what to add; admin.allow_open: true lets it start."""
    code, err = await serve_until_exit("--primary", primary.url, "--shadow", primary.url, "--listen", "127.0.0.1:0",
                                       "--admin", "0.0.0.0:0")  # fmt: skip
    assert code == 2 and b"admin.listen: 0.0.0.0:0 is not a loopback address" in err and b"admin.allow_open" in err
    path = tmp_path / "open.yaml"
    path.write_text("admin: {allow_open: true}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowdiff", "serve", "--config", str(path), "--primary", primary.url,
        "--shadow", primary.url, "--listen", "127.0.0.1:0", "--admin", f"0.0.0.0:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        started = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b'"event":"started"' in started, started
    finally:
        process.kill()
        await process.communicate()


def test_a_browser_session_names_its_caller_and_needs_the_csrf_header_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sign_in(token) gives a random session id (not the token) that reads as its caller; a change
    with it needs the CSRF header; a wrong token gets no session; a signed-out one reads as no one."""
    admin = AdminConfig(tokens=tuple(TokenConfig(**t) for t in admin_tokens(tmp_path, monkeypatch)["tokens"]))
    checker = Access.of(admin)
    assert checker.sign_in("wrong-token-0123456789") is None
    session = checker.sign_in(OPS)
    assert session is not None and OPS not in session
    assert checker.check("GET", "/api/v1/routes", None, session=session).name == "ops"
    with pytest.raises(access_module.Denied) as refused:
        checker.check("POST", "/api/v1/controls", None, session=session)
    assert refused.value.status == 403 and "X-Shadowdiff-Request" in str(refused.value)
    assert checker.check("POST", "/api/v1/controls", None, session=session, csrf=True).role == "operator"
    checker.sign_out(session)
    with pytest.raises(access_module.Denied) as refused:
        checker.check("GET", "/api/v1/routes", None, session=session)
    assert refused.value.status == 401

"""The redaction corpus: requests and answers full of secrets, through a real `shadowdiff serve`.

Every secret below is a unique string. The proxy runs as its own process (two
workers, the access log on, debug level so shadow errors are logged too) with its
temporary directory inside the test's; afterwards every byte it wrote (stdout,
stderr, every file it created) is searched for every secret. The mismatches must
still be reported, at the paths where the secrets changed.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from tests.backends import serve_app
from tests.conftest import serving


def secret(name: str, side: str) -> str:
    return f"S3CR3T-{name}-{side}-q7x"


SIDES = ("p", "s")  # the primary's secret values, the shadow's


def jwt(side: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'sub': secret('jwt-claim', side)})}.{secret('jwtsig', side)}"


def json_body(side: str) -> dict:
    s = lambda name: secret(name, side)  # noqa: E731
    body = {
        "passwd": s("passwd"),
        "authToken": s("authToken"),
        "apiKey": s("apiKey"),
        "SECRET_KEY": s("SECRET_KEY"),
        "card_number": s("card"),
        "jwt": s("jwt-field"),
        "profile": {"Session-Id": s("session"), "name": f"user {side}"},
        "note": f"call with Bearer {s('bearer')} please",
        "callback": f"https://app.example/cb?state=1&access_token={s('query')}&x={side}",
        "embedded": orjson.dumps({"password": s("embedded"), "n": side}).decode(),
        "token_in_text": f"id {jwt(side)} end",
        "pairs": f"user=alice&password={s('pair')}&lang={side}",
        "authtoken": s("one-word-key"),
        "ndjson": '{"id":1,"secret":{"v":"' + s("ndjson") + '"}}\n{"id":2}',
    }
    if side == "s":  # a whole added subtree, whose secret keys are never differences of their own
        body["extra"] = {"credentials": {"privateKey": s("added-subtree"), "label": "k"}, "list": [{"pwd": s("added-list")}]}
    else:  # and a whole removed one
        body["legacy"] = {"auth": {"client_secret": s("removed-subtree")}}
    return body


def large_body(side: str) -> dict:
    """Over compare.offload_bytes: compared, redacted and cut in the comparison worker."""
    items = [{"id": i, "name": f"item {i}"} for i in range(3000)]
    items[1234] = {"id": 1234, "api_key": secret("large-key", side), "note": f"Bearer {secret('large-bearer', side)}"}
    return {"items": items}


def text_body(side: str) -> str:
    return (
        "report\n"
        f"password={secret('text-pass', side)}\n"
        f"Authorization: Bearer {secret('text-bearer', side)}\n"
        f"jwt {jwt(side)}\n"
        f"db postgres://admin:{secret('text-userinfo', side)}@db.internal/app\n"
        f"<login><password>{secret('xml', side)}</password></login>\n"
        f"Cookie: theme=dark; sid={secret('cookie-line', side)}\n"
        f"form user%5Bpassword%5D={secret('encoded-form', side)}&lang={side}\n"
    )


def multipart_body(side: str) -> tuple[bytes, str]:
    boundary = f"bnd{side}42"
    parts = {"user": "alice", "password": secret("multipart", side), "comment": f"v {side}"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in parts.items()
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def backend(side: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        route = request.path.strip("/").split("/")[0]
        if route == "json":
            return web.json_response(json_body(side))
        if route == "large":
            return web.json_response(large_body(side))
        if route == "text":
            return web.Response(text=text_body(side))
        if route == "form":
            form = f"user=alice&password={secret('form', side)}&token={secret('form-token', side)}&v={side}"
            return web.Response(text=form, content_type="application/x-www-form-urlencoded")
        if route == "multipart":
            body, content_type = multipart_body(side)
            return web.Response(body=body, headers={"Content-Type": content_type})
        if route == "headers":
            headers = {
                "Location": f"https://app.example/next?token={secret('location', side)}&v={side}",
                "X-Auth-Token": secret("x-auth-token", side),
                "Set-Cookie": f"session={secret('cookie', side)}; Path=/",
                "Link": f"<https://cdn.example/a?sig=1&apikey={secret('link', side)}>; rel=preload",
            }
            return web.Response(text="same", headers=headers)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


ROUTES = ("json", "large", "text", "form", "multipart", "headers")
# Secrets a client sends: in the query, the Referer, credentials headers, the request id.
CLIENT_SECRETS = {
    "query": secret("client-query", "c"),
    "referer": secret("client-referer", "c"),
    "authorization": secret("client-auth", "c"),
    "cookie": secret("client-cookie", "c"),
}


def all_secrets() -> list[str]:
    names = [
        "passwd", "authToken", "apiKey", "SECRET_KEY", "card", "jwt-field", "session", "bearer", "query", "embedded",
        "pair", "added-subtree", "added-list", "removed-subtree", "large-key", "large-bearer", "text-pass",
        "text-bearer", "text-userinfo", "jwt-claim", "jwtsig", "multipart", "form", "form-token", "location",
        "x-auth-token", "cookie", "link", "xml", "cookie-line", "encoded-form", "one-word-key", "ndjson",
    ]  # fmt: skip
    found = [secret(name, side) for name in names for side in SIDES]
    found += [base64.urlsafe_b64encode(orjson.dumps({"sub": secret("jwt-claim", side)})).rstrip(b"=").decode() for side in SIDES]
    return found + list(CLIENT_SECRETS.values())


def written(served_out: bytes, served_err: bytes, tmp: Path) -> dict[str, bytes]:
    """Every byte the proxy wrote: its stdout, its stderr, and every file under its temporary directory."""
    out = {"stdout": served_out, "stderr": served_err}
    for path in tmp.rglob("*"):
        if path.is_file():
            out[str(path)] = path.read_bytes()
    return out


async def test_no_secret_reaches_any_byte_the_proxy_writes(tmp_path: Path) -> None:
    """No secret of the corpus appears in stdout, stderr or any file the proxy created; every route's mismatch is
    still logged, with the differences at the secret paths."""
    runners = []
    urls = {}
    for side in SIDES:
        runner, urls[side] = await serve_app(backend(side))
        runners.append(runner)
    proxy_tmp = tmp_path / "proxy-tmp"
    proxy_tmp.mkdir()
    config = (
        f"primary: {{url: '{urls['p']}'}}\nshadow: {{url: '{urls['s']}'}}\n"
        "listen: {workers: 2}\nlogging: {access_log: true, level: debug}\n"
    )
    try:
        async with serving(config=config, tmp_path=tmp_path, env={"TMPDIR": str(proxy_tmp)}) as served:
            headers = {
                "Referer": f"https://shop.example/cart?session_token={CLIENT_SECRETS['referer']}",
                "Authorization": f"Bearer {CLIENT_SECRETS['authorization']}",
                "Cookie": f"session={CLIENT_SECRETS['cookie']}",
            }
            async with aiohttp.ClientSession() as client:
                for route in ROUTES:
                    for _ in range(2):  # each worker likely sees one
                        target = f"{served.url}/{route}?access_token={CLIENT_SECRETS['query']}&page=1"
                        async with client.get(target, headers=headers) as response:
                            assert response.status == 200
                            await response.read()
                async with client.get(served.admin_url + "/metrics") as response:
                    metrics_text = await response.read()
                # Wait for the comparisons to be logged (the large one goes through the worker).
                for _ in range(100):
                    async with client.get(served.admin_url + "/metrics") as response:
                        text = await response.text()
                    done = sum(
                        float(line.rsplit(" ", 1)[1])
                        for line in text.splitlines()
                        if line.startswith("shadowdiff_comparisons_total{")
                    )
                    if done >= 2 * len(ROUTES):
                        break
                    await asyncio.sleep(0.1)
            served.process.terminate()
            await served.process.wait()
    finally:
        for runner in runners:
            await runner.cleanup()

    outputs = written(served.out, served.err, proxy_tmp)
    outputs["metrics"] = metrics_text
    leaks = [(secret_text, where) for secret_text in all_secrets() for where, data in outputs.items() if secret_text.encode() in data]
    assert leaks == []

    lines = [orjson.loads(line) for line in served.out.splitlines() if line.startswith(b"{")]
    mismatches = [line for line in lines if line["event"] == "mismatch"]
    paths = {line["route"]: {d["path"] for d in line["differences"]} for line in mismatches}
    assert {"$.passwd", "$.authToken", "$.apiKey", "$.SECRET_KEY", "$.extra", "$.legacy"} <= paths["/json"]
    assert "$.items[1234].api_key" in paths["/large"]
    assert "$.password" in paths["/multipart"] and "location" in paths["/headers"] and "x-auth-token" in paths["/headers"]
    assert {"/text", "/form"} <= paths.keys()
    access = [line for line in lines if line["event"] == "access"]
    assert len(access) == 2 * len(ROUTES) and all("access_token=[REDACTED]" in line["target"] for line in access)

"""Upgrades: WebSockets relayed both ways to the primary and never mirrored; other upgrades declined."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from tests import rawhttp
from tests.backends import Backend, serve_app
from tests.conftest import StartProxy, metrics, settle, until, url_of


@dataclass
class WebSocketPrimary:
    url: str
    seen_close: list  # (type, code, reason) of the close frames the primary received


@pytest.fixture
async def websocket_primary() -> AsyncIterator[WebSocketPrimary]:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        await ws.send_str("hello " + request.headers.get("X-Who", "?"))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def hang_up(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.close(code=4001, message=b"bye")
        return ws

    async def client_closes(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        seen_close.append((message.type, message.data, message.extra))
        return ws

    async def private(request: web.Request) -> web.Response:
        return web.Response(status=401, text="who are you", headers={"WWW-Authenticate": 'Bearer realm="ws"'})

    seen_close: list = []
    app = web.Application()
    app.router.add_get("/ws", echo)
    app.router.add_get("/hang-up", hang_up)
    app.router.add_get("/client-closes", client_closes)
    app.router.add_get("/private", private)
    runner, url = await serve_app(app)
    yield WebSocketPrimary(url, seen_close)
    await runner.cleanup()


async def test_websocket_is_relayed_both_ways_and_not_mirrored(
    websocket_primary: WebSocketPrimary, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Frames flow both ways through the proxy with the primary's subprotocol, past primary.timeout of idleness; the shadow gets nothing."""
    proxy = await start_proxy(websocket_primary.url, shadow.url, primary={"timeout": 0.3})
    async with client.ws_connect(url_of(proxy) + "/ws", protocols=("chat", "other"), headers={"X-Who": "ann"}) as ws:
        assert ws.protocol == "chat"
        assert await ws.receive_str(timeout=2) == "hello ann"
        await asyncio.sleep(0.6)  # idle past primary.timeout: a WebSocket has no read deadline
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=2) == "echo:hi"
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes(timeout=2) == b"cba"
    # The handler returns once both directions have closed.
    await until(lambda: metrics(proxy).value("shadowdiff_requests_total", status="101") == 1)
    await settle(proxy)
    assert shadow.seen == []


async def test_websocket_refused_by_the_primary_keeps_its_status(
    websocket_primary: WebSocketPrimary, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A primary that refuses the upgrade (404, 401 with WWW-Authenticate) gives the client that status and its headers."""
    proxy = await start_proxy(websocket_primary.url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url_of(proxy) + "/nowhere")
    assert refused.value.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as unauthorized:
        await client.ws_connect(url_of(proxy) + "/private")
    assert unauthorized.value.status == 401
    assert unauthorized.value.headers["WWW-Authenticate"] == 'Bearer realm="ws"'
    assert unauthorized.value.headers["Via"] == "1.1 shadowdiff"


async def test_websocket_close_codes_pass_through(
    websocket_primary: WebSocketPrimary, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """The primary's close code and reason reach the client, and the client's reach the primary."""
    proxy = await start_proxy(websocket_primary.url)
    async with client.ws_connect(url_of(proxy) + "/hang-up") as ws:
        await ws.send_str("anything")
        message = await ws.receive(timeout=2)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "bye")
    async with client.ws_connect(url_of(proxy) + "/client-closes") as ws:
        await ws.close(code=4002, message=b"done")
    await until(lambda: websocket_primary.seen_close)
    assert [(data, extra) for _, data, extra in websocket_primary.seen_close] == [(4002, "done")]


async def test_h2c_upgrade_is_never_forwarded(primary: Backend, start_proxy: StartProxy) -> None:
    """An h2c upgrade is declined: answered over HTTP/1.1 with the connection closed after it, and the primary sees no Upgrade."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(
        url_of(proxy),
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.values("Connection") == ["close"]  # a request pipelined behind it is retried, not lost
    assert [s.raw_path for s in primary.seen] == ["/echo"]
    assert not primary.seen[0].has("Upgrade") and not primary.seen[0].has("HTTP2-Settings")

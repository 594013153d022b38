"""WebSocket upgrades: relayed to the primary in both directions, never mirrored.

A WebSocket is a conversation, not an exchange: there is no one answer to compare,
and replaying a client's frames to a candidate could act twice on its behalf. So
the proxy completes the handshake with the primary first (its status and chosen
subprotocol decide the client's handshake), then pumps frames both ways until
either side closes. Other upgrades (h2c) are declined: the Upgrade header is
hop-by-hop, so the request is served as plain HTTP/1.1 and the upgrade is never
forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from shadowdiff.forward import CapturedRequest, Upstream, UpstreamError, classify

# The proxy runs its own handshake with the primary; these belong to the client's.
_HANDSHAKE = ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol")


class Refused(Exception):
    """The primary answered the handshake with a status other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"primary answered {status}")
        self.status = status


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    upgrade = {t.strip().lower() for t in request.headers.get("Upgrade", "").split(",")}
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return request.method == "GET" and "websocket" in upgrade and "upgrade" in connection


async def relay(request: web.BaseRequest, captured: CapturedRequest, primary: Upstream) -> web.StreamResponse:
    """Open the primary's WebSocket, then the client's, and pump frames until one closes.

    Raises UpstreamError when the primary cannot be reached, Refused when it says no.
    """
    headers = CIMultiDict(captured.headers)
    for name in _HANDSHAKE:
        headers.popall(name, None)
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    try:
        upstream = await primary.websocket(captured, headers, protocols)
    except aiohttp.WSServerHandshakeError as exc:
        raise Refused(exc.status) from exc
    except Exception as exc:
        raise UpstreamError(classify(exc), str(exc) or type(exc).__name__) from exc
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoclose=False,
        autoping=False,  # pings and pongs are relayed, not answered by the proxy
        max_msg_size=0,
        compress=False,
    )
    try:
        await client.prepare(request)
        await _pump(client, upstream)
    finally:
        await upstream.close()
    return client


async def _pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    to_primary = asyncio.ensure_future(_copy(client, upstream))
    to_client = asyncio.ensure_future(_copy(upstream, client))
    try:
        await asyncio.wait((to_primary, to_client), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_primary, to_client):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if not client.closed:
            with contextlib.suppress(ConnectionError):
                await client.close()


async def _copy(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for message in source:
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.PING:
            await sink.ping(message.data)
        elif message.type == WSMsgType.PONG:
            await sink.pong(message.data)
        elif message.type == WSMsgType.CLOSE:
            await sink.close(code=message.data or 1000, message=(message.extra or "").encode())
            return
        else:  # CLOSING, CLOSED, ERROR: the source is gone
            return
    if not sink.closed:
        await sink.close()

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

from shadowdiff.http.errors import UpstreamError, classify, describe
from shadowdiff.http.forwarding import tokens
from shadowdiff.http.upstream import Upstream
from shadowdiff.model import CapturedRequest

# The proxy runs its own handshake with the primary; these belong to the client's.
_HANDSHAKE = ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol")
# A larger message closes the WebSocket with 1009 rather than being held in memory.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011


class Refused(Exception):
    """The primary answered the handshake with a status other than 101 (status and headers kept)."""

    def __init__(self, status: int, headers: CIMultiDict[str]) -> None:
        super().__init__(f"primary answered {status}")
        self.status = status
        self.headers = headers


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    headers = request.headers
    return request.method == "GET" and "websocket" in tokens(headers, "Upgrade") and "upgrade" in tokens(headers, "Connection")


async def relay(request: web.BaseRequest, captured: CapturedRequest, primary: Upstream) -> web.StreamResponse:
    """Open the primary's WebSocket, then the client's, and pump frames until one closes.

    Raises UpstreamError when the primary cannot be reached, Refused when it says no.
    """
    headers = CIMultiDict(captured.headers)
    for name in _HANDSHAKE:
        headers.popall(name, None)
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    try:
        upstream = await primary.websocket(captured, headers, protocols, websocket_limit=MAX_MESSAGE_BYTES)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 101:  # it agreed, but its handshake was wrong (bad Sec-WebSocket-Accept...)
            raise UpstreamError("protocol", exc.message) from exc
        raise Refused(exc.status, CIMultiDict(exc.headers or {})) from exc
    except Exception as exc:
        raise UpstreamError(classify(exc), describe(exc)) from exc
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoclose=False,
        autoping=False,  # pings and pongs are relayed, not answered by the proxy
        max_msg_size=MAX_MESSAGE_BYTES,
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


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _copy(source: Socket, sink: Socket) -> None:
    """Relay frames from source to sink; on a close, pass its code and reason on.

    receive(), not `async for`: the iterator stops at a CLOSE frame without handing
    it over, and its code would be lost.
    """
    while True:
        message = await source.receive()
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.PING:
            await sink.ping(message.data)
        elif message.type == WSMsgType.PONG:
            await sink.pong(message.data)
        elif message.type == WSMsgType.CLOSE:
            code, reason = message.data or 1000, (message.extra or "").encode()
            await sink.close(code=code, message=reason)
            await source.close(code=code, message=reason)  # answer the close we received
            return
        else:  # CLOSING, CLOSED, ERROR: the source went away without a close frame
            code = source.close_code or (_INTERNAL_ERROR if message.type == WSMsgType.ERROR else _GOING_AWAY)
            await sink.close(code=code)
            return

"""Every aiohttp internal shadowdiff relies on (all named in shadowdiff.http._aiohttp) is still there, as used.

An aiohttp release that renames, removes or re-shapes one of them fails here, by name,
instead of failing in production as a 502 or a hung request.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import requires, version

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage, StreamWriter
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import StreamReader
from multidict import CIMultiDict
from packaging.requirements import Requirement

from shadowdiff.http import _aiohttp


def test_installed_aiohttp_is_in_the_pinned_range() -> None:
    """The aiohttp installed satisfies the range pyproject.toml pins (a compatible release, not just any newer one)."""
    (pin,) = [Requirement(r) for r in requires("shadowdiff") or [] if Requirement(r).name == "aiohttp"]
    assert str(pin.specifier).startswith("~="), pin
    assert pin.specifier.contains(version("aiohttp")), (pin, version("aiohttp"))
    assert aiohttp.__version__ == version("aiohttp")


def test_client_protocol_surface() -> None:
    """ResponseHandler keeps the methods, keyword arguments and properties the pooled client uses."""
    params = inspect.signature(ResponseHandler.set_response_params).parameters
    for name in ("skip_payload", "read_until_eof", "auto_decompress", "read_timeout", "max_line_size", "max_field_size", "max_headers"):
        assert name in params and params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    for method in ("start_timeout", "read", "is_connected", "close", "force_close", "data_received", "exception", "__len__"):
        assert callable(getattr(ResponseHandler, method, None)), method
    assert inspect.iscoroutinefunction(ResponseHandler.read)
    assert inspect.iscoroutinefunction(ResponseHandler._drain_helper)
    assert isinstance(ResponseHandler.should_close, property)
    assert isinstance(ResponseHandler.read_timeout, property) and ResponseHandler.read_timeout.fset is not None
    assert list(inspect.signature(ResponseHandler.__init__).parameters) == ["self", "loop"]


async def test_client_protocol_behaviour() -> None:
    """A fresh protocol: no transport, nothing queued, and a read timeout that can be changed in place."""
    protocol = _aiohttp.ClientProtocol(asyncio.get_running_loop())
    assert protocol.transport is None and len(protocol) == 0 and protocol.exception() is None
    assert not _aiohttp.has_answer(protocol)
    protocol.read_timeout = 2.5
    assert protocol.read_timeout == 2.5


def test_header_serializer() -> None:
    """_serialize_headers(line, headers) gives the wire bytes and refuses a value that would split the request."""
    assert list(inspect.signature(_serialize_headers).parameters)[:2] == ["status_line", "headers"]
    wire = _aiohttp.serialize_head("GET /x HTTP/1.1", CIMultiDict([("Host", "h"), ("X-A", "1")]))
    assert wire == b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
    with pytest.raises(ValueError):
        _aiohttp.serialize_head("GET /x HTTP/1.1", CIMultiDict([("X-Evil", "a\r\nX-Injected: 1")]))


def test_response_message_and_reader_fields() -> None:
    """The response head and body reader expose what the relay reads."""
    for field in ("code", "reason", "headers", "raw_headers"):
        assert hasattr(RawResponseMessage, field), field
    for attribute in ("readany", "is_eof", "total_bytes"):
        assert hasattr(StreamReader, attribute), attribute
    assert _aiohttp.RawResponseMessage is RawResponseMessage and _aiohttp.StreamReader is StreamReader


def test_low_level_server_hooks() -> None:
    """web.Server builds a protocol per connection in __call__ and is told of its end in connection_lost(handler, exc)."""
    assert list(inspect.signature(web.Server.__call__).parameters) == ["self"]
    assert list(inspect.signature(web.Server.connection_lost).parameters) == ["self", "handler", "exc"]
    init = inspect.signature(web.Server.__init__).parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in init.values())  # handler options pass through
    for option in ("max_headers", "max_line_size", "max_field_size", "keepalive_timeout", "lingering_time", "auto_decompress"):
        assert option in inspect.signature(web.RequestHandler.__init__).parameters, option


async def test_server_admit_hook_builds_aiohttp_handlers() -> None:
    """Server.__call__ asks admit(): None gives a Connection (aiohttp's RequestHandler), a protocol refuses the connection."""

    class Refusing(_aiohttp.Server):
        def admit(self) -> asyncio.BaseProtocol | None:
            return asyncio.Protocol()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    assert isinstance(_aiohttp.Server(handler)(), _aiohttp.Connection)
    assert issubclass(_aiohttp.Connection, web.RequestHandler)
    assert type(Refusing(handler)()) is asyncio.Protocol


def test_request_handler_internals() -> None:
    """RequestHandler keeps what Connection reads and overrides: its message queue and counters, the error
    record it queues, and the methods it wraps, with the signatures it calls them by."""
    from aiohttp.web_protocol import _ErrInfo

    for slot in ("_messages", "_request_count", "_request_in_progress", "_payload_parser", "_waiter", "_force_close", "_close"):
        assert slot in web.RequestHandler.__slots__, slot
    assert "_upgraded" in dir(web.RequestHandler)  # BaseProtocol's
    assert list(inspect.signature(_ErrInfo).parameters) == ["status", "exc", "message"]
    assert list(inspect.signature(web.RequestHandler.handle_error).parameters) == ["self", "request", "status", "exc", "message"]
    assert list(inspect.signature(web.RequestHandler.finish_response).parameters) == ["self", "request", "resp", "start_time"]
    assert inspect.iscoroutinefunction(web.RequestHandler.finish_response)
    for method in ("data_received", "connection_made", "connection_lost", "force_close"):
        assert callable(getattr(web.RequestHandler, method)), method


def test_request_parser_rejections_read_as_too_large() -> None:
    """The request parser's own refusals for a head past its limits are what request_head_too_large() turns into 431."""
    assert _aiohttp.request_head_too_large(LineTooLong(b"x" * 10, 8190))
    assert _aiohttp.request_head_too_large(BadHttpMessage("Too many headers received"))
    assert _aiohttp.request_head_too_large(_aiohttp.HeadTooLarge())
    assert not _aiohttp.request_head_too_large(BadHttpMessage("Invalid method"))
    assert not _aiohttp.request_head_too_large(None)


def test_own_response_drops_the_server_header() -> None:
    """StreamResponse still names the Server header it adds in _prepare_headers, which OwnResponse removes."""
    from aiohttp.http import SERVER_SOFTWARE

    assert "aiohttp" in SERVER_SOFTWARE
    assert "hdrs.SERVER" in inspect.getsource(web.StreamResponse._prepare_headers)


def test_stream_response_internals() -> None:
    """StreamResponse has the head switch, keeps the header collection it is given, and prepares headers in a coroutine."""
    assert isinstance(web.StreamResponse._send_headers_immediately, bool)
    assert inspect.iscoroutinefunction(web.StreamResponse._prepare_headers)
    assert list(inspect.signature(web.StreamResponse._prepare_headers).parameters) == ["self"]
    headers = CIMultiDict([("X-A", "1")])
    response = _aiohttp.RelayedResponse(status=200, reason=None, headers=headers, head_alone=False)
    assert response.headers is headers
    assert response._send_headers_immediately is False


def test_writer_counts_its_output() -> None:
    """StreamWriter keeps output_size, which write_interim() resets after a 100 Continue."""
    assert isinstance(StreamWriter.output_size, int)


def test_parser_rejections_read_as_too_large() -> None:
    """The texts head_too_large() looks for are still the ones aiohttp's parser uses for a head past its limits."""
    assert _aiohttp.head_too_large(LineTooLong(b"x" * 10, 8190))
    assert _aiohttp.head_too_large(BadHttpMessage("Too many headers received"))
    assert not _aiohttp.head_too_large(BadHttpMessage("Invalid method"))

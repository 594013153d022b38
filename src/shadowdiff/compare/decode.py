"""Content-Encoding decoding with a hard cap on the decoded size.

A compression bomb (a few KB that expand to GBs) stops at `limit + 1` bytes of
output and raises `TooLarge`; it is never expanded in full.
"""

from __future__ import annotations

import zlib

try:  # br support is optional: install shadowdiff[br] (or brotli) for it
    import brotli
except ImportError:  # pragma: no cover - exercised where brotli is absent
    brotli = None


class TooLarge(Exception):
    """The decoded body would pass the cap."""


class Undecodable(Exception):
    """Unknown encoding or corrupt data: compare the encoded bytes instead."""


def codings(header: str | None) -> list[str]:
    """Content-Encoding values in the order they were applied, identity dropped."""
    if not header:
        return []
    return [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]


def decode(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo each content coding (last applied first), never producing more than `limit` bytes.

    An identity body is returned as it is: it is already bounded by compare.max_body_bytes.
    """
    for coding in reversed(codings(content_encoding)):
        if coding in ("gzip", "x-gzip"):
            data = _zlib(data, zlib.MAX_WBITS | 16, limit)
        elif coding == "deflate":
            try:
                data = _zlib(data, zlib.MAX_WBITS, limit)
            except Undecodable:  # some servers send raw deflate without the zlib wrapper
                data = _zlib(data, -zlib.MAX_WBITS, limit)
        elif coding == "br" and brotli is not None:
            data = _brotli(data, limit)
        else:
            raise Undecodable(f"content coding {coding!r} is not supported")
    return data


def _zlib(data: bytes, wbits: int, limit: int) -> bytes:
    """Decode every member (gzip allows several, concatenated); a stream cut short is undecodable."""
    out = bytearray()
    while data:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise Undecodable(str(exc)) from exc
        if len(out) > limit or decoder.unconsumed_tail:
            raise TooLarge(f"decoded body over {limit} bytes")
        if not decoder.eof:
            raise Undecodable("compressed stream ends early")
        data = decoder.unused_data
        if wbits != zlib.MAX_WBITS | 16 and data:
            raise Undecodable("data after the end of the deflate stream")
    return bytes(out)


def _brotli(data: bytes, limit: int) -> bytes:
    decoder = brotli.Decompressor()
    try:
        out = decoder.process(data, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise Undecodable(str(exc)) from exc
    if len(out) > limit or not decoder.can_accept_more_data():
        raise TooLarge(f"decoded body over {limit} bytes")
    if not decoder.is_finished():
        raise Undecodable("brotli stream ends early")
    return out

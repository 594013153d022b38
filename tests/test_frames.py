"""Framed messages between shadowdiff's processes: whole frames out of pieces, exact reads, bounded sizes."""

from __future__ import annotations

import asyncio
import os

import pytest

from shadowdiff import frames


def test_decoder_yields_whole_messages_from_any_split() -> None:
    """Three messages fed one byte at a time come out whole and in order; a partial frame is held."""
    stream = b"".join(frames.encode(m) for m in (("start", 1), {"a": [1, 2]}, "last"))
    decoder, out = frames.Decoder(), []
    for i in range(len(stream) - 1):
        out += decoder.feed(stream[i : i + 1])
    assert out == [("start", 1), {"a": [1, 2]}] and decoder.pending > 0
    assert decoder.feed(stream[-1:]) == ["last"] and decoder.pending == 0


def test_a_frame_past_the_limit_is_refused_unread() -> None:
    """A length over max_bytes is a FrameError, before any of the frame is buffered."""
    with pytest.raises(frames.FrameError, match="over the 100-byte limit"):
        frames.Decoder(max_bytes=100).feed(frames.encode(b"x" * 500)[:8])


def test_blocking_read_takes_exactly_one_frame() -> None:
    """read_blocking() returns one message and leaves the bytes after it in the pipe; a clean end is EOFError."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, frames.encode("first") + b"rest")
        os.close(write_end)
        assert frames.read_blocking(read_end) == "first"
        assert os.read(read_end, 100) == b"rest"
        with pytest.raises(EOFError):
            frames.read_blocking(read_end)
    finally:
        os.close(read_end)


async def test_async_read_and_a_stream_cut_mid_frame() -> None:
    """read() gets a message from an asyncio stream; a stream that ends inside a frame is a FrameError."""
    reader = asyncio.StreamReader()
    reader.feed_data(frames.encode(("ok", 3)) + frames.encode("cut")[:-1])
    reader.feed_eof()
    assert await frames.read(reader) == ("ok", 3)
    with pytest.raises(frames.FrameError):
        await frames.read(reader)

"""The model's one piece of behaviour: keeping a streamed body within a bound."""

from __future__ import annotations

from shadowdiff.model import BodyCapture


def test_body_capture_keeps_small_bodies_and_digests_large_ones() -> None:
    """Up to the limit the bytes are kept; past it only a digest is, and it equals the digest of the whole body."""
    import hashlib

    small = BodyCapture(10)
    for piece in (b"abc", b"def"):
        small.feed(piece)
    assert small.result().data == b"abcdef"

    large = BodyCapture(10)
    pieces = [b"x" * 7, b"y" * 7, b"z" * 1000]
    for piece in pieces:
        large.feed(piece)
    body = large.result()
    assert body.data is None
    assert body.size == 1014
    assert body.digest == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert large.retained == 0  # nothing kept in memory past the limit

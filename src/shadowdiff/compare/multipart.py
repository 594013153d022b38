"""Multipart bodies (RFC 7578 form data, RFC 2046 multipart/*) read as a mapping of their parts.

Two multipart answers differ in their boundaries whatever their content, and a line
diff would show a part's value without the name it belongs to (so a password part
could not be told from any other line). Read as `{name: value}`, parts compare like
JSON fields: `$.password`, which redaction knows by its name.
"""

from __future__ import annotations

import hashlib

_MAX_PARTS = 1000


class NotMultipart(Exception):
    """No boundary, or a body that does not follow it."""


def boundary(content_type: str) -> str | None:
    """The boundary parameter of a multipart content type, or None."""
    kind, _, params = content_type.partition(";")
    if not kind.strip().lower().startswith("multipart/"):
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def parts(data: bytes, boundary: str) -> dict[str, str]:
    """`{part name: value}`: a part's text, or a digest for a part that is not UTF-8 text.

    A part is named by its Content-Disposition `name` (or `filename`), else by its
    position; a repeated name gets `#2`, `#3`... Raises NotMultipart.
    """
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = data.split(delimiter)
    if len(chunks) < 3 or len(chunks) > _MAX_PARTS + 2:
        raise NotMultipart("no parts between boundaries")
    out: dict[str, str] = {}
    for index, chunk in enumerate(chunks[1:-1]):
        head, sep, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise NotMultipart(f"part {index} has no header end")
        name = _name(head) or str(index)
        if name in out:
            count = 2
            while f"{name}#{count}" in out:
                count += 1
            name = f"{name}#{count}"
        out[name] = _value(body.removesuffix(b"\r\n"))
    return out


def _name(head: bytes) -> str | None:
    for line in head.decode("latin-1").split("\r\n"):
        field, _, value = line.partition(":")
        if field.strip().lower() != "content-disposition":
            continue
        for param in value.split(";")[1:]:
            key, _, text = param.strip().partition("=")
            if key.strip().lower() in ("name", "filename"):
                return text.strip().strip('"')
    return None


def _value(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return f"sha256:{hashlib.sha256(body).hexdigest()[:16]}... ({len(body)} bytes)"

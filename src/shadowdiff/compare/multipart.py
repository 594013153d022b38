"""Multipart bodies (RFC 7578 form data, RFC 2046 multipart/*) read as a mapping of their parts.

Two multipart answers differ in their boundaries whatever their content, and a line
diff would show a part's value without the name it belongs to (so a password part
could not be told from any other line). Read as `{name: value}`, parts compare like
JSON fields: `$.password`, which redaction knows by its name.
"""

from __future__ import annotations

import hashlib

from shadowdiff.compare.budget import UNBOUNDED, Budget

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


def parts(data: bytes, boundary: str, budget: Budget = UNBOUNDED) -> dict[str, str]:
    """`{part name: value}`: a part's text, or a digest for a part that is not UTF-8 text.

    A part is named by its Content-Disposition `name` (else its `filename`, else its
    position); a repeated name gets `#2`, `#3`... Each part costs a budget step. Raises
    NotMultipart (the caller compares the bytes by digest then, never line by line: a
    value's line would show without the name it belongs to).
    """
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = data.split(delimiter)
    if len(chunks) < 3 or len(chunks) > _MAX_PARTS + 2:
        raise NotMultipart("no parts between boundaries")
    out: dict[str, str] = {}
    seen: dict[str, int] = {}  # name -> how many parts had it (repeats are numbered in one step)
    for index, chunk in enumerate(chunks[1:-1]):
        budget.spend(1 + len(chunk) // 4096)
        head, sep, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise NotMultipart(f"part {index} has no header end")
        name = _name(head) or str(index)
        count = seen.get(name, 0) + 1
        seen[name] = count
        key = name if count == 1 else f"{name}#{count}"
        while key in out:  # a literal "a#2" part before the second "a"
            count += 1
            key = f"{name}#{count}"
        out[key] = _value(body.removesuffix(b"\r\n"))
    return out


def _name(head: bytes) -> str | None:
    """The part's form field name, else its file name (whatever their order)."""
    for line in head.decode("latin-1").split("\r\n"):
        field, _, value = line.partition(":")
        if field.strip().lower() != "content-disposition":
            continue
        params = {}
        for param in value.split(";")[1:]:
            key, _, text = param.strip().partition("=")
            params.setdefault(key.strip().lower(), text.strip().strip('"'))
        return params.get("name") or params.get("filename")
    return None


def _value(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return f"sha256:{hashlib.sha256(body).hexdigest()[:16]}... ({len(body)} bytes)"

"""Credential shapes in a string, found and hidden: one pass of RE2 driven by position.

`TextScrubber.scrub(text)` hides what `publish.secrets` recognises in text: a pair
whose name is secret (`password=...`, `"apiKey": "..."`, `<token>...</token>`,
`Cookie: ...` to the end of its line, a multipart part `name="password"`), and values that look like credentials
wherever they are. The scan goes through RE2's C object, match by match, so that a
pair's value that is really the next pair's name (`params: password=x`) is scanned
again, never recursed into; it handles at most _VALUE_MATCHES shapes in one value and,
while a report is being made, `report_left` in all: past them the rest is hidden.
`publish.redact` decides what to scrub and cuts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from shadowdiff.compare.patterns import UserPattern
from shadowdiff.publish.secrets import (
    GROUPS, LONE_SHAPES, REDACTED, SHAPES, KeyFamilies, basic_credentials, luhn, model_token, suspect,
)  # fmt: skip

_MAX_NESTED = 3  # quoted values scanned inside one another (escaped JSON), at most
_CUT = "\x00(hide the rest)\x00"  # what _shape leaves where a secret's object or list begins
_CUT_LINE = "\x00(hide the line)\x00"  # and where a secret header-like line's value begins
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_VALUE_MATCHES = 64  # credential shapes handled in one value; past them its rest is hidden
REST_HIDDEN = "...(rest hidden)"
_REST_HIDDEN = REST_HIDDEN.encode()
_WORD_ENDS = frozenset(b" \t\r\n&,;\"'<>")


class TextScrubber:
    """Scrubs strings for one Redactor: `family` tells a key's family (cached by the Redactor),
    `user` are the user's patterns (hidden wherever they match)."""

    def __init__(self, family: Callable[[str], str | None], *, user: tuple[UserPattern, ...]) -> None:
        self.family = family
        self.user = user
        self.report_left: int | None = None  # shapes the report being made may still handle
        self._nested = 0

    def scrub(self, text: str) -> str:
        """`text` with its credential shapes and the user's patterns hidden (not cut)."""
        if suspect(text):
            text = self._sub(SHAPES, text)
            if _CUT in text:  # a secret key's object or list in text: hidden to the end
                text = text.partition(_CUT)[0] + REST_HIDDEN
            while _CUT_LINE in text:  # a secret header-like line in text: hidden to the line's end
                before, _, after = text.partition(_CUT_LINE)
                text = before + after[after.find("\n") :] if "\n" in after else before
        for pattern in self.user:
            text = pattern.sub(REDACTED, text)
        return text

    def lone(self, text: str) -> str:
        """`text` with credential shapes hidden, pairs aside (for keys and paths: names, not pairs)."""
        return self._sub(LONE_SHAPES, text)

    def _sub(self, shapes: UserPattern, text: str) -> str:
        """`text` with every credential shape `shapes` finds replaced as `_shape` says, driven by
        position through RE2's C object: `_shape` may resume the scan inside its match (a pair's
        value that is the next pair's name). Past _VALUE_MATCHES (or what the report has left)
        the rest of `text` is hidden."""
        data = text.encode("utf-8", "surrogatepass")
        out: list[bytes] = []
        kept = pos = 0
        left = self.report_left
        for _ in range(_VALUE_MATCHES if left is None else min(_VALUE_MATCHES, left)):
            spans = shapes.spans(data, pos)
            start, stop = spans[0]
            if start < 0:
                break
            if self.report_left is not None:
                self.report_left -= 1
            found = Found(data, spans)
            out += (data[kept:start], self._shape(found).encode("utf-8", "surrogatepass"))
            kept = pos = found.resume if found.resume is not None else stop
        else:
            if shapes.spans(data, pos)[0][0] >= 0:
                out.append(_REST_HIDDEN)
                kept = len(data)
        out.append(data[kept:])
        return b"".join(out).decode("utf-8", "surrogatepass")

    def _shape(self, match: Found) -> str:
        part = match[GROUPS["part_name"]]
        if part is not None:  # a multipart part's value: hidden when its name is a secret's
            head, value = match[GROUPS["part"]], match[GROUPS["part_value"]]
            family = self.family(part)
            if family is None or self._shown(part, family, value.strip(), ""):
                return head + self._sub(LONE_SHAPES, value)
            return head + REDACTED
        if match[GROUPS["name"]] is not None:
            name, assign, value = match[GROUPS["name"]], match[GROUPS["assign"]], match[GROUPS["value"]]
            judged = name.strip('"')
            family = self.family(unquote(judged) if "%" in judged else judged)
            if value in ("{", "["):  # an object or a list follows: a secret's is hidden to the end
                return name + assign + REDACTED + _CUT if family is not None else match[0]
            quote = next((q for q in ('\\"', '"', "'") if value.startswith(q) and len(value) > len(q)), "")
            if family is None and not quote and (match.after(1) in (b":", b"=") or match.after(3).lower() == b"%3d"):
                match.resume = match.start(GROUPS["value"])  # "params: password=x": the value is the next name
                return name + assign
            if family is None or self._shown(judged, family, value, quote):
                # An ordinary pair (or a count): an unquoted value is scanned for shapes, never pairs
                # (it holds no "=": the next pair is the outer scan's); a quoted one, which may hold
                # escaped JSON, for pairs too, one level of escaping at a time (bounded).
                if quote and self._nested < _MAX_NESTED:
                    self._nested += 1
                    try:
                        return name + assign + self._sub(SHAPES, value)
                    finally:
                        self._nested -= 1
                return name + assign + self._sub(LONE_SHAPES, value)
            if not quote:
                match.resume = match.extend()  # "password=abc=def": the whole word, not up to its "="
                if ":" in assign and "=" not in assign:
                    return name + assign + REDACTED + _CUT_LINE  # "Cookie: a=b; c=d": the rest of the line
            return name + assign + quote + REDACTED + quote
        tag = match[GROUPS["tag"]]
        if tag is not None:  # an element's text: hidden when the tag names a secret
            inner = match[GROUPS["text"]]
            family = self.family(tag)
            if family is None or self._shown(tag, family, inner.strip(), ""):
                return match[0][: len(match[0]) - len(inner)] + self._sub(LONE_SHAPES, inner)
            return match[0][: len(match[0]) - len(inner)] + REDACTED
        scheme = match[GROUPS["scheme"]]
        if scheme is not None:
            if scheme.lower() == "basic" and not basic_credentials(match[GROUPS["cred"]]):
                return match[0]  # "basic information", not a credential
            return scheme + match[GROUPS["sep"]] + REDACTED
        url = match[GROUPS["scheme_url"]]
        if url is not None:  # a URL's start: its userinfo hidden, its query scanned on
            return url + (REDACTED + "@" if match[GROUPS["userinfo"]] is not None else "")
        card = match[GROUPS["card"]]
        if card is not None and (not luhn(card) or match.in_number()):
            return match[0]  # not a card, or digits of a longer number (an exact decimal)
        return REDACTED

    def _shown(self, key: str, family: str, value: str, quote: str) -> bool:
        """Whether a value written under a secret key in text is still shown: a count (a number
        under a token or count-like key), or a model's output token (`"token": "Hello"`: a key
        named just token, a value no credential could be)."""
        bare = value[len(quote) : len(value) - len(quote)] if quote else value
        if _NUMBER.fullmatch(bare):
            return KeyFamilies.number_shown(key, family)
        return model_token(key, bare)


class Found:
    """One match of the shapes, by byte offsets into the UTF-8 text. `_shape` may set `resume`:
    where the scan goes on (inside the match, or past it)."""

    __slots__ = ("data", "spans", "resume")

    def __init__(self, data: bytes, spans: list[tuple[int, int]]) -> None:
        self.data, self.spans = data, spans
        self.resume: int | None = None

    def __getitem__(self, group: int) -> str | None:
        start, end = self.spans[group]
        return None if start < 0 else self.data[start:end].decode("utf-8", "surrogatepass")

    def start(self, group: int = 0) -> int:
        return self.spans[group][0]

    def after(self, size: int) -> bytes:
        end = self.spans[0][1]
        return self.data[end : end + size]

    def extend(self) -> int:
        """Where the word the match ends in ends (up to a blank, a separator or a quote)."""
        data, end = self.data, self.spans[0][1]
        while end < len(data) and data[end] not in _WORD_ENDS:
            end += 1
        return end

    def in_number(self) -> bool:
        """Whether the match is digits of a longer number (a digit, or a decimal point with a digit beyond it, next to it)."""
        data, (start, end) = self.data, self.spans[0]
        before, after = data[max(0, start - 2) : start], data[end : end + 2]
        return (
            before[-1:].isdigit() or (before[-1:] == b"." and before[:1].isdigit())
            or after[:1].isdigit() or (after[:1] == b"." and after[1:2].isdigit())
        )  # fmt: skip

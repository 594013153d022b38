"""Redaction and truncation: what anything may say once it leaves the process.

One `Redactor` serves every sink: the publish pipeline calls `report()` once per
comparison that some sink will write, before the fan-out (the log today, the
store and the recorder tomorrow); the access log runs its target and Referer
through `url()` / `text()`; the comparison worker redacts and cuts large body
differences itself (`difference()`), so the event loop never scrubs a big value.

What is hidden, by default:
- **keys in families**, case- and separator-insensitive (`authToken`, `api-key`,
  `SECRET_KEY`, `card_number` alike): a key is secret when some run of its words
  (`x-auth-token` -> x, auth, token) spells a family term, singular or plural.
  The value under a secret key is replaced whole, subtree and all; so is the value
  of a header whose name is secret or listed in `redact_headers`;
- **credential-shaped values** wherever they appear: `Bearer` / `Basic`
  credentials, JWTs, URL userinfo, URL query parameters and `name=value` /
  `name: value` pairs whose name is secret, private key blocks, card numbers
  (Luhn-checked), and the token formats of a few well-known services;
- **JSON inside a JSON string** is parsed and redacted as JSON.

Users add terms (`redact_fields`), header names (`redact_headers`) and RE2
patterns (`redact_patterns`), and take terms or whole key names out
(`redact_keep`: a family's name takes out the whole family). Every pattern runs on RE2, in linear time whatever the input.
Values are redacted first, then cut to `max_value_chars`; control characters a
log reader's terminal would act on are escaped.

A Redactor pickles as its `Redaction` settings (the worker compiles its own).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from shadowdiff.compare import paths as field_paths
from shadowdiff.compare.patterns import UserPattern
from shadowdiff.model import Comparison, Difference
from shadowdiff.publish.secrets import (
    CARD, GROUPS, LONE_SHAPES, SHAPES, KeyFamilies, basic_credentials, luhn, suspect,
)  # fmt: skip

REDACTED = "[REDACTED]"
# Values are scrubbed this deep; below it a subtree is replaced by a note.
MAX_DEPTH = 64
_MAX_EMBEDDED = 3  # JSON inside a string inside a string ... this many times

_MARGIN = 1024  # characters scrubbed past the cut: a secret that starts before it ends within it
MAX_PARSED = 1 << 20  # a string that looks like JSON is parsed whole (before any cut) up to this size
_CUT = "\x00(hide the rest)\x00"  # what _shape leaves where a secret's object or list begins in text
_CUT_LINE = "\x00(hide the line)\x00"
_UNKNOWN = object()
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_VALUE_MATCHES = 64  # credential shapes handled in one value; past them its rest is hidden
_REPORT_MATCHES = 256  # and in one report, all its values together
_SCAN_LIMIT = 64 * 1024  # the widest window of one long string scanned for what it shows
_REST_HIDDEN_TEXT = "...(rest hidden)"
_REST_HIDDEN = _REST_HIDDEN_TEXT.encode()
_WORD_ENDS = frozenset(b" \t\r\n&,;\"'<>")
_SHORTEST = 5  # no credential shape fits in fewer characters ("pwd=x")
_PLAIN = frozenset({int, float, bool, type(None)})
# (RE2 runs the credential shapes; Python's re only this anchored, backtrack-free number test.)
# Escaped in every string written: DEL, C1 controls, line/paragraph separators and
# bidirectional overrides (orjson already escapes C0 controls).
_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


class RedactionSettings(Protocol):
    """What a Redactor reads of the config's `logging` section."""

    max_value_chars: int
    redact_headers: tuple[str, ...]
    redact_fields: tuple[str, ...]
    redact_keep: tuple[str, ...]
    redact_patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Redaction:
    """A Redactor's settings as plain data (what is pickled to the comparison worker)."""

    max_value_chars: int = 200
    headers: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: RedactionSettings) -> Redaction:
        return cls(
            settings.max_value_chars,
            tuple(settings.redact_headers),
            tuple(settings.redact_fields),
            tuple(settings.redact_keep),
            tuple(settings.redact_patterns),
        )


@dataclass(frozen=True, slots=True)
class Report:
    """A comparison as sinks may write it.

    `comparison` is there for what is not a value (outcome, statuses, timings, the
    method); its raw differences, headers and bodies are never to be written. What a
    sink writes of the differences, the request id, the path and the route comes
    from here: redacted, cut, escaped.
    """

    comparison: Comparison
    differences: tuple[Difference, ...]
    request_id: str
    path: str
    route: str


class Redactor:
    """Hides secrets in whatever a sink is about to write, and shortens long values."""

    def __init__(self, settings: Redaction | RedactionSettings) -> None:
        spec = settings if isinstance(settings, Redaction) else Redaction.of(settings)
        self.spec = spec
        self._max = spec.max_value_chars
        self._families = KeyFamilies(added=spec.fields, keep=spec.keep)
        self._headers = frozenset(h.lower() for h in spec.headers)
        self._user = tuple(UserPattern(p) for p in spec.patterns)  # RE2, checked by check-config
        self._secret_keys: dict[str, str | None] = {}
        self._secret_paths: dict[str, str | None] = {}
        self._nested = 0  # quoted values being scanned inside one another (escaped JSON)
        self._report_left: int | None = None  # shapes the report being made may still handle

    def __reduce__(self) -> Any:
        return (_redactor, (self.spec,))

    # -- what sinks call -----------------------------------------------------

    def report(self, comparison: Comparison) -> Report:
        """The comparison as sinks may write it. One report handles at most _REPORT_MATCHES
        credential shapes in all (past them, the rest of each value is hidden): crafted bodies
        cannot make a report cost the event loop more than a few milliseconds."""
        request = comparison.request
        self._report_left = _REPORT_MATCHES
        try:
            return Report(
                comparison,
                tuple(self.difference(d) for d in comparison.differences),
                request_id=self.text(request.request_id),
                path=self.text(request.path),
                route=self.cut(request.route),
            )
        finally:
            self._report_left = None

    def difference(self, d: Difference) -> Difference:
        """`d` with its values redacted, then cut (a difference already redacted is returned as is)."""
        if d.redacted:
            return d
        if d.part == "header":
            name = d.path.partition(":")[0]
            secret = self.secret_header(name) and name != "set-cookie"  # set-cookie:NAME says only "set"
        elif d.part == "body" and d.path.startswith("$"):
            found = self._secret_path(d.path)
            if found is None:
                secret = False
            else:  # a count or a flag under a secret key may be shown (prompt_tokens, has_password)
                family, key = found
                plain = _plain(d.control) and _plain(d.candidate)
                secret = not (plain and all(self._plain_shown(key, family, v) for v in (d.control, d.candidate)))
        else:
            secret = False
        # Paths are names, not values: cut and escaped; only a credential shape in a key is hidden.
        path = d.path
        if d.part == "body" and suspect(path):
            path = self._sub(LONE_SHAPES, _valid(path[: self._max + _MARGIN]))
        path = self.cut(path)
        if secret:
            hide = lambda v: None if v is None else REDACTED  # noqa: E731
            return Difference(d.part, path, d.kind, hide(d.control), hide(d.candidate), redacted=True)
        return Difference(d.part, path, d.kind, self.value(d.control), self.value(d.candidate), redacted=True)

    def value(self, value: Any) -> Any:
        """Any value: containers scrubbed key by key, strings scrubbed; then cut.

        Only what can still be shown is scrubbed: a subtree is walked in the order it is
        written until its output passes the cut (plus a margin), and the rest is left
        out, so a big added subtree costs what its first `max_value_chars` cost.
        """
        if isinstance(value, (dict, list)):
            room = [self._max + _MARGIN]  # characters of output still worth scrubbing
            value = self._scrub(value, 0, 0, room)
            try:
                text = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:  # a number orjson cannot write, or nesting past its limit
                text = str(value)
            if room[0] >= 0 and len(text) <= self._max:
                return value
            return self.cut(text, exact=room[0] >= 0)
        if isinstance(value, str):
            return self.text(value)
        if type(value) is int and _card_number(value):
            return REDACTED
        return value

    def text(self, value: str) -> str:
        """A string as it may be written: secrets hidden, cut, controls escaped (see `_scan`)."""
        scrubbed, hidden = self._scan(value)
        return self.cut(scrubbed, hidden=hidden)

    def _scan(self, value: str) -> tuple[str, int]:
        """(`value` scrubbed, how many of its characters were not scanned at all).

        A string that looks like JSON is parsed whole (up to MAX_PARSED). Any other long one
        is scanned from its start in a window of the cut plus a margin, widened (up to
        _SCAN_LIMIT) while redaction shrinks what it shows below the cut plus 256: a secret
        that starts in the shown part is then whole in what was scanned.
        """
        value = _valid(value)
        if len(value) <= self._max + _MARGIN or (len(value) <= MAX_PARSED and _json_like(value)):
            return self.scrub_text(value), 0
        window = self._max + _MARGIN
        while True:
            scrubbed = self.scrub_text(value[:window])
            settled = len(scrubbed) >= self._max + 256 or scrubbed.endswith(_REST_HIDDEN_TEXT)
            if settled or window >= min(len(value), _SCAN_LIMIT):
                return scrubbed, max(0, len(value) - window)
            window *= 2

    def url(self, target: str) -> str:
        """A request target or URL (the access log's): query secrets hidden, cut."""
        return self.text(target)

    def cut(self, text: str, *, hidden: int = 0, exact: bool = True) -> str:
        """`text` cut to max_value_chars, saying how much was left out (`hidden`: what was already
        cut before; `exact=False`: an unknown amount), controls escaped."""
        if len(text) > self._max or hidden or not exact:
            more = f"+{max(0, len(text) - self._max) + hidden} chars" if exact else "cut"
            text = text[: self._max] + f"...({more})"
        return text if text.isascii() else text.translate(_ESCAPES)

    def secret_key(self, key: str) -> bool:
        """Whether a key (JSON field, form field, query parameter) names a secret."""
        return self.family(key) is not None

    def family(self, key: str) -> str | None:
        """The family a key's name belongs to ("token", "card number", ...), None if it is no secret."""
        known = self._secret_keys.get(key, _UNKNOWN)
        if known is _UNKNOWN:
            known = self._families.of(key)
            if len(key) <= 256:  # keys are many but repeat; the cache is bounded in count and size
                if len(self._secret_keys) >= 4096:
                    self._secret_keys.clear()
                self._secret_keys[key] = known
        return known  # type: ignore[return-value]

    def _secret_path(self, path: str) -> tuple[str, str] | None:
        """(family, key) of the first secret key a body path passes through, None if none
        (cached, short paths only: the same paths differ again and again)."""
        known = self._secret_paths.get(path, _UNKNOWN)
        if known is _UNKNOWN:
            keys = _keys_in(path[:4096])
            known = next(((f, k) for k in keys if (f := self.family(k)) is not None), None)
            if len(path) <= 256:
                if len(self._secret_paths) >= 4096:
                    self._secret_paths.clear()
                self._secret_paths[path] = known
        return known  # type: ignore[return-value]

    def _plain_shown(self, key: str, family: str | None, value: Any) -> bool:
        """Whether a number, a flag or a null is shown: always, unless it is a card number, or a
        number under a secret key that is no count (a numeric PIN or session id)."""
        if type(value) is int and _card_number(value):
            return False
        if family is None or value is None or type(value) is bool:
            return True
        return family != CARD and (family == "token" or self._families.counts(key))

    def secret_header(self, name: str) -> bool:
        return name.lower() in self._headers or self.secret_key(name)

    # -- the work --------------------------------------------------------------

    def scrub_text(self, text: str, embedded: int = 0) -> str:
        """Secrets in a string hidden (not cut): embedded JSON, credential shapes, user patterns."""
        if not text:
            return text
        if embedded < _MAX_EMBEDDED and (text[0] in "{[" or text[0].isspace()):
            stripped = text.strip()
            if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
                try:
                    inner = orjson.loads(stripped)
                except orjson.JSONDecodeError:
                    pass
                else:
                    room = [self._max + _MARGIN]  # what can be shown of it: the rest is left out
                    return orjson.dumps(self._scrub(inner, 0, embedded + 1, room)).decode()
        if suspect(text):
            text = self._sub(SHAPES, text)
            if _CUT in text:  # a secret key's object or list in text: hidden to the end
                text = text.partition(_CUT)[0] + _REST_HIDDEN_TEXT
            while _CUT_LINE in text:  # a secret header-like line in text: hidden to the line's end
                before, _, after = text.partition(_CUT_LINE)
                text = before + after[after.find("\n") :] if "\n" in after else before
        for pattern in self._user:
            text = pattern.sub(REDACTED, text)
        return text

    def _sub(self, shapes: UserPattern, text: str) -> str:
        """`text` with every credential shape `shapes` finds replaced as `_shape` says, driven by
        position through RE2's C object: `_shape` may resume the scan inside its match (a pair's
        value that is the next pair's name). Past _VALUE_MATCHES (or what the report has left)
        the rest of `text` is hidden."""
        data = text.encode("utf-8", "surrogatepass")
        out: list[bytes] = []
        kept = pos = 0
        left = self._report_left
        for _ in range(_VALUE_MATCHES if left is None else min(_VALUE_MATCHES, left)):
            spans = shapes.spans(data, pos)
            start, stop = spans[0]
            if start < 0:
                break
            if self._report_left is not None:
                self._report_left -= 1
            found = _Found(data, spans)
            out += (data[kept:start], self._shape(found).encode("utf-8", "surrogatepass"))
            kept = pos = found.resume if found.resume is not None else stop
        else:
            if shapes.spans(data, pos)[0][0] >= 0:
                out.append(_REST_HIDDEN)
                kept = len(data)
        out.append(data[kept:])
        return b"".join(out).decode("utf-8", "surrogatepass")

    def _shape(self, match: _Found) -> str:
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
                if quote and self._nested < _MAX_EMBEDDED:
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
        if family == CARD:
            return False
        bare = value[len(quote) : len(value) - len(quote)] if quote else value
        if _NUMBER.fullmatch(bare):
            return family == "token" or self._families.counts(key)
        return _model_token(key, bare)

    def _scrub(self, value: Any, depth: int, embedded: int, room: list[int]) -> Any:
        """Secret keys' values hidden and strings scrubbed, down to MAX_DEPTH, while `room[0]`
        (output characters still worth scrubbing, counted low) lasts: past it, items are left out."""
        if isinstance(value, str):
            room[0] -= len(value) + 2
            if len(value) < _SHORTEST:
                value = _valid(value)
                for pattern in self._user:  # a user's pattern may match fewer characters
                    value = pattern.sub(REDACTED, value)
                return value
            if embedded or len(value) <= self._max + _MARGIN:
                return self.scrub_text(_valid(value), embedded)
            scrubbed, hidden = self._scan(value)
            return scrubbed + ("...(cut)" if hidden else "")
        if not isinstance(value, (dict, list)):
            room[0] -= 1
            return REDACTED if type(value) is int and _card_number(value) else value
        if depth >= MAX_DEPTH:
            return f"<nested deeper than {MAX_DEPTH}>"
        depth += 1
        if isinstance(value, list):
            items = []
            for v in value:
                if room[0] < 0:
                    break
                room[0] -= 1
                items.append(v if type(v) in _PLAIN else self._scrub(v, depth, embedded, room))
            return items
        known, out = self._secret_keys, {}
        for key, v in value.items():
            if room[0] < 0:
                break
            room[0] -= len(key) + 4
            family = known.get(key, _UNKNOWN)
            if family is _UNKNOWN:
                family = self.family(key)
            shown = key
            if len(key) >= _SHORTEST and suspect(key):  # a credential-shaped key (a token as a map key)
                shown = self._sub(LONE_SHAPES, _valid(key[: self._max + _MARGIN]))
            if type(v) in _PLAIN:
                out[shown] = v if self._plain_shown(key, family, v) else REDACTED
            elif isinstance(v, str) and _model_token(key, v):
                out[shown] = self._scrub(v, depth, embedded, room)  # a model's token ("Hello"), not a credential
            elif isinstance(v, list) and key.lower() in _MODEL_TOKEN_KEYS:
                out[shown] = self._scrub(v, depth, embedded, room)  # "tokens": [...] of a model's output
            else:
                out[shown] = REDACTED if family is not None else self._scrub(v, depth, embedded, room)
        return out


def _plain(value: Any) -> bool:
    """A number, a flag or nothing (JSON's scalars other than strings)."""
    return type(value) in _PLAIN


def _json_like(text: str) -> bool:
    """Whether `text` starts (after blanks) like a JSON object or array."""
    for char in text[:64]:
        if not char.isspace():
            return char in "{["
    return False


class _Found:
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


def _valid(text: str) -> str:
    """`text` with lone surrogates (which JSON parsers let through and no encoder writes) replaced."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


_MODEL_TOKEN_KEYS = frozenset({"token", "tokens"})


def _model_token(key: str, text: str) -> bool:
    """A language model's output token (`{"token": " world", "logprob": -0.1}`): under a key named
    just token, a string no credential could be (under 8 characters, or with a blank)."""
    return key.lower() in _MODEL_TOKEN_KEYS and (len(text) < 8 or any(c.isspace() for c in text))


def _card_number(value: int) -> bool:
    """An integer that is a card number: 13 to 19 digits, a card's first digit, the Luhn check."""
    return 10**12 <= value < 10**19 and str(value)[0] in "23456" and luhn(str(value))


@functools.lru_cache(maxsize=4)
def _redactor(spec: Redaction) -> Redactor:
    """One compiled Redactor per settings, per process (the worker gets one with each job)."""
    return Redactor(spec)


def _keys_in(path: str) -> list[str]:
    """The key names in a difference's path (`$.a['b c'][0].d` -> a, b c, d)."""
    try:
        return [segment for segment in field_paths.parse(path) if isinstance(segment, str)]
    except field_paths.PathError:
        return []



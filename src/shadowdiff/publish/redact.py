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
_NUMERIC = frozenset("0123456789.")
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
        self._shapes = SHAPES
        self._user = tuple(UserPattern(p) for p in spec.patterns)  # RE2, checked by check-config
        self._secret_keys: dict[str, str | None] = {}
        self._secret_paths: dict[str, str | None] = {}
        self._nested = 0  # quoted values being scanned inside one another (escaped JSON)

    def __reduce__(self) -> Any:
        return (_redactor, (self.spec,))

    # -- what sinks call -----------------------------------------------------

    def report(self, comparison: Comparison) -> Report:
        request = comparison.request
        return Report(
            comparison,
            tuple(self.difference(d) for d in comparison.differences),
            request_id=self.text(request.request_id),
            path=self.text(request.path),
            route=self.cut(request.route),
        )

    def difference(self, d: Difference) -> Difference:
        """`d` with its values redacted, then cut (a difference already redacted is returned as is)."""
        if d.redacted:
            return d
        if d.part == "header":
            name = d.path.partition(":")[0]
            secret = self.secret_header(name) and name != "set-cookie"  # set-cookie:NAME says only "set"
        elif d.part == "body" and d.path.startswith("$"):
            family = self._secret_path(d.path)
            # A number or a flag under a secret key is a count or a switch (prompt_tokens,
            # has_password), not a secret; a card number's is.
            secret = family is not None and (family == CARD or not (_plain(d.control) and _plain(d.candidate)))
        else:
            secret = False
        # Paths are names, not values: cut and escaped; only a credential shape in a key is hidden.
        path = self.cut(LONE_SHAPES.sub(self._shape, d.path) if d.part == "body" and suspect(d.path) else d.path)
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
        return value

    def text(self, value: str) -> str:
        """A string as it may be written: secrets hidden, cut, controls escaped.

        Past the cut only a margin is scrubbed (a secret that starts before the cut is
        whole within it): a long string costs what its first characters cost.
        """
        if len(value) > self._max + _MARGIN and not (len(value) <= MAX_PARSED and _json_like(value)):
            scrubbed = self.scrub_text(value[: self._max + _MARGIN])
            return self.cut(scrubbed, hidden=len(value) - self._max - _MARGIN)
        return self.cut(self.scrub_text(value))

    def url(self, target: str) -> str:
        """A request target or URL (the access log's): query secrets hidden, cut."""
        return self.text(target)

    def cut(self, text: str, *, hidden: int = 0, exact: bool = True) -> str:
        """`text` cut to max_value_chars, saying how much was left out (`hidden`: what was already
        cut before; `exact=False`: an unknown amount), controls escaped."""
        if len(text) > self._max or not exact:
            more = f"+{len(text) - self._max + hidden} chars" if exact else "cut"
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
            if len(self._secret_keys) >= 4096:  # keys are many but repeat; keep the cache bounded
                self._secret_keys.clear()
            self._secret_keys[key] = known
        return known  # type: ignore[return-value]

    def _secret_path(self, path: str) -> str | None:
        """The family of the first secret key a body path passes through (cached: the same paths
        differ again and again), None if none."""
        known = self._secret_paths.get(path, _UNKNOWN)
        if known is _UNKNOWN:
            known = next((f for f in map(self.family, _keys_in(path)) if f is not None), None)
            if len(self._secret_paths) >= 4096:
                self._secret_paths.clear()
            self._secret_paths[path] = known
        return known  # type: ignore[return-value]

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
        if len(text) > self._max + _MARGIN:
            text = text[: self._max + _MARGIN]  # only what can be shown is scanned
        if suspect(text):
            text = self._shapes.sub(self._shape, text)
            if _CUT in text:  # a secret key's object or list in text: hidden to the end
                text = text.partition(_CUT)[0] + "...(rest hidden)"
            while _CUT_LINE in text:  # a secret header-like line in text: hidden to the line's end
                before, _, after = text.partition(_CUT_LINE)
                text = before + after[after.find("\n") :] if "\n" in after else before
        for pattern in self._user:
            text = pattern.sub(REDACTED, text)
        return text

    def _shape(self, match: Any) -> str:
        if match[GROUPS["name"]] is not None:
            name, assign, value = match[GROUPS["name"]], match[GROUPS["assign"]], match[GROUPS["value"]]
            judged = name.strip('"')
            family = self.family(unquote(judged) if "%" in judged else judged)
            if value in ("{", "["):  # an object or a list follows: a secret's is hidden to the end
                return name + assign + REDACTED + _CUT if family is not None else match[0]
            quote = next((q for q in ('\\"', '"', "'") if value.startswith(q) and len(value) > len(q)), "")
            if family is None or (family != CARD and _NUMBER.fullmatch(value)):
                # An ordinary pair (or a count): an unquoted value is scanned for shapes, never pairs
                # (it holds no "=": the next pair is the outer scan's); a quoted one, which may hold
                # escaped JSON, for pairs too, one level of escaping at a time (bounded).
                if quote and self._nested < _MAX_EMBEDDED:
                    self._nested += 1
                    try:
                        return name + assign + self._shapes.sub(self._shape, value)
                    finally:
                        self._nested -= 1
                return name + assign + LONE_SHAPES.sub(self._shape, value)
            if not quote and ":" in assign and "=" not in assign:
                return name + assign + REDACTED + _CUT_LINE  # "Cookie: a=b; c=d": the rest of the line
            return name + assign + quote + REDACTED + quote
        tag = match[GROUPS["tag"]]
        if tag is not None:  # an element's text: hidden when the tag names a secret
            if self.family(tag) is None or _NUMBER.fullmatch(match[GROUPS["text"]].strip()):
                return match[0][: len(match[0]) - len(match[GROUPS["text"]])] + LONE_SHAPES.sub(self._shape, match[GROUPS["text"]])
            return match[0][: len(match[0]) - len(match[GROUPS["text"]])] + REDACTED
        scheme = match[GROUPS["scheme"]]
        if scheme is not None:
            if scheme.lower() == "basic" and not basic_credentials(match[GROUPS["cred"]]):
                return match[0]  # "basic information", not a credential
            return scheme + match[GROUPS["sep"]] + REDACTED
        url = match[GROUPS["scheme_url"]]
        if url is not None:  # a URL's start: its userinfo hidden, its query scanned on
            return url + (REDACTED + "@" if match[GROUPS["userinfo"]] is not None else "")
        card = match[GROUPS["card"]]
        if card is not None:
            text, start, end = match.string, match.start(), match.end()
            if not luhn(card) or text[start - 1 : start] in _NUMERIC or text[end : end + 1] in _NUMERIC:
                return match[0]  # not a card, or digits of a longer number (an exact decimal)
        return REDACTED

    def _scrub(self, value: Any, depth: int, embedded: int, room: list[int]) -> Any:
        """Secret keys' values hidden and strings scrubbed, down to MAX_DEPTH, while `room[0]`
        (output characters still worth scrubbing, counted low) lasts: past it, items are left out."""
        if isinstance(value, str):
            room[0] -= len(value) + 2
            if len(value) < _SHORTEST:
                return value
            return self.scrub_text(value if len(value) <= self._max + _MARGIN else value[: self._max + _MARGIN], embedded)
        if not isinstance(value, (dict, list)):
            room[0] -= 1
            return value
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
            shown = LONE_SHAPES.sub(self._shape, key) if len(key) >= _SHORTEST and suspect(key) else key
            if type(v) in _PLAIN:  # a count or a flag stays visible, except a card number's digits
                out[shown] = REDACTED if family == CARD and v is not None else v
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



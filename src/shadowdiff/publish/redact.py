"""Redaction and truncation: what anything may say once it leaves the process.

One `Redactor` serves every sink: the publish pipeline calls `report()` once per
comparison that some sink will write, before the fan-out (the log today, the
store and the recorder tomorrow); the access log runs its target and Referer
through `url()` / `text()`; the comparison worker redacts and cuts large body
differences itself (`difference()`), so the event loop never scrubs a big value.

What is hidden (README "Security", Redaction, lists it whole): the value under a key
whose name is in a family (`publish.secrets.KeyFamilies`: `authToken`, `api-key`,
`SECRET_KEY`, `PHPSESSID` alike; subtree and all, counts, flags and a model's output
tokens excepted), the value of a header whose name is secret or listed in
`redact_headers`, credential shapes in any string (`publish.text.TextScrubber`), JSON
inside a string as JSON, credential-shaped keys and path segments. Users add terms
(`redact_fields`), header names (`redact_headers`) and RE2 patterns
(`redact_patterns`), and take key names or whole families out (`redact_keep`).
Values are redacted first, then cut to `max_value_chars`; what is scanned is what can
be shown (a window that widens while redaction shrinks it); control characters a log
reader's terminal would act on are escaped.

A Redactor pickles as its `Redaction` settings (the worker compiles its own).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from shadowdiff.compare import paths as field_paths
from shadowdiff.compare.patterns import UserPattern
from shadowdiff.model import Comparison, Difference
from shadowdiff.publish.secrets import (
    MODEL_TOKEN_KEYS, REDACTED, KeyFamilies, card_number, json_like, model_token, plain, suspect, valid,
)  # fmt: skip
from shadowdiff.publish.text import REST_HIDDEN, TextScrubber

# Values are scrubbed this deep; below it a subtree is replaced by a note.
MAX_DEPTH = 64
_MAX_EMBEDDED = 3  # JSON inside a string inside a string ... this many times

_MARGIN = 1024  # characters scrubbed past the cut: a secret that starts before it ends within it
MAX_PARSED = 1 << 20  # a string that looks like JSON is parsed whole (before any cut) up to this size
_UNKNOWN = object()
_REPORT_MATCHES = 256  # and in one report, all its values together
_SCAN_LIMIT = 64 * 1024  # the widest window of one long string scanned for what it shows
_SHORTEST = 5  # no credential shape fits in fewer characters ("pwd=x")
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
    query: str | None = None  # the request's query string, redacted (None: it had none)
    verdicts: tuple[str, ...] = ()  # each listed difference's verdict (the noise stage's), if judged
    found: int = 0  # differences the comparison holds (more than listed when the listing is cut)


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
        self._secret_paths: dict[str, tuple[str, str] | None] = {}
        self._text = TextScrubber(self.family, user=self._user)
        self._whole = False  # within document(): strings are scrubbed whole, not cut

    def __reduce__(self) -> Any:
        return (_redactor, (self.spec,))

    # -- what sinks call -----------------------------------------------------

    def report(self, comparison: Comparison, *, listed: int | None = None) -> Report:
        """The comparison as sinks may write it, its first `listed` differences (None: all).
        One report handles at most _REPORT_MATCHES
        credential shapes in all (past them, the rest of each value is hidden): crafted bodies
        cannot make a report cost the event loop more than a few milliseconds."""
        request = comparison.request
        self._text.report_left = _REPORT_MATCHES
        try:
            return Report(
                comparison,
                tuple(self.difference(d) for d in comparison.differences[:listed]),
                request_id=self.text(request.request_id),
                path=self.text(request.path),
                route=self.cut(request.route),
                query=self.url(request.target.partition("?")[2]) if "?" in request.target else None,
                verdicts=comparison.verdicts[:listed],
                found=len(comparison.differences),
            )
        finally:
            self._text.report_left = None

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
                scalars = plain(d.control) and plain(d.candidate)
                secret = not (scalars and all(self._plain_shown(key, family, v) for v in (d.control, d.candidate)))
        else:
            secret = False
        # Paths are names, not values: cut and escaped; only a credential shape in a key is hidden.
        path = d.path
        if d.part == "body" and suspect(path):
            path = self._text.lone(valid(path[: self._max + _MARGIN]))
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
        return _scalar(value)

    def document(self, value: Any, *, limit: int = 1 << 20) -> Any:
        """A whole parsed body scrubbed key by key, not cut to max_value_chars (a stored sample's body):
        secret keys' values and credential shapes hidden as in `value()`, every string scrubbed whole;
        past `limit` characters of output the rest is left out."""
        self._whole = True
        try:
            return self._scrub(value, 0, 0, [limit])
        finally:
            self._whole = False

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
        value = valid(value)
        if len(value) <= self._max + _MARGIN or (len(value) <= MAX_PARSED and json_like(value)):
            return self.scrub_text(value), 0
        window = self._max + _MARGIN
        while True:
            scrubbed = self.scrub_text(value[:window])
            settled = len(scrubbed) >= self._max + 256 or scrubbed.endswith(REST_HIDDEN)
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
        if type(value) is int and card_number(value):
            return False
        if family is None or value is None or type(value) is bool:
            return True
        return KeyFamilies.number_shown(key, family)

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
        return self._text.scrub(text)

    def _scrub(self, value: Any, depth: int, embedded: int, room: list[int]) -> Any:
        """Secret keys' values hidden and strings scrubbed, down to MAX_DEPTH, while `room[0]`
        (output characters still worth scrubbing, counted low) lasts: past it, items are left out."""
        if isinstance(value, str):
            room[0] -= len(value) + 2
            if len(value) < _SHORTEST:
                value = valid(value)
                for pattern in self._user:  # a user's pattern may match fewer characters
                    value = pattern.sub(REDACTED, value)
                return value
            if embedded or self._whole or len(value) <= self._max + _MARGIN:
                return self.scrub_text(valid(value), embedded)
            scrubbed, hidden = self._scan(value)
            return scrubbed + ("...(cut)" if hidden else "")
        if not isinstance(value, (dict, list)):
            room[0] -= 1
            return _scalar(value)
        if depth >= MAX_DEPTH:
            return f"<nested deeper than {MAX_DEPTH}>"
        depth += 1
        if isinstance(value, list):
            items = []
            for v in value:
                if room[0] < 0:
                    break
                room[0] -= 1
                items.append(_scalar(v) if plain(v) else self._scrub(v, depth, embedded, room))
            return items
        out = {}
        for key, v in value.items():
            if room[0] < 0:
                break
            room[0] -= len(key) + 4
            family = self.family(key)
            shown = key
            if len(key) >= _SHORTEST and suspect(key):  # a credential-shaped key (a token as a map key)
                shown = self._text.lone(valid(key[: self._max + _MARGIN]))
            if plain(v):
                out[shown] = v if self._plain_shown(key, family, v) else REDACTED
            elif isinstance(v, str) and model_token(key, v):
                out[shown] = self._scrub(v, depth, embedded, room)  # a model's token ("Hello"), not a credential
            elif isinstance(v, list) and key.lower() in MODEL_TOKEN_KEYS:
                out[shown] = self._scrub(v, depth, embedded, room)  # "tokens": [...] of a model's output
            else:
                out[shown] = REDACTED if family is not None else self._scrub(v, depth, embedded, room)
        return out


def _scalar(value: Any) -> Any:
    """A number, flag or null as it may be written: a card number, under any key or none, is hidden."""
    return REDACTED if type(value) is int and card_number(value) else value


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



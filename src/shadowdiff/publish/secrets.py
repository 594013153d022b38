"""What looks like a secret: key names in families, and credential shapes in text.

`publish.redact` decides what to do with them (hide, cut); this module only
recognises. A key is secret (`KeyFamilies.of`) when some run of its words
(`x-auth-token` -> x, auth, token) spells a family term, singular or plural, or when
one word starts or ends with a term of five letters or more (`authtoken`, `PHPSESSID`;
`tokenizer` and a few others excepted). A credential shape is found by
one RE2 alternation (linear time whatever the input), each group naming its kind;
`suspect()` is the cheap test that lets most strings skip it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import re2

from shadowdiff.compare.patterns import UserPattern

REDACTED = "[REDACTED]"
MAX_KEY_WORDS = 4  # a family term spans at most this many words of a key

# The built-in key families: each term is matched against runs of a key's words,
# lower-cased and joined ("api_key" -> "apikey"), with or without a final "s".
KEY_FAMILIES: dict[str, tuple[str, ...]] = {
    "password": ("password", "passwd", "pwd", "pass", "passphrase", "passcode"),
    "secret": ("secret",),
    "token": ("token",),
    "api key": ("apikey",),
    "auth": ("auth", "authorization", "authn", "authz"),
    "credential": ("credential", "creds", "cred"),
    "session": ("session", "sessionid", "sessid"),
    "cookie": ("cookie",),
    "jwt": ("jwt",),
    "private key": ("privatekey",),
    "card number": ("cardnumber", "ccnumber", "ccnum", "cvv", "cvc"),
    "signature": ("signature", "sig"),  # signed URLs (X-Amz-Signature, Azure's sig=) are usable alone
}
# Words that make a key a count or a limit: a number under such a key is shown (total_tokens).
COUNT_WORDS = frozenset(
    {"count", "counts", "total", "num", "max", "min", "limit", "ttl", "expires", "expiry", "length", "len", "size",
     "used", "remaining", "left", "attempts", "age"}
)  # fmt: skip

# Words that start or end with a long family term and are no secret (the term inside one word
# is a secret otherwise: authtoken, clientsecret, PHPSESSID).
NOT_SECRET_WORDS = frozenset(
    {"tokenizer", "tokenizers", "tokenize", "tokenized", "tokenization", "secretary", "secretaries", "secretariat",
     "sessional", "cookiecutter", "passwordless"}
)  # fmt: skip

# Credential shapes, one RE2 alternation (leftmost match wins; each group names its kind).
_SHAPES = (
    r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY[A-Z ]*-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY[A-Z ]*-----|$))"
    r"|(?P<scheme>(?i:\b(?:bearer|basic)))(?P<sep>\s+)(?P<cred>[A-Za-z0-9._~+/-]{6,}=*)"
    r"|(?P<jwt>eyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){0,2})"
    r"|(?P<scheme_url>\b[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<userinfo>[^/\s?#\"']+)@)?"
    r"|(?P<known>\b(?:(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35})\b)"
    r"|(?P<card>\b[2-6](?:[ -]?[0-9]){12,18}\b)"
)
# name = value, name: value, "name": "value", name := value, :name => value, ?name=value, and
# with escaped quotes (JSON in a JSON string); the name (%-encoded or not) is judged in Python.
# A bare value never holds "=", "?" or "%" (an encoded "=" or "?"): the next pair is the next
# match, never a recursion.
_PAIRS = (
    # a multipart part: name="password" (and the rest of its Content-Disposition), up to three more
    # header lines, a blank line, then its value to the end of the line; the name judged like a key
    r"|(?P<part>name=\"(?P<part_name>[^\"\r\n]{1,64})\"[^\r\n]{0,200}\r?\n(?:[^\r\n]{1,120}\r?\n)?(?:[^\r\n]{1,120}\r?\n)?(?:[^\r\n]{1,120}\r?\n)?\r?\n)"
    r"(?P<part_value>[^\r\n]*)"
    r"|(?P<name>\"[^\"\\\n]{1,64}\"|[A-Za-z0-9_.\[\]%-]{2,64})"
    r"(?P<assign>\\?[\"']?[ \t]*(?::=|==|=>|[:=]|%3[AaDd])[ \t]*)"
    r"(?P<value>(?i:(?:bearer|basic|digest|negotiate|token)[ \t]+)?"
    r"(?:\\\"(?:[^\"\\]|\\[^\"])*\\\"|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[{\[]"
    r"|[^\s&,;\"'<>{}\[\]=?%]+))"
    # <password>value</password>: an XML or HTML element's text, the tag judged like a key
    r"|<(?P<tag>[A-Za-z][A-Za-z0-9_:.-]{1,63})(?:\s[^<>]{0,256})?>(?P<text><!\[CDATA\[[^\]]*\]\]>|[^<]+)"
)
SHAPES_PATTERN = _SHAPES + _PAIRS
# The same groups, pairs and parts never matched (an empty class first): for a pair's value, and paths.
LONE_PATTERN = _SHAPES + _PAIRS.replace("|(?P<name>", "|[^\\x00-\\x{10FFFF}](?P<name>", 1).replace(
    "|(?P<part>", "|[^\\x00-\\x{10FFFF}](?P<part>", 1
)
OPTIONS = re2.Options()
OPTIONS.log_errors = False  # a bad user pattern is reported by check-config, not on stderr
# Run through the C object (UserPattern.spans): google-re2's own sub() makes a Python Match per
# hit, rebuilds its group-name map at each named lookup, and refuses lone surrogates.
SHAPES = UserPattern(SHAPES_PATTERN)
LONE_SHAPES = UserPattern(LONE_PATTERN)
GROUPS = re2.compile(SHAPES_PATTERN, OPTIONS).groupindex  # the groups by number, the same in both
assert re2.compile(LONE_PATTERN, OPTIONS).groupindex == GROUPS
# camelCase, snake_case, kebab-case words. Python's re: no backtracking in it, keys are cut to
# 128 characters, and RE2's findall costs ~20 us a call from Python where this costs ~1.
_WORDS = re.compile(r"[A-Z]+[a-z]*|[a-z]+|[0-9]+")
# A string with none of these cannot hold a credential shape: it skips the full pass, whose
# google-re2 sub() costs several microseconds even when nothing matches.
_TRIGGERS = UserPattern(
    r"[:=]|%3[AaDd]|<[A-Za-z]|eyJ|(?i:bearer|basic)|-----BEGIN|AKIA|ASIA|gh[pousr]_|github_pat_|xox|k_live_|k_test_|glpat-|AIza"
    r"|[0-9](?:[ -]?[0-9]){12}"
)


CARD = "card number"  # the one family whose numbers are secret too


class KeyFamilies:
    """The key families with a user's additions (`added`: terms) and removals (`keep`: whole key
    names, or a family by its name)."""

    def __init__(self, *, added: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> None:
        kept = {normal(k) for k in keep}
        # term -> its family; a family is taken out whole by its name ("session") or term by term.
        terms = {term: family for family, each in KEY_FAMILIES.items() if normal(family) not in kept for term in each}
        terms.update((normal(f), "added") for f in added if normal(f))
        self._terms = {term: family for term, family in terms.items() if term not in kept}
        # Terms long enough to be told inside one word (authtoken, PHPSESSID): not auth, pass, pwd, jwt.
        self._long_terms = tuple((term, family) for term, family in self._terms.items() if len(term) >= 5)
        self._keep = frozenset(kept)

    @staticmethod
    def counts(key: str) -> bool:
        """Whether a key names a count or a limit (`session_count`, `max_tokens`)."""
        return not COUNT_WORDS.isdisjoint(words(key))

    @staticmethod
    def number_shown(key: str, family: str) -> bool:
        """Whether a number under `key`, a key of `family`, is shown: a count is (under a token
        or count-like key), a card number's digits, a numeric PIN or session id are not."""
        return family != CARD and (family == "token" or KeyFamilies.counts(key))

    def of(self, key: str) -> str | None:
        """The family `key` belongs to, or None (not cached: the Redactor caches)."""
        parts = words(key)
        if "".join(parts) in self._keep:
            return None
        terms = self._terms
        for start in range(len(parts)):
            run = ""
            for word in parts[start : start + MAX_KEY_WORDS]:
                run += word
                if run in terms:
                    return terms[run]
                if run.endswith("s") and run[:-1] in terms:
                    return terms[run[:-1]]
        # A long term inside one word, at its start or end: authtoken, PHPSESSID, clientsecret.
        for word in parts:
            if word in NOT_SECRET_WORDS:
                continue
            for term, family in self._long_terms:
                if len(word) > len(term) and (word.endswith(term) or word.startswith(term) or word.endswith(term + "s")):
                    return family
        return None


def words(key: str) -> list[str]:
    """A key's words, lower-cased: `XAuthToken` -> x, auth, token (first 128 characters)."""
    out = []
    for word in _WORDS.findall(key[:128]):
        if len(word) > 2 and word[1].isupper() and word[-1].islower():  # "XAuth", "APIKey": an acronym, a word
            cut = len(word) - len(word.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) - 1
            out += [word[:cut].lower(), word[cut:].lower()]
        else:
            out.append(word.lower())
    return out


def normal(name: str) -> str:
    """A name as family terms are written: its words joined (`API-Key` -> apikey)."""
    return "".join(words(name))


def suspect(text: str) -> bool:
    """Whether `text` may hold a credential shape (a cheap test before the full pass: ~1 us)."""
    return _TRIGGERS.search(text)


def basic_credentials(value: str) -> bool:
    """Whether a `Basic` token decodes to user:password (else it is just the word "basic" in prose)."""
    try:
        return b":" in base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def luhn(text: str) -> bool:
    """Whether the digits in `text` pass the card-number checksum."""
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_PLAIN = frozenset({int, float, bool, type(None)})


def plain(value: Any) -> bool:
    """A number, a flag or nothing (JSON's scalars other than strings)."""
    return type(value) in _PLAIN


def json_like(text: str) -> bool:
    """Whether `text` starts (after blanks) like a JSON object or array."""
    for char in text[:64]:
        if not char.isspace():
            return char in "{["
    return False


def valid(text: str) -> str:
    """`text` with lone surrogates (which JSON parsers let through and no encoder writes) replaced."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


MODEL_TOKEN_KEYS = frozenset({"token", "tokens"})


def model_token(key: str, text: str) -> bool:
    """A language model's output token (`{"token": " world", "logprob": -0.1}`): under a key named
    just token, a string no credential could be (under 8 characters, or with a blank)."""
    return key.lower() in MODEL_TOKEN_KEYS and (len(text) < 8 or any(c.isspace() for c in text))


def card_number(value: int) -> bool:
    """An integer that is a card number: 13 to 19 digits, a card's first digit, the Luhn check."""
    return 10**12 <= value < 10**19 and str(value)[0] in "23456" and luhn(str(value))

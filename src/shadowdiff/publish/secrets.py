"""What looks like a secret: key names in families, and credential shapes in text.

`publish.redact` decides what to do with them (hide, cut); this module only
recognises. A key is secret when some run of its words (`x-auth-token` -> x, auth,
token) spells a family term, singular or plural. A credential shape is found by
one RE2 alternation (linear time whatever the input), each group naming its kind;
`suspect()` is the cheap test that lets most strings skip it.
"""

from __future__ import annotations

import base64
import binascii
import re

import re2

from shadowdiff.compare.patterns import UserPattern

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
}

# Credential shapes, one RE2 alternation (leftmost match wins; each group names its kind).
SHAPES_PATTERN = (
    r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
    r"|(?P<scheme>(?i:\b(?:bearer|basic)))(?P<sep>\s+)(?P<cred>[A-Za-z0-9._~+/-]{6,}=*)"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){0,2})"
    r"|(?P<scheme_url>\b[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<userinfo>[^/\s@?#\"']+)@)?"
    r"|(?P<known>\b(?:(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35})\b)"
    r"|(?P<card>\b[2-6](?:[ -]?[0-9]){12,18}\b)"
    # name = value, name: value, "name": "value", ?name=value (the name is judged in Python)
    r"|(?P<name>[A-Za-z0-9_.\[\]-]{2,64})(?P<assign>[\"']?[ \t]*[:=][ \t]*)"
    r"(?P<value>(?i:(?:bearer|basic|digest|negotiate|token)[ \t]+)?"
    r"(?:\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[^\s&,;\"'<>}\]]+))"
)
OPTIONS = re2.Options()
OPTIONS.log_errors = False  # a bad user pattern is reported by check-config, not on stderr
SHAPES = re2.compile(SHAPES_PATTERN, OPTIONS)
# Groups are read by number: google-re2 rebuilds its name -> index map at every named lookup.
GROUPS = SHAPES.groupindex
# camelCase, snake_case, kebab-case words. Python's re: no backtracking in it, keys are cut to
# 128 characters, and RE2's findall costs ~20 us a call from Python where this costs ~1.
_WORDS = re.compile(r"[A-Z]+[a-z]*|[a-z]+|[0-9]+")
# A string with none of these cannot hold a credential shape: it skips the full pass, whose
# google-re2 sub() costs several microseconds even when nothing matches.
_TRIGGERS = UserPattern(
    r"[:=]|eyJ|(?i:bearer|basic)|-----BEGIN|AKIA|ASIA|gh[pousr]_|github_pat_|xox|k_live_|k_test_|glpat-|AIza"
    r"|[0-9](?:[ -]?[0-9]){12}"
)


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

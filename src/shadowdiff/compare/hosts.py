"""Differences the Host policy explains: the candidate wrote its own authority where the control wrote the client's.

With `shadow.host_header: own` the shadow is asked with its own Host (127.0.0.1:8002)
while the primary gets the client's (api.example.com), so a service that builds
absolute URLs differs everywhere it writes one. A string value that becomes equal to
the control's once every occurrence of the candidate's host in it is replaced by the
control's host is *explained*: not a difference. So is `http://{candidate}` where the
control has `https://{control}` (TLS ended in front of the primary).

Hosts are found as exact strings, ASCII case-insensitively (DNS names are; the rest of
the value must be equal exactly); no pattern is built from them. A host written
percent-encoded (`127.0.0.1%3A8002` in a query) is not recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowdiff.compare.budget import Budget

# (part, path) of explained values kept per comparison; past it they are still not differences.
MAX_EXPLAINED = 20
# Bytes of the two values per budget step: about 8 ns a byte when a value has upper-case letters
# (the occurrences are then found one by one), a few when not.
_BYTES_PER_STEP = 128

Explained = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Hosts:
    """The control's and the candidate's Host (both non-empty, not equal ignoring case); picklable."""

    control: str
    candidate: str

    @classmethod
    def of(cls, control: str, candidate: str) -> Hosts | None:
        """The pair when it can explain anything: None if either is empty or they are the same host."""
        if not control or not candidate or _fold(control) == _fold(candidate):
            return None
        return cls(control, candidate)

    def explains(self, control: str, candidate: str, budget: Budget) -> bool:
        """Whether `candidate` equals `control` once its host (and http:// before it, against
        https:// and the control's host) is replaced by the control's.

        Worked in UTF-8 bytes, where lower-casing touches ASCII letters only and keeps every
        position; costs a step per 128 bytes and one per occurrence of the host.
        """
        theirs, ours = _utf8(control), _utf8(candidate)
        folded = ours.lower()
        own, client = _utf8(self.candidate).lower(), _utf8(self.control)
        occurrences = folded.count(own)
        budget.spend(1 + (len(theirs) + len(ours)) // _BYTES_PER_STEP + occurrences)
        if not occurrences:
            return False
        # The control's own host, in whatever case it was written, spelled as the client sent it.
        want = _replace(theirs, theirs.lower(), client.lower(), client)
        if _replace(ours, folded, own, client) == want:
            return True
        plain = b"http://" + own
        if plain not in folded:
            return False
        upgraded = _replace(ours, folded, plain, b"https://" + client)
        return _replace(upgraded, upgraded.lower(), own, client) == want


def note(explained: Explained, part: str, path: str) -> None:
    """Keep (part, path) of an explained value, the first MAX_EXPLAINED only."""
    if len(explained) < MAX_EXPLAINED:
        explained.append((part, path))


def _fold(text: str) -> str:
    return text.lower() if text.isascii() else _utf8(text).lower().decode("utf-8", "surrogatepass")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a header may carry a lone surrogate (surrogateescape)


def _replace(text: bytes, folded: bytes, needle: bytes, replacement: bytes) -> bytes:
    """`text` with every occurrence of `needle` in its fold (`folded`, the same length) replaced by `replacement`."""
    if folded == text:  # no upper-case letter: bytes.replace does it in C
        return text.replace(needle, replacement)
    pieces, start = [], 0
    found = folded.find(needle)
    while found >= 0:
        pieces.append(text[start:found])
        pieces.append(replacement)
        start = found + len(needle)
        found = folded.find(needle, start)
    if not pieces:
        return text
    pieces.append(text[start:])
    return b"".join(pieces)

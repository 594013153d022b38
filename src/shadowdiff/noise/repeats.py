"""A/A evidence that needs no configuration: the same request seen again in live traffic.

Two identical requests a few seconds apart get two answers from the primary's own
code, for free: no third deployment, no extra call. Whatever differs between them
(a timestamp, a nonce, a timing, a random order) is noise the service makes on its
own. `Repeats` keeps the primary's last answer to each recent safe request and
hands it back when the same request comes again.

What "the same request" means is what a cache would say (RFC 9111 keys plus the
usual `Vary`): method, target (path and query), body, and the values of the headers
that commonly change an answer (`REQUEST_VARY`): two users asking for `/me` with
their own cookies are not a repeat. Only digests of those are kept, never a header.

The price, and why it is bounded:
- memory: answers up to `max_bytes` in all (`noise.repeat_max_bytes`, 4 MiB by
  default) and MAX_ENTRIES entries; one answer may take at most a quarter of it.
  Past either bound the oldest entries go;
- honesty: an answer kept `window` seconds (`noise.repeat_window`, 60 s) may differ
  from the next because the data changed in between (a write, a counter). That is
  counted as noise the primary makes; keeping the window short keeps it rare, and
  the shadow, asked at the same moment as the primary, is not affected by it.
- only GET, HEAD and OPTIONS: asking twice must not be a different request;
- CPU: each repeat handed back is one more comparison. Per route, every repeat is
  handed back until FIRST were, then only while they stay under SHARE of the route's
  safe requests: a service whose traffic is mostly repeats pays about a tenth more
  comparisons, not twice as many. Verdicts compare rates, so a sampled A/A count
  judges as well as a full one (noise.verdict).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from shadowdiff.model import CapturedRequest, Observation

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUEST_VARY = ("authorization", "cookie", "accept", "accept-encoding", "accept-language", "content-type")
MAX_ENTRIES = 4096
FIRST = 100  # repeats per route always handed back: the verdicts' first evidence
SHARE = 0.1  # past FIRST, repeats handed back per route stay under this share of its safe requests
_HEAD_BYTES = 512  # what an entry costs besides its body (the key, the observation, its headers), about


def request_key(request: CapturedRequest) -> bytes | None:
    """A digest naming what the primary was asked, None for a method that is not safe to compare."""
    if request.method not in SAFE_METHODS:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.target.encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(request.body)
    headers = request.headers
    for name in REQUEST_VARY:
        digest.update(b"\0")
        for value in headers.getall(name, ()):
            digest.update(value.encode("utf-8", "surrogateescape"))
            digest.update(b"\1")
    return digest.digest()


def _cost(observation: Observation) -> int:
    body = observation.body
    return _HEAD_BYTES + (body.size if body is not None and body.data is not None else 0)


class Repeats:
    """The primary's latest answer per recent safe request (see the module docstring)."""

    def __init__(self, window: float, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Observation, int]] = OrderedDict()
        self.held = 0  # bytes the kept answers cost
        self._routes: dict[str, list[int]] = {}  # route -> [safe requests seen, repeats handed back]

    def __len__(self) -> int:
        return len(self._entries)

    def swap(self, key: bytes, observation: Observation, route: str) -> Observation | None:
        """Keep `observation` as the latest answer to `key`, and return the one it replaces if that
        was given within the window and `route` is due a repeat (None: the first time, too long
        ago, or the route has its share; see CPU in the module docstring). Routes are the route
        table's, so their number is bounded."""
        now = self._clock()
        counts = self._routes.get(route)
        if counts is None:
            counts = self._routes[route] = [0, 0]
        counts[0] += 1
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.held -= previous[2]
        cost = _cost(observation)
        if cost <= self.max_bytes // 4:
            self._entries[key] = (now, observation, cost)
            self.held += cost
        self._trim(now)
        if previous is None or now - previous[0] > self.window:
            return None
        if counts[1] >= FIRST and counts[1] >= counts[0] * SHARE:
            return None
        counts[1] += 1
        return previous[1]

    def _trim(self, now: float) -> None:
        entries = self._entries
        while entries:
            seen, _, cost = next(iter(entries.values()))
            if now - seen <= self.window and self.held <= self.max_bytes and len(entries) <= MAX_ENTRIES:
                return
            entries.popitem(last=False)
            self.held -= cost

"""The vocabulary of an experiment, with no dependencies: the comparison worker imports it alone.

One client request (`CapturedRequest`) is answered by the **control** (the primary,
whose answer the client gets) and copied, in the background, to named **lanes**:
the shadow today; a secondary, a re-ask of the primary or more shadows tomorrow.
What one side answered is an `Observation` (a response *or* an error, never both).
An `Exchange` holds the request, the control's observation and each candidate
lane's. Comparing the control with one lane gives a `Comparison`: an outcome and
the `Difference`s behind it.

Per-request classes are `slots` dataclasses, not frozen (a frozen one costs about
1 us more to build); nothing mutates them once published (the comparator sets a
Comparison's `duration` as it finishes it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# Lanes and sides. The control is the primary's answer as the client got it.
CONTROL = "primary"
SHADOW = "shadow"
# A/A lanes: the primary's own code answering twice (noise evidence, never an outcome).
SECONDARY = "secondary"  # noise.secondary: a second instance of the primary's version
REASK = "reask"  # noise.reask_rate: the primary asked once more
REPEAT = "repeat"  # the same request seen again in live traffic: the primary's earlier answer
AA_LANES = (SECONDARY, REASK, REPEAT)

# How an exchange with an upstream can fail (Observation.error; the `kind` label).
ERROR_KINDS = ("connect", "timeout", "reset", "protocol", "too_large")

# Comparison outcomes (the `outcome` label of shadowdiff_comparisons_total).
MATCH = "match"
MISMATCH = "mismatch"
IGNORED = "ignored"
# Every remaining difference sits at a path where the primary differs from itself too (noise/).
NOISE = "noise"
# A candidate lane gave no usable answer; the label says "shadow" for the contract's sake.
SHADOW_ERROR = "shadow_error"

# RFC 9110 §7.6.1: headers that describe one connection, never the message. Both the
# proxy (which strips them) and the comparison (which never compares them) need the list.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",  # non-standard, still sent by old clients
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class Headers(Protocol):
    """What the model needs of a header collection: case-insensitive lookups, in order.

    multidict's CIMultiDictProxy (what the HTTP layer builds) is one.
    """

    def get(self, key: str, default: Any = None) -> Any: ...

    def getall(self, key: str, default: Any = ...) -> Any: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(slots=True)
class CapturedRequest:
    """One client request, as every lane will send it (before per-lane headers)."""

    method: str
    target: str  # origin-form path and query, exactly as the client sent them
    path: str  # decoded path, for routing and filters
    route: str
    request_id: str
    headers: Headers
    body: bytes  # the whole body when it is mirrored; b"" when there is none or it was streamed
    client_host: str  # the Host header the client sent ("" if none)


@dataclass(slots=True)
class Body:
    """A response body as kept for comparison: whole if it fit the cap, else a digest."""

    size: int
    data: bytes | None  # None when over the cap
    digest: str | None = None  # sha256 hex, only when data is None


class BufferAccount(Protocol):
    """Room for bytes held in memory, under mirror.max_buffered_bytes (shadowdiff.buffers.Account is one)."""

    def take(self, size: int) -> bool: ...

    def give(self, size: int) -> None: ...


class BodyCapture:
    """Keeps a streamed body up to `limit` bytes, and switches to hashing past it, or
    as soon as `budget` (if given) has no room for the next chunk.

    Memory held is bounded by `limit` whatever the body's size; what it held is given
    back to the budget when it switches to hashing, the rest by the budget's owner.
    """

    __slots__ = ("_limit", "_chunks", "_size", "_hash", "_budget")

    def __init__(self, limit: int, budget: BufferAccount | None = None) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._hash: Any = None  # hashlib's sha256 object once past the limit
        self._budget = budget

    @property
    def retained(self) -> int:
        """Bytes held in memory right now (0 once hashing)."""
        return 0 if self._hash is not None else self._size

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)
            return
        self._chunks.append(chunk)
        budget = self._budget
        if self._size > self._limit or (budget is not None and not budget.take(len(chunk))):
            self._hash = hashlib.sha256()
            for kept in self._chunks:
                self._hash.update(kept)
            if budget is not None:  # what was taken before this chunk (which was not)
                budget.give(self._size - len(chunk))
            self._chunks = []

    def result(self) -> Body:
        if self._hash is not None:
            return Body(size=self._size, data=None, digest=self._hash.hexdigest())
        return Body(size=self._size, data=b"".join(self._chunks))


@dataclass(slots=True)
class Observation:
    """What one side answered for one exchange: a response, or an error kind.

    Both latencies run from the moment the request was handed to its upstream's
    pool (connecting included), the same way on every side, so they compare.
    """

    lane: str  # "primary" for the control, else the lane's name
    elapsed: float  # seconds until the whole body was read (or the exchange failed)
    head_elapsed: float | None = None  # seconds until the response head was in
    status: int | None = None
    reason: str = ""
    headers: Headers | None = None
    body: Body | None = None
    error: str | None = None  # one of ERROR_KINDS
    detail: str = ""
    # The Host this side was asked with, when it was not the client's (shadow.host_header: own):
    # absolute URLs it writes carry it where the control's carry the client's ("" : the client's).
    host: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Exchange:
    """One request, the control's answer, and each candidate lane's answer by lane name."""

    request: CapturedRequest
    control: Observation
    candidates: Mapping[str, Observation]


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where a candidate's answer differs from the control's.

    `part` is status, header or body; `path` is `$.a.b[0]` for JSON bodies, `line N`
    for text, the header name for headers; `kind` is changed, added, removed or
    type_changed. `redacted` says the values are already redacted and cut (the
    comparison worker does it for the large ones, so the event loop does not).
    """

    part: str
    path: str
    kind: str
    control: Any
    candidate: Any
    redacted: bool = False


@dataclass(slots=True)
class Comparison:
    """The control compared with one candidate lane.

    Outcome is mismatch if any difference counts, ignored if differences existed and
    rules excused all of them, match if there were none, shadow_error if the lane
    gave nothing to compare, noise if the noise stage found every difference at a
    path where the primary differs from itself. `oversized` names the sides
    ("primary", the lane) whose decoded body passed compare.max_decoded_bytes.
    `duration` is the time spent comparing, waiting for the comparison worker excluded.

    `differences` holds every difference found, up to the engine's MAX_FOUND (more
    than compare.max_differences: the noise stage and field statistics see them all;
    the log lists the first max_differences); `cut` says the engine stopped looking
    there. `host_explained` holds (part, path) of differences the Host policy explains
    (the candidate wrote its own authority where the control wrote the client's Host),
    which are not differences. `verdicts`, once the noise stage has judged a shadow
    comparison, holds each difference's verdict (noise, regression, undecided), in order.
    """

    exchange: Exchange
    lane: str
    outcome: str
    differences: tuple[Difference, ...] = ()
    oversized: tuple[str, ...] = ()
    duration: float = 0.0
    cut: bool = False
    host_explained: tuple[tuple[str, str], ...] = ()
    verdicts: tuple[str, ...] = ()

    @property
    def request(self) -> CapturedRequest:
        return self.exchange.request

    @property
    def control(self) -> Observation:
        return self.exchange.control

    @property
    def candidate(self) -> Observation:
        return self.exchange.candidates[self.lane]

"""What the admin API and UI read: the store (`StoreSource`) or, with the store off, this
process's live field statistics (`LiveSource`). Both answer the same coroutines with
the JSON of noise.views, so the API and the UI never ask which one they have.

A `Range` is [start, end) in epoch seconds; `Range.parse()` reads the API's query:
`since=15m|1h|24h|7d` (a duration back from now), or `from=`/`to=` (epoch seconds or
ISO 8601). The live source has no history: it ignores the range and says so
(`"range": "live"`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shadowdiff.config import Config
from shadowdiff.noise.verdict import Thresholds
from shadowdiff.noise.views import fields_view, routes_view
from shadowdiff.store.reader import FOREVER, StoreReader, iso

_DURATION = re.compile(r"^(\d{1,6})(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def thresholds(config: Config) -> Thresholds:
    """The verdicts' thresholds of the noise section (the live statistics', and the store's views)."""
    noise = config.noise
    return Thresholds(noise.relative_threshold, noise.absolute_threshold, noise.min_observations)


class RangeError(ValueError):
    pass


def _instant(text: str, key: str) -> int:
    if re.fullmatch(r"\d{1,12}(\.\d+)?", text):
        return int(float(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RangeError(f"{key} must be epoch seconds or ISO 8601 (2026-12-03T10:00:00Z), got {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class Range:
    start: int = 0
    end: int = FOREVER
    label: str = "all"

    @classmethod
    def parse(cls, query: Mapping[str, str], *, now: float | None = None) -> Range:
        now = time.time() if now is None else now
        since = query.get("since")
        if since:
            found = _DURATION.match(since)
            if found is None:
                raise RangeError(f"since must be a duration such as 15m, 1h, 24h or 7d, got {since[:40]!r}")
            return cls(int(now) - int(found[1]) * _UNITS[found[2]], FOREVER, since)
        start = _instant(query["from"], "from") if query.get("from") else 0
        end = _instant(query["to"], "to") if query.get("to") else FOREVER
        if end <= start:
            raise RangeError("to must be after from")
        label = "all" if (start, end) == (0, FOREVER) else "custom"
        return cls(start, end, label)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "from": iso(self.start) if self.start else None, "to": iso(self.end) if self.end < FOREVER else None}


class LiveSource:
    """This process's field statistics (or the supervisor's sum of its workers'); no samples."""

    stored = False

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    async def routes(self, span: Range) -> dict[str, Any]:
        view = routes_view(self._snapshot())
        view["range"] = {"label": "live", "from": None, "to": None}
        view["store"] = None
        return view

    async def fields(self, route: str, span: Range, only: str | None) -> dict[str, Any] | None:
        view = fields_view(self._snapshot(), route, only=only)
        if view is not None:
            view["range"] = {"label": "live", "from": None, "to": None}
        return view

    async def samples(
        self, route: str, part: str | None, path: str | None, limit: int, span: Range = Range(), *, summary: bool = False
    ) -> list[dict[str, Any]] | None:
        return None  # nothing is kept without the store

    async def sample(self, sample_id: int) -> dict[str, Any] | None:
        return None


class StoreSource:
    """The store, summed over every instance that writes to it. `before_read()` (if given) lets this
    process's writer flush first, so that what it just counted is there."""

    stored = True

    def __init__(
        self,
        reader: StoreReader,
        thresholds: Callable[[], Thresholds],
        *,
        before_read: Callable[[], Awaitable[None]] | None = None,
        shown: str = "",
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.reader = reader
        self._thresholds = thresholds
        self._before_read = before_read
        self.shown = shown  # the store's URL without its password
        self._on_error = on_error

    async def _read(self, call: Callable[..., Any], *args: Any, flush: bool = True, **kwargs: Any) -> Any:
        """`call(*args, **kwargs)` in a thread, after this process's flush (unless `flush` is false:
        the second read of one view); a failure is counted and raised."""
        if flush and self._before_read is not None:
            await self._before_read()
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except Exception:
            self._on_error()
            raise

    async def routes(self, span: Range) -> dict[str, Any]:
        snapshot = await self._read(self.reader.snapshot, self._thresholds(), start=span.start, end=span.end)
        trend = await self._read(self.reader.trend, start=span.start, end=span.end, flush=False)
        view = routes_view(snapshot)
        for row in view["routes"]:
            row["trend"] = trend["routes"].get(row["route"], [])
        view["trend_step"] = trend["step"]
        view["range"] = span.describe()
        view["store"] = self.shown
        view["instances"] = await self._read(self.reader.instances, flush=False)
        return view

    async def fields(self, route: str, span: Range, only: str | None) -> dict[str, Any] | None:
        snapshot = await self._read(self.reader.snapshot, self._thresholds(), start=span.start, end=span.end, route=route)
        view = fields_view(snapshot, route, only=only)
        if view is None:
            return None
        trend = await self._read(self.reader.field_trend, route, start=span.start, end=span.end, flush=False)
        for row in view["fields"]:
            row["trend"] = trend["fields"].get(f"{row['part']} {row['path']}", [])
        view["trend_step"] = trend["step"]
        view["range"] = span.describe()
        return view

    async def samples(
        self, route: str, part: str | None, path: str | None, limit: int, span: Range = Range(), *, summary: bool = False
    ) -> list[dict[str, Any]] | None:
        """The newest samples (whole, or with `summary` what a list shows: no bodies)."""
        return await self._read(
            self.reader.samples, route, part=part, path=path, limit=limit, start=span.start, end=span.end, summary=summary
        )

    async def sample(self, sample_id: int) -> dict[str, Any] | None:
        return await self._read(self.reader.sample, sample_id, flush=False)  # a sample has an id once written

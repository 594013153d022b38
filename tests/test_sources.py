"""Range.parse: the time range of the routes and fields endpoints, from their query."""

from __future__ import annotations

import pytest

from shadowdiff.sources import Range, RangeError
from shadowdiff.store.reader import FOREVER

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("since", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800)])
def test_since_is_a_duration_back_from_now(since: str, seconds: int) -> None:
    """since=N{s,m,h,d} starts that long before now and has no end; its label is the duration."""
    span = Range.parse({"since": since}, now=NOW)
    assert (span.start, span.end, span.label) == (int(NOW) - seconds, FOREVER, since)


def test_from_and_to_take_epoch_seconds_or_iso_8601() -> None:
    """from/to accept epoch seconds and ISO 8601 (Z, an offset, or none meaning UTC)."""
    span = Range.parse({"from": "2027-01-15T08:00:00Z", "to": "1800003600"})
    assert span == Range(1_800_000_000, 1_800_003_600, "custom")  # 2027-01-15T08:00:00Z is 1.8e9
    assert Range.parse({"from": "2027-01-15T08:00:00+01:00"}).start == Range.parse({"from": "2027-01-15T07:00:00"}).start
    assert Range.parse({"from": "1800000000", "to": "1800003600"}) == Range(1_800_000_000, 1_800_003_600, "custom")


def test_no_range_is_everything() -> None:
    """Without since/from/to the range is all the store keeps."""
    assert Range.parse({}) == Range(0, FOREVER, "all")
    assert Range.parse({}).describe() == {"label": "all", "from": None, "to": None}


@pytest.mark.parametrize(
    ("query", "said"),
    [({"since": "2w"}, "15m, 1h"), ({"since": "-1h"}, "15m, 1h"), ({"from": "last tuesday"}, "ISO 8601"), ({"from": "100", "to": "100"}, "after")],
)
def test_a_bad_range_says_what_to_write(query: dict[str, str], said: str) -> None:
    """A duration of no known unit, a malformed instant or an empty span is a RangeError naming the form."""
    with pytest.raises(RangeError, match=said):
        Range.parse(query)

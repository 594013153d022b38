"""The templates' number and time formats, and the policy every UI response carries."""

from __future__ import annotations

import pytest

from shadowdiff.ui.templating import CSP, count, millis, percent, value, when


@pytest.mark.parametrize(
    ("rate", "shown"), [(None, "—"), (0.0, "0%"), (0.0004, "<0.1%"), (0.1304, "13.0%"), (1.0, "100.0%")]
)
def test_rates_are_percentages_that_never_round_to_zero(rate: float | None, shown: str) -> None:
    """A rate is a percentage with one decimal; a small one that is not zero says <0.1%; none is a dash."""
    assert percent(rate) == shown


def test_counts_latencies_instants_and_values() -> None:
    """Counts are grouped by thousands, latencies have two decimals under 100 ms, instants read as
    UTC, values are JSON cut to a length."""
    assert (count(1234567), count(None)) == ("1,234,567", "—")
    assert (millis(0.7345), millis(1234.5), millis(None)) == ("0.73", "1,234", "—")
    assert when("2026-12-04T18:56:22.498Z") == "2026-12-04 18:56:22 UTC"
    assert (value("pro"), value(None), value(False), len(value("x" * 500, 40))) == ('"pro"', "—", "false", 40)


def test_the_policy_allows_this_origin_alone() -> None:
    """The Content-Security-Policy names no other origin and allows no inline script or style."""
    assert CSP.startswith("default-src 'none';")
    assert "'self'" in CSP and "http" not in CSP and "*" not in CSP and "unsafe-inline" not in CSP

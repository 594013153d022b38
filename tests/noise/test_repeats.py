"""Repeats: the primary's recent answers, handed back for identical safe requests, sampled per route."""

from __future__ import annotations

from shadowdiff.noise.repeats import FIRST, SHARE, Repeats, request_key
from tests.values import request, seen as observed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_is_handed_back_within_the_window_only() -> None:
    """The second answer to the same request returns the first; past the window, nothing."""
    clock = Clock()
    repeats = Repeats(60.0, 1 << 20, clock=clock)
    key = request_key(request("/r", target="/r"))
    first, second, third = observed("primary", b'{"n": 1}'), observed("primary", b'{"n": 2}'), observed("primary", b'{"n": 3}')
    assert repeats.swap(key, first, "/r") is None
    assert repeats.swap(key, second, "/r") is first
    clock.now = 61.0
    assert repeats.swap(key, third, "/r") is None


def test_repeats_past_the_first_ones_stay_under_their_share_of_the_route() -> None:
    """A route whose every request is a repeat gets FIRST repeats, then about SHARE of its requests;
    another route still gets its own first ones."""
    repeats = Repeats(60.0, 1 << 20)
    key = request_key(request("/r", target="/r"))
    asked = 3000
    handed = sum(repeats.swap(key, observed("primary", b"{}"), "/r") is not None for _ in range(asked))
    assert abs(handed - asked * SHARE) <= 1 and handed > FIRST
    other = request_key(request("/other", target="/other"))
    handed = sum(repeats.swap(other, observed("primary", b"{}"), "/other") is not None for _ in range(FIRST + 1))
    assert handed == FIRST

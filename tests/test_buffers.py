"""The buffer budget (shadowdiff.buffers): request copies and response captures share mirror.max_buffered_bytes."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp

from shadowdiff.buffers import Account, BufferBudget
from shadowdiff.model import BodyCapture
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, settle, url_of


def test_a_capture_past_the_budget_becomes_a_digest_and_gives_its_room_back() -> None:
    """A capture the budget has no room for switches to hashing and gives back what it held; the digest is the body's."""
    budget = BufferBudget(100)
    account = Account(budget)
    capture = BodyCapture(1 << 20, account)
    capture.feed(b"a" * 60)
    assert (budget.held, capture.retained) == (60, 60)
    capture.feed(b"b" * 60)  # 120 > 100: no room
    assert (budget.held, capture.retained) == (0, 0)
    body = capture.result()
    assert body.data is None and body.size == 120
    assert body.digest == hashlib.sha256(b"a" * 60 + b"b" * 60).hexdigest()


def test_an_account_gives_back_everything_it_took_once() -> None:
    """Closing an account returns the request body's room and every capture's, once; the budget is whole again,
    and a closed account takes nothing more."""
    budget = BufferBudget(1000)
    assert budget.take(300)  # the request body, taken before the experiment opened
    account = Account(budget, held=300)
    assert account.take(200) and not account.take(600)
    assert budget.held == 500
    account.close()
    account.close()
    assert budget.held == 0
    assert not account.take(1) and budget.held == 0  # closed: a late capture gets no room


async def test_response_captures_count_against_the_budget(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """With a budget smaller than two 1 MiB answers, concurrent mirrored downloads never hold more than the budget,
    are still compared (by digest: identical bodies match), and give every byte back."""
    limit = 1536 * 1024
    proxy = await start_proxy(primary.url, shadow.url, mirror={"max_buffered_bytes": limit}, compare={"max_body_bytes": 2 << 20})
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, proxy.budget.held)
            await asyncio.sleep(0)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        async with aiohttp.ClientSession() as client:

            async def fetch() -> int:
                async with client.get(url_of(proxy) + "/large?size=1048576") as response:
                    await response.read()
                    return response.status

            assert await asyncio.gather(*(fetch() for _ in range(6))) == [200] * 6
        await settle(proxy)
    finally:
        watcher.cancel()
    assert 0 < peak <= limit
    assert proxy.budget.held == 0
    reader = metrics(proxy)
    assert reader.value("shadowdiff_comparisons_total", route="/large", outcome="match") == 6

"""One mirrored exchange over its lanes (`Experiment`), and their dispatch (`Mirror`).

`Mirror.start()` runs once the primary's response head is in, never waits and never
raises: each lane takes the copy if it is under its own bounds (in-flight cap,
breaker), and if any did, one background task runs the experiment:

1. send the copy on every lane that took it, each under its own deadlines;
2. wait for the control's observation (the primary's answer, as relayed to the
   client), at most `shadow.timeout` more: a primary still streaming then (a long
   download, an event stream) gives up the exchange, counted `primary_unfinished`,
   and the relay stops capturing at its next chunk;
3. compare each lane with the control, and publish each comparison: A/A lanes
   first (their evidence then counts for the shadow's verdicts), the shadow last.
   With `repeats` (noise.repeats), the primary's earlier answer to the same request,
   if it is recent, is one more A/A lane (`repeat`) at no cost but a comparison
   (sampled per route past the first ones: noise.repeats).

The first lane is the shadow; the others (A/A lanes) go only with it, when it took
the copy: their evidence is for the shadow's comparisons. Their comparisons use at
most half the comparison worker's queue, so they never crowd the shadow's out.

The wait in (2) is `asyncio.wait` on the control's future with a timeout: giving up
never cancels a future other lanes or the relay share. Lane slots are freed when
the task ends, however it ends (even cancelled before it started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from shadowdiff import log
from shadowdiff.buffers import Account, BufferBudget
from shadowdiff.compare.rules import RuleSet
from shadowdiff.experiment.comparator import CompareFailed, Comparator, ComparisonQueueFull
from shadowdiff.experiment.lanes import Lane
from shadowdiff.metrics import Metrics
from shadowdiff.model import REPEAT, SHADOW, CapturedRequest, Exchange, Observation
from shadowdiff.noise.repeats import Repeats, request_key
from shadowdiff.publish.pipeline import Publisher
from shadowdiff.tasks import TaskSet


class Experiment:
    """One mirrored request: the lanes that took it, and the control's answer to come.

    The relay calls `deliver()` once the primary's answer is whole (or failed, or the
    client left: None), and checks `wanted` at each chunk: False once the experiment
    gave up waiting, and nothing more needs capturing. `control` is the future of that
    observation: whoever waits on it shares it, and nobody cancels it.
    """

    __slots__ = ("request", "lanes", "rules", "body_limit", "control_wait", "wanted", "control", "account", "_mirror")

    def __init__(
        self,
        mirror: Mirror,
        request: CapturedRequest,
        lanes: list[Lane],
        *,
        rules: RuleSet,
        body_limit: int,
        control_wait: float,
        account: Account,
    ) -> None:
        self._mirror = mirror
        self.request = request
        self.lanes = lanes
        self.rules = rules
        self.body_limit = body_limit
        self.control_wait = control_wait
        self.wanted = True
        self.control: asyncio.Future[Observation | None] = asyncio.get_running_loop().create_future()
        self.account = account  # the request body's room and every capture's, given back at the end

    def deliver(self, observation: Observation | None) -> None:
        """The control's observation (None: the client left, there is nothing to compare)."""
        if not self.control.done():
            self.control.set_result(observation)

    def finished(self, task: asyncio.Task[None]) -> None:
        for lane in self.lanes:
            lane.release()
        self._mirror.in_flight -= 1
        self.account.close()

    async def run(self) -> None:
        request, lanes = self.request, self.lanes
        if len(lanes) == 1:  # today's case: no gather, no extra task
            lane = lanes[0]
            observation = await lane.upstream.observe(
                request, lane.headers_for(request), lane=lane.name, body_limit=self.body_limit, budget=self.account
            )
            candidates = {lane.name: lane.observed(request, observation)}
        else:
            sent = await asyncio.gather(
                *(lane.send(request, body_limit=self.body_limit, budget=self.account) for lane in lanes)
            )
            candidates = {lane.name: observation for lane, observation in zip(lanes, sent)}
        # The control's whole answer. Waiting never cancels its future: others may share it.
        control = self.control
        if not control.done():
            done, _ = await asyncio.wait((control,), timeout=self.control_wait)
            if not done:
                self.wanted = False  # the relay stops capturing at its next chunk
                self._mirror.skipped("primary_unfinished")
                return
        primary = control.result()
        if primary is None or not primary.ok:
            return  # the primary's failure is counted on its own, never compared
        mirror = self._mirror
        names = [lane.name for lane in lanes]
        repeats = mirror.repeats
        if repeats is not None and (key := request_key(request)) is not None:
            previous = repeats.swap(key, primary, request.route)
            if previous is not None:
                candidates[REPEAT] = previous
                names.append(REPEAT)
        if len(names) > 1:  # A/A evidence first, the shadow last
            names.sort(key=lambda name: name == SHADOW)
        exchange = Exchange(request, primary, candidates)
        for name in names:
            try:
                comparison = mirror.comparator.compare_now(exchange, name, self.rules)
            except CompareFailed as exc:
                mirror.failed(request, exc)
                continue
            if comparison is None:  # too large, encoded or costly for the event loop
                await mirror.judge(exchange, name, self.rules)
            else:
                mirror.publisher.publish(comparison)


class Mirror:
    """Starts experiments over its lanes; owns their tasks until they end."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        *,
        comparator: Comparator,
        publisher: Publisher,
        metrics: Metrics,
        on_skip: Callable[[str], None],
        budget: BufferBudget,
        repeats: Repeats | None = None,
        on_aa_skip: Callable[[str, str], None] = lambda source, reason: None,
    ) -> None:
        self.lanes = tuple(lanes)
        self.budget = budget
        self.repeats = repeats  # noise.repeats: the primary's recent answers, None when off
        self._aa_skipped = on_aa_skip
        self.comparator = comparator
        self.publisher = publisher
        self._metrics = metrics
        self.skipped = on_skip
        self._tasks = TaskSet()
        self.in_flight = 0  # experiments under way (sent, or waiting to be compared)
        metrics.watch_in_flight(lambda: self.in_flight)  # read when needed, not written per request

    def start(
        self,
        request: CapturedRequest,
        *,
        rules: RuleSet,
        body_limit: int,
        control_wait: float,
        held: int = 0,
    ) -> Experiment | None:
        """Start the experiment for `request` on every lane under its bounds; None if none took it.

        `held`: budget bytes the request's body already holds, given back with the rest when it ends."""
        shadow, *others = self.lanes
        if not shadow.admit():
            return None
        lanes = [shadow]
        for lane in others:  # A/A lanes: only with the shadow, each under its own bounds
            if (lane.accepts is None or lane.accepts(request)) and lane.admit():
                lanes.append(lane)
        experiment = Experiment(
            self,
            request,
            lanes,
            rules=rules,
            body_limit=body_limit,
            control_wait=control_wait,
            account=Account(self.budget, held),
        )
        self.in_flight += 1
        task = self._tasks.spawn(experiment.run(), name=f"shadow {request.request_id}")
        task.add_done_callback(experiment.finished)  # runs even for a task cancelled before it started
        return experiment

    async def judge(self, exchange: Exchange, lane: str, rules: RuleSet) -> None:
        """Compare one lane with the control in the worker (compare_now() said so) and publish the result."""
        evidence = lane != SHADOW
        try:
            comparison = await self.comparator.compare(exchange, lane, rules, inline=False, spare=evidence)
        except ComparisonQueueFull:
            if evidence:
                self._aa_skipped(lane, "compare_queue_full")
            else:
                self.skipped("compare_queue_full")
            return
        except CompareFailed as exc:
            self.failed(exchange.request, exc)
            return
        self.publisher.publish(comparison)

    def failed(self, request: CapturedRequest, exc: CompareFailed) -> None:
        """Neither mirrored nor an outcome: counted on its own, one line, no traceback flood."""
        self._metrics.compare_failures.labels(exc.reason).inc()
        log.event(
            "error",
            "compare_failed",
            request_id=self.publisher.redactor.text(request.request_id),
            route=request.route,
            reason=exc.reason,
            error=str(exc)[:300],
        )

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for running experiments, cancel the rest; how many were cancelled."""
        return await self._tasks.drain(timeout)

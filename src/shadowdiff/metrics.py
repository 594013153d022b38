"""Every Prometheus collector shadowdiff exports, defined once.

Each proxy owns a `Metrics` with its own registry, so two proxies in one process
(the tests, the demo) never share counters. Label values are bounded by
construction: routes come from `routing`, methods are folded into a known set,
status codes are numbers, and the other labels are fixed vocabularies.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from shadowdiff import log
from shadowdiff.model import AA_LANES, CONTROL, ERROR_KINDS, SHADOW

# Set by `serve --workers N` for its workers only: prometheus-client then keeps every value in
# a per-process file in that directory, and the supervisor's /metrics sums them
# (multiprocess mode; gauges say how in `multiprocess_mode`).
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# `*_created` series double the exposition for no dashboard's benefit.
disable_created_metrics()

KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT"})

UPSTREAMS = (CONTROL, SHADOW)
SKIP_REASONS = (
    "method", "sampled_out", "filtered", "paused", "body_too_large", "buffer_full", "overload", "primary_unfinished",
    "shadow_unhealthy", "compare_queue_full",
)  # fmt: skip
# Why a comparison could not be made (CompareFailed.reason; the `reason` label of compare_failures).
COMPARE_FAILURE_REASONS = ("timeout", "worker_died", "worker_unavailable", "engine_error")

EVICTION_REASONS = ("slow_head", "idle")  # proxy/edge.py
# A/A comparisons (noise evidence) by how they ended, and why an A/A copy or comparison was skipped.
AA_OUTCOMES = ("match", "differ", "ignored", "error")
AA_SKIP_REASONS = ("overload", "unhealthy", "compare_queue_full")
VERDICTS = ("noise", "regression", "undecided")  # shadowdiff.noise.verdict
OTHER_FIELD = "other"  # the path label past noise.max_field_series

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_COMPARE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class _Children:
    """A labelled collector whose children are cached by their label values.

    prometheus-client's `labels()` checks its arguments and takes a lock on every
    call (about 1.5 us); the request path makes half a dozen such calls. Label
    values are bounded (see above), so the cache is too.
    """

    __slots__ = ("collector", "_children")

    def __init__(self, collector: Any) -> None:
        self.collector = collector
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.collector.labels(*values)
        return child


STORE_OPS = ("write", "retention", "read")
STORE_DROPS = ("sample",)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = _Children(
            Counter(
                "shadowdiff_requests",
                "Client requests answered, by route, method and the status the client got.",
                ["route", "method", "status"],
                registry=registry,
            )
        )
        self.upstream_duration = _Children(
            Histogram(
                "shadowdiff_upstream_duration_seconds",
                "Time from sending to an upstream until its whole response was read.",
                ["upstream", "route"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.upstream_responses = _Children(
            Counter(
                "shadowdiff_upstream_responses",
                "Responses received from each upstream, by status class.",
                ["upstream", "route", "status_class"],
                registry=registry,
            )
        )
        self.upstream_errors = _Children(
            Counter(
                "shadowdiff_upstream_errors",
                "Upstream exchanges that gave no usable response, by kind.",
                ["upstream", "kind"],
                registry=registry,
            )
        )
        self.mirrored = _Children(
            Counter(
                "shadowdiff_mirrored",
                "Exchanges mirrored to the shadow whose primary answered (each ends as one comparison).",
                ["route"],
                registry=registry,
            )
        )
        self.mirror_skipped = _Children(
            Counter(
                "shadowdiff_mirror_skipped",
                "Requests not mirrored, by reason.",
                ["reason"],
                registry=registry,
            )
        )
        self.recorded = Counter(
            "shadowdiff_recorded",
            "Exchanges written to the recording (record.enabled).",
            registry=registry,
        )
        self.record_errors = Counter(
            "shadowdiff_record_errors",
            "Exchanges the recorder could not write (a full, read-only or missing directory); clients are never affected.",
            registry=registry,
        )
        self.mirror_enabled = Gauge(
            "shadowdiff_mirror_enabled",
            "1 while mirroring is on, 0 while it is paused (the kill switch, or mirror.enabled: false).",
            registry=registry,
            multiprocess_mode="livemin",  # with workers: 0 once any worker is paused
        )
        self.mirror_sample_rate = Gauge(
            "shadowdiff_mirror_sample_rate",
            "The share of eligible requests mirrored now (mirror.sample_rate, or its live setting).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.shadow_in_flight = Gauge(
            "shadowdiff_shadow_in_flight",
            "Shadow exchanges under way (sent, or waiting to be compared).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.comparisons = _Children(
            Counter(
                "shadowdiff_comparisons",
                "Comparisons of primary and shadow responses, by outcome.",
                ["route", "outcome"],
                registry=registry,
            )
        )
        self.differences = _Children(
            Counter(
                "shadowdiff_differences",
                "Differences found, by the part of the response they are in.",
                ["route", "part"],
                registry=registry,
            )
        )
        self.compare_duration = Histogram(
            "shadowdiff_compare_duration_seconds",
            "Time spent comparing one exchange, inline or in the comparison worker (waiting for the worker excluded).",
            buckets=_COMPARE_BUCKETS,
            registry=registry,
        )
        self.compare_failures = _Children(
            Counter(
                "shadowdiff_compare_failures",
                "Exchanges that could not be compared, by reason (timeout: compare.timeout passed; worker_died; "
                "worker_unavailable: no worker could start; engine_error).",
                ["reason"],
                registry=registry,
            )
        )
        self.bodies_too_large = _Children(
            Counter(
                "shadowdiff_bodies_too_large",
                "Response bodies not expanded for comparison: decoding passed compare.max_decoded_bytes.",
                ["upstream"],
                registry=registry,
            )
        )
        self.upstream_up = _Children(
            Gauge(
                "shadowdiff_upstream_up",
                "1 if the upstream's last exchange got a response, 0 if it could not be reached.",
                ["upstream"],
                registry=registry,
                multiprocess_mode="livemax",  # with workers: 1 if any worker reaches it
            )
        )
        self.connections_shed = Counter(
            "shadowdiff_connections_shed",
            "Client connections refused with 503 at listen.max_connections.",
            registry=registry,
        )
        self.connections_evicted = _Children(
            Counter(
                "shadowdiff_connections_evicted",
                "Client connections closed at listen.max_connections to admit a new one: "
                "slow_head (no whole request head yet) or idle (kept alive between requests).",
                ["reason"],
                registry=registry,
            )
        )
        self.head_timeouts = Counter(
            "shadowdiff_request_head_timeouts",
            "Client connections closed because a request head did not arrive whole within listen.head_timeout.",
            registry=registry,
        )
        self.malformed_requests = Counter(
            "shadowdiff_malformed_requests",
            "Requests rejected by the HTTP parser before any handler: 400 (bad framing, smuggling shapes) "
            "or 431 (a head past the listen limits); they reach no upstream.",
            registry=registry,
        )
        self.log_dropped = Counter(
            "shadowdiff_log_lines_dropped",
            "Log lines dropped because stdout did not keep up (the event loop never waits for it).",
            registry=registry,
        )
        self.sink_dropped = _Children(
            Counter(
                "shadowdiff_sink_dropped",
                "Comparison reports a sink dropped because it did not keep up (its queue was full).",
                ["sink"],
                registry=registry,
            )
        )
        self.aa_comparisons = _Children(
            Counter(
                "shadowdiff_aa_comparisons",
                "A/A comparisons (the primary's code against itself: noise evidence) by source "
                "(secondary, reask, repeat) and outcome (match, differ, ignored, error).",
                ["source", "outcome"],
                registry=registry,
            )
        )
        self.aa_skipped = _Children(
            Counter(
                "shadowdiff_aa_skipped",
                "A/A copies or comparisons not made, by source and reason (overload: the lane's in-flight cap; "
                "unhealthy: its breaker is open; compare_queue_full: the worker's queue is half full).",
                ["source", "reason"],
                registry=registry,
            )
        )
        self.field_differences = _Children(
            Counter(
                "shadowdiff_field_differences",
                "Shadow differences by route, field path (array indices as [*]; 'other' past "
                "noise.max_field_series) and the path's verdict when counted (noise, regression, undecided).",
                ["route", "path", "verdict"],
                registry=registry,
            )
        )
        self.store_errors = _Children(
            Counter(
                "shadowdiff_store_errors",
                "Store operations that failed, by op (write: a flush of statistics and samples, retried at the "
                "next flush; retention; read: an admin API or UI read). Clients are never affected.",
                ["op"],
                registry=registry,
            )
        )
        self.store_dropped = _Children(
            Counter(
                "shadowdiff_store_dropped",
                "What the store did not keep, by what (sample: the writer's queue was full, or the flush that "
                "carried it failed; statistics are never dropped, they wait for the store).",
                ["what"],
                registry=registry,
            )
        )
        self.max_field_series = 1000  # (route, path) pairs with a series of their own (noise.max_field_series)
        self._field_series: set[tuple[str, str]] = set()
        self._log_dropped_seen = 0
        self._sink_dropped: dict[str, tuple[Callable[[], int], list[int]]] = {}
        self._up: dict[str, bool] = {}
        self._in_flight: Callable[[], int] | None = None
        self._refreshing = threading.Lock()  # /metrics renders in a thread (shadowdiff.scrape)

        # Zero-valued series for the fixed vocabularies, so rate() works from the start.
        for reason in SKIP_REASONS:
            self.mirror_skipped.labels(reason)
        for reason in EVICTION_REASONS:
            self.connections_evicted.labels(reason)
        for reason in COMPARE_FAILURE_REASONS:
            self.compare_failures.labels(reason)
        for upstream in UPSTREAMS:
            for kind in ERROR_KINDS:
                self.upstream_errors.labels(upstream, kind)
        for source in AA_LANES:
            for outcome in AA_OUTCOMES:
                self.aa_comparisons.labels(source, outcome)
        for op in STORE_OPS:
            self.store_errors.labels(op)
        for what in STORE_DROPS:
            self.store_dropped.labels(what)

    def mirroring(self, mirror: Any) -> None:
        """The live mirroring state: on or paused, and the sample rate (a MirrorConfig)."""
        self.mirror_enabled.set(1 if mirror.enabled else 0)
        self.mirror_sample_rate.set(mirror.sample_rate)

    def field_difference(self, route: str, path: str, verdict: str) -> None:
        """One shadow difference at `path` on `route`; past max_field_series (route, path) pairs, under 'other'."""
        key = (route, path)
        if key not in self._field_series:
            if len(self._field_series) >= self.max_field_series:
                path = OTHER_FIELD
            else:
                self._field_series.add(key)
        self.field_differences.labels(route, path, verdict).inc()

    def watch_in_flight(self, read: Callable[[], int]) -> None:
        """shadow_in_flight reads `read()` at scrape time (in a worker: at each refresh())."""
        if MULTIPROCESS:
            self._in_flight = read  # the supervisor reads files, never calls into a worker
        else:
            self.shadow_in_flight.set_function(read)

    def watch_sink(self, name: str, read: Callable[[], int]) -> None:
        """shadowdiff_sink_dropped_total{sink=name} follows `read()`, the sink's own count of drops."""
        self._sink_dropped[name] = (read, [0])
        self.sink_dropped.labels(name)

    def refresh(self) -> None:
        """Bring values kept outside the collectors up to date (at scrape time; each second in a worker).
        Safe from any thread."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        dropped = log.dropped()  # the writer thread counts; the counter catches up here
        if dropped > self._log_dropped_seen:
            self.log_dropped.inc(dropped - self._log_dropped_seen)
            self._log_dropped_seen = dropped
        for name, (read, seen) in self._sink_dropped.items():
            now = read()
            if now > seen[0]:
                self.sink_dropped.labels(name).inc(now - seen[0])
                seen[0] = now
        if self._in_flight is not None:
            self.shadow_in_flight.set(self._in_flight())

    def set_up(self, upstream: str, up: bool) -> None:
        if self._up.get(upstream) is not up:  # a gauge write takes a lock: only on a change
            self._up[upstream] = up
            self.upstream_up.labels(upstream).set(1 if up else 0)

    def upstream_answered(self, upstream: str, route: str, status: int, elapsed: float) -> None:
        self.set_up(upstream, True)
        self.upstream_duration.labels(upstream, route).observe(elapsed)
        self.upstream_responses.labels(upstream, route, status_class(status)).inc()

    def upstream_failed(self, upstream: str, kind: str) -> None:
        self.upstream_errors.labels(upstream, kind).inc()
        if kind == "connect":
            self.set_up(upstream, False)

    def exposition(self) -> bytes:
        """The whole text exposition, rendered now (the admin listener serves it through
        `scrape.SharedRender`, in a thread; this takes tens of ms at the route cap)."""
        self.refresh()
        return generate_latest(self.registry)

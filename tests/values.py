"""Plain values for tests that need no sockets: captured requests, observations, exchanges."""

from __future__ import annotations

from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.model import SHADOW, BodyCapture, CapturedRequest, Comparison, Exchange, Observation
from shadowdiff.publish.redact import Report

JSON = {"Content-Type": "application/json"}


def request(route: str = "/r", method: str = "GET", target: str = "/r") -> CapturedRequest:
    return CapturedRequest(
        method=method, target=target, path=target.split("?")[0], route=route, request_id="id",
        headers=CIMultiDictProxy(CIMultiDict()), body=b"", client_host="",
    )  # fmt: skip


def seen(lane: str, body: bytes | Any = b"", status: int = 200, headers: Any = None, limit: int = 1 << 20) -> Observation:
    """What `lane` answered: `body` as bytes, or as a value sent as JSON."""
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
        headers = {**JSON, **(headers or {})}
    capture = BodyCapture(limit)
    capture.feed(body)
    return Observation(
        lane, 0.001, 0.0005, status=status, headers=CIMultiDictProxy(CIMultiDict(headers or {})), body=capture.result()
    )


def exchange(control: Observation, shadow: Observation, *, route: str = "/r", method: str = "GET") -> Exchange:
    return Exchange(request(route, method), control, {SHADOW: shadow})


class Recorder:
    """A publish sink that keeps every report it gets (and wants all, or none)."""

    def __init__(self, name: str = "recorder", wants: bool = True) -> None:
        self.name = name
        self._wants = wants
        self.reports: list[Report] = []

    def wants(self, comparison: Comparison) -> bool:
        return self._wants

    def __call__(self, report: Report) -> None:
        self.reports.append(report)

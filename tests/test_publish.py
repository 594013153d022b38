"""What leaves the process: redacted, truncated mismatch lines, and sinks that cannot break the proxy."""

from __future__ import annotations

import orjson
import pytest

from shadowdiff.compare import Comparison, Difference, Exchange
from shadowdiff.compare.model import MISMATCH
from shadowdiff.config import LoggingConfig
from shadowdiff.publish import REDACTED, LogSink, Publisher, Redactor
from tests.compare.test_engine import request, seen


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(LoggingConfig(max_value_chars=40))


@pytest.mark.parametrize(
    ("difference", "primary", "shadow"),
    [
        (Difference("header", "authorization", "changed", "Bearer a", "Bearer b"), REDACTED, REDACTED),
        (Difference("header", "cookie", "added", None, "sid=1"), None, REDACTED),
        (Difference("header", "set-cookie:sid", "removed", "set", None), "set", None),
        (Difference("header", "cache-control", "changed", "no-cache", "max-age=1"), "no-cache", "max-age=1"),
        (Difference("body", "$.user.password", "changed", "hunter2", "hunter3"), REDACTED, REDACTED),
        (Difference("body", "$.users[0].Token", "changed", "t1", "t2"), REDACTED, REDACTED),
        (Difference("body", "$.user", "added", None, {"name": "a", "password": "p"}), None, {"name": "a", "password": REDACTED}),
        (Difference("body", "$.note", "changed", "x" * 50, "short"), "x" * 40 + "...(+10 chars)", "short"),
        (Difference("status", "status", "changed", 200, 500), 200, 500),
        (Difference("body", "line 3", "changed", "user=a&password=hunter2&x=1", 'token: "abc" ok'),
         f"user=a&password={REDACTED}&x=1", f"token: {REDACTED} ok"),
        (Difference("body", "$", "type_changed", 'not JSON: {"password": "two words"}', "JSON"),
         f'not JSON: {{"password": {REDACTED}}}', "JSON"),
    ],
)
def test_redaction_and_truncation(redactor: Redactor, difference: Difference, primary: object, shadow: object) -> None:
    """Configured headers and body fields are redacted (also inside added objects); long values are cut."""
    out = redactor.difference(difference)
    assert (out["primary"], out["shadow"]) == (primary, shadow)
    assert (out["part"], out["path"], out["kind"]) == (difference.part, difference.path, difference.kind)


def test_mismatch_line_has_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """A mismatch is one JSON line with ts, level, event and every field the contract names."""
    exchange = Exchange(request("/users/{id}"), seen("primary", {"a": 1}), seen("shadow", {"a": 2}, status=500))
    comparison = Comparison(exchange, MISMATCH, (Difference("body", "$.a", "changed", 1, 2),))
    LogSink(LoggingConfig())(comparison, 0.001)
    (line,) = capsys.readouterr().out.splitlines()
    record = orjson.loads(line)
    for key in ("ts", "level", "event", "request_id", "method", "route", "path", "primary_status",
                "shadow_status", "primary_ms", "shadow_ms", "differences"):  # fmt: skip
        assert key in record, key
    assert record["event"] == "mismatch"
    assert record["route"] == "/users/{id}"
    assert record["shadow_status"] == 500
    assert record["differences"] == [{"part": "body", "path": "$.a", "kind": "changed", "primary": 1, "shadow": 2}]


def test_a_failing_sink_does_not_stop_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    """A sink that raises is logged; the sinks after it still run."""
    calls = []

    def broken(comparison: Comparison, duration: float) -> None:
        raise RuntimeError("sink down")

    exchange = Exchange(request(), seen("primary", {"a": 1}), seen("shadow", {"a": 1}))
    Publisher([broken, lambda c, d: calls.append(c.outcome)]).publish(Comparison(exchange, "match"), 0.0)
    assert calls == ["match"]
    assert '"event":"sink_failed"' in capsys.readouterr().out

"""Redaction and truncation of what a comparison may say once it leaves the process."""

from __future__ import annotations

import pytest

from shadowdiff.config import LoggingConfig
from shadowdiff.model import Difference
from shadowdiff.publish.redact import REDACTED, Redactor


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(LoggingConfig(max_value_chars=40))


@pytest.mark.parametrize(
    ("difference", "control", "candidate"),
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
)  # fmt: skip
def test_redaction_and_truncation(redactor: Redactor, difference: Difference, control: object, candidate: object) -> None:
    """Configured headers and body fields are redacted (also inside added objects); long values are cut."""
    out = redactor.difference(difference)
    assert (out.control, out.candidate) == (control, candidate)
    assert (out.part, out.path, out.kind) == (difference.part, difference.path, difference.kind)

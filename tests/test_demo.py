"""`shadowdiff demo` end to end, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_prints_per_route_results_and_examples() -> None:
    """A short demo exits 0 and prints each route's outcome mix (the /orders timestamp turning noise
    once re-asks of the primary show it differs there too), the verdicts, the /users bug, and the metrics URL."""
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "demo", "--duration", "4", "--rate", "100"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    rows = {m[0]: m[1:] for m in re.findall(r"^(/\S+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(\d+)%\s+(\d+)%\s+(\d+)%\s+(\d+)%$", out, re.M)}
    assert set(rows) == {"/health", "/orders/{id}", "/products/{id}", "/recommendations", "/users/{id}"}
    requests, compared, match, mismatch, ignored, noise, error = (int(v) for v in rows["/users/{id}"])
    assert compared == requests > 0 and mismatch > 0 and match > mismatch
    assert rows["/recommendations"][4] == "100"  # drift within the shipped tolerance: ignored
    assert int(rows["/orders/{id}"][5]) > 0 and rows["/orders/{id}"][4] == "0"  # the timestamp: noise, once known
    assert re.search(r"/orders/\{id\}\s+body \$\.generated_at\s+noise", out)
    assert re.search(r"/users/\{id\}\s+body \$\.plan\s+regression", out)
    assert rows["/products/{id}"][3] == "100"  # the added field: a mismatch every time
    assert rows["/health"][2] == "100"
    assert "body $.plan changed" in out and "body $.currency added" in out
    assert "/metrics" in out
    assert "Traceback" not in result.stderr

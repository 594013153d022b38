"""`shadowdiff demo` end to end, as a user runs it."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys


def test_demo_prints_per_route_results_and_examples() -> None:
    """A short demo exits 0 and prints each route's outcome mix (the /orders timestamp turning noise
    once re-asks of the primary show it differs there too), the verdicts, the /users bug, the metrics URL,
    the UI's URL first, the demo's operator token for its controls, and the store the run left with
    the command that shows it."""
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
    ui = re.search(r"^  ui +(http://127\.0\.0\.1:\d+/) ", out, re.M)
    assert ui is not None, out[:400]
    assert re.search(r"^  controls  operator token [0-9a-f]{32}: sign in at http://127\.0\.0\.1:\d+/ui/sign-in", out, re.M)
    kept = re.search(r"browse it again with:\n  .*shadowdiff ui --store (sqlite:///\S+demo\.db)$", out, re.M)
    assert kept is not None, out[-400:]
    with sqlite3.connect(kept[1].removeprefix("sqlite:///")) as store:  # something worth clicking
        samples = dict(store.execute("SELECT route, COUNT(*) FROM samples GROUP BY route").fetchall())
    assert samples.keys() >= {"/users/{id}", "/orders/{id}", "/products/{id}"}, samples
    assert "Traceback" not in result.stderr

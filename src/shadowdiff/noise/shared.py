"""Field statistics across `serve --workers N`: each worker writes its snapshot to a file
in the workers' shared metrics directory each second; the supervisor's admin API reads
them all and shows their sum (`fields.merge`), as its /metrics sums the workers' counters.

A file is replaced whole (written aside, then renamed), so a reader never sees half of
one. A worker that died leaves its last file, and its counts stay in the sum, as
prometheus-client's multiprocess mode keeps a dead worker's counters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

PREFIX = "fields-"


def write(directory: str, snapshot: dict[str, Any]) -> None:
    """Replace this process's file in `directory` with `snapshot`."""
    final = Path(directory) / f"{PREFIX}{os.getpid()}.json"
    aside = final.with_suffix(".tmp")
    aside.write_bytes(orjson.dumps(snapshot))
    os.replace(aside, final)


def read_all(directory: str) -> list[dict[str, Any]]:
    """Every worker's last snapshot in `directory` (a file being replaced right now is skipped)."""
    out = []
    for path in sorted(Path(directory).glob(f"{PREFIX}*.json")):
        try:
            out.append(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
    return out

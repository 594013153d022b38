"""Which config changes a running proxy can take, and which need a restart.

Fields (or whole sections) declared with `restart=True` in `schema` are fixed for a
process's life: listen addresses and limits, workers, the admin listener, upstream
URLs and pool sizes. A new config that changes any of them is refused by whoever
applies it, naming the keys; everything else may be swapped in while serving.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shadowdiff.config.schema import Config, HostPort


def restart_changes(old: Config, new: Config) -> list[str]:
    """The key paths that differ between `old` and `new` and need a restart."""
    return _changes(old, new, "", restart=False)


def _changes(old: Any, new: Any, path: str, *, restart: bool) -> list[str]:
    if not dataclasses.is_dataclass(old) or isinstance(old, HostPort):  # a value, not a section
        return [path] if restart and old != new else []
    out = []
    for spec in dataclasses.fields(old):
        where = f"{path}.{spec.name}" if path else spec.name
        fixed = restart or spec.metadata.get("restart", False)
        out.extend(_changes(getattr(old, spec.name), getattr(new, spec.name), where, restart=fixed))
    return out

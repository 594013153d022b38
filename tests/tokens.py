"""The admin tokens the access, control and UI tests configure: an operator's ("ops", from a file)
and a viewer's ("eyes", from $EYES_TOKEN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

OPS, EYES = "ops-5d1c8e2a7f3b9a4c6e01", "eyes-0b9a8c7d6e5f4a3b2c1d"


def admin_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, viewer: bool = True) -> dict[str, Any]:
    """The admin section's tokens: the operator's in a file under tmp_path, and (unless `viewer` is
    false) the viewer's in the environment."""
    (tmp_path / "ops.token").write_text(OPS)
    monkeypatch.setenv("EYES_TOKEN", EYES)
    listed = [{"name": "ops", "role": "operator", "token_file": str(tmp_path / "ops.token")}]
    if viewer:
        listed.append({"name": "eyes", "role": "viewer", "token_env": "EYES_TOKEN"})
    return {"tokens": listed}

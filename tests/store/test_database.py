"""store.url: where the store lives, what may be printed of it, and the exit-2 error of a store
that cannot be created."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shadowdiff import config as configuration
from shadowdiff.config import ConfigError
from shadowdiff.store.database import Location, StoreError, open_store
from tests.backends import Backend
from tests.conftest import serve_until_exit


def test_the_default_store_is_a_file_under_xdg_state_home(tmp_path: Path) -> None:
    """An empty store.url is $XDG_STATE_HOME/shadowdiff/store.db, created (with its directory) on open."""
    location = Location.parse("")
    assert location.engine == "sqlite"
    assert Path(location.target) == tmp_path / "state" / "shadowdiff" / "store.db"  # tests/conftest.py's XDG_STATE_HOME
    open_store("").close()
    with sqlite3.connect(location.target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"route_stats", "field_stats", "field_values", "samples", "sample_fields"} <= tables


def test_without_xdg_state_home_the_store_is_under_the_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no XDG_STATE_HOME the default is ~/.local/state/shadowdiff/store.db."""
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Path(Location.parse("").target) == tmp_path / ".local" / "state" / "shadowdiff" / "store.db"


def test_a_postgresql_url_is_shown_without_its_password() -> None:
    """What logs, errors and the API print of a PostgreSQL URL has user, host, port and database, no password."""
    location = Location.parse("postgresql://shadow:s3cr3t-pw@db.internal:6543/triage")
    assert location.engine == "postgresql"
    assert location.shown == "postgresql://shadow@db.internal:6543/triage"
    assert "s3cr3t-pw" in location.target


@pytest.mark.parametrize("url", ["postgresql://app:Zx9/Secr3tPart@db.internal/x", "postgresql://app@db.internal:99999/x"])
def test_a_postgresql_url_that_does_not_parse_is_refused_without_echoing_it(url: str, tmp_path: Path) -> None:
    """A password with a slash (or a port out of range) is a StoreError at open and a config error in
    check-config, each saying what to do and neither quoting the URL."""
    with pytest.raises(StoreError) as raised:
        Location.parse(url)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"primary: {{url: 'http://127.0.0.1:1'}}\nmirror: {{enabled: false}}\nstore: {{url: '{url}'}}\n")
    with pytest.raises(ConfigError) as refused:
        configuration.load(config_file)
    for said in (str(raised.value), "\n".join(refused.value.problems)):
        assert "percent-encode" in said and "Secr3tPart" not in said and "Zx9" not in said, said


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite://relative.db", "sqlite:///"])
def test_a_url_of_no_known_kind_is_refused_with_what_to_write(url: str) -> None:
    """Anything but sqlite:///PATH or postgresql://... is a StoreError naming both forms."""
    with pytest.raises(StoreError, match="sqlite:///"):
        Location.parse(url)


def test_a_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    """A path under a regular file cannot be created: StoreError says which store and what to set."""
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(StoreError, match=r"cannot open the store sqlite:///.*plain/store\.db.*store\.url"):
        open_store(f"sqlite:///{tmp_path}/plain/store.db")


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_exits_2_when_the_store_cannot_be_created(primary: Backend, tmp_path: Path, workers: str) -> None:
    """`shadowdiff serve --store` on a path that cannot be created exits 2 with a one-line `store error:`,
    one process or a supervisor (which opens the store before any worker starts)."""
    (tmp_path / "plain").write_text("a file, not a directory")
    code, err = await serve_until_exit(
        "--primary", primary.url, "--shadow", primary.url, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--store", f"sqlite:///{tmp_path}/plain/store.db", "--workers", workers,
    )  # fmt: skip
    assert code == 2, err
    assert err.decode().startswith("store error: cannot open the store"), err
    assert b"Traceback" not in err

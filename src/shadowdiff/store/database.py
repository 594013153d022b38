"""Where the store lives and how to talk to it: SQLite (the default) or PostgreSQL (a fleet).

One `Database` per connection. Both engines take the same SQL, written with `?`
placeholders (translated to psycopg's `%s`) and `INSERT ... ON CONFLICT DO UPDATE`
(SQLite 3.24+, PostgreSQL 9.5+); what differs (the id column, the size, how space is
given back) is a `Dialect`'s.

SQLite: the standard library's sqlite3, WAL mode (readers never wait for the writer,
several processes may write), `synchronous=NORMAL`, incremental auto-vacuum so that
space freed by retention goes back to the file system. PostgreSQL: psycopg 3 (the
`postgres` extra), which a fleet's proxies and workers share; every row says which
instance wrote it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from shadowdiff import log
from shadowdiff.config.schema import URL_UNREADABLE

SCHEMA_VERSION = 1
# What one row of each table takes beside its text columns, roughly (PostgreSQL's size of live data).
_ROW_BYTES = {"route_stats": 250, "field_stats": 120, "field_values": 100, "samples": 120, "sample_fields": 80}

# Statistics rows are per instance and bucket (a minute): the writer replaces its own rows.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS route_stats (
        instance TEXT NOT NULL, route TEXT NOT NULL, bucket BIGINT NOT NULL,
        compared BIGINT NOT NULL, aa_compared BIGINT NOT NULL,
        o_match BIGINT NOT NULL, o_mismatch BIGINT NOT NULL, o_ignored BIGINT NOT NULL, o_noise BIGINT NOT NULL,
        o_shadow_error BIGINT NOT NULL, untracked BIGINT NOT NULL, cut BIGINT NOT NULL, host_count BIGINT NOT NULL,
        timed BIGINT NOT NULL, primary_seconds DOUBLE PRECISION NOT NULL, shadow_seconds DOUBLE PRECISION NOT NULL,
        aa_repeat BIGINT NOT NULL, aa_reask BIGINT NOT NULL, aa_secondary BIGINT NOT NULL,
        aa_repeat_errors BIGINT NOT NULL, aa_reask_errors BIGINT NOT NULL, aa_secondary_errors BIGINT NOT NULL,
        host_examples TEXT NOT NULL,
        PRIMARY KEY (instance, route, bucket))""",
    """CREATE TABLE IF NOT EXISTS field_stats (
        instance TEXT NOT NULL, route TEXT NOT NULL, part TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,
        bucket BIGINT NOT NULL, differed BIGINT NOT NULL, aa_differed BIGINT NOT NULL,
        PRIMARY KEY (instance, route, part, path, kind, bucket))""",
    """CREATE TABLE IF NOT EXISTS field_values (
        instance TEXT NOT NULL, route TEXT NOT NULL, part TEXT NOT NULL, path TEXT NOT NULL, bucket BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (instance, route, part, path, bucket))""",
    # samples: {id} is the dialect's auto-increment primary key
    """CREATE TABLE IF NOT EXISTS samples (
        id {id}, instance TEXT NOT NULL, route TEXT NOT NULL, seen DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL, method TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL,
        size BIGINT NOT NULL, summary TEXT NOT NULL, data TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sample_fields (
        sample_id BIGINT NOT NULL, route TEXT NOT NULL, part TEXT NOT NULL, path TEXT NOT NULL,
        PRIMARY KEY (route, part, path, sample_id))""",
    "CREATE INDEX IF NOT EXISTS route_stats_bucket ON route_stats (bucket)",
    "CREATE INDEX IF NOT EXISTS field_stats_route ON field_stats (route, bucket)",
    "CREATE INDEX IF NOT EXISTS field_values_route ON field_values (route, bucket)",
    "CREATE INDEX IF NOT EXISTS samples_route ON samples (route, seen)",
    "CREATE INDEX IF NOT EXISTS samples_seen ON samples (seen)",
    "CREATE INDEX IF NOT EXISTS sample_fields_sample ON sample_fields (sample_id)",
)
TABLES = ("route_stats", "field_stats", "field_values", "samples", "sample_fields")


class StoreError(Exception):
    """The store cannot be opened (a bad URL, a path that cannot be created, a missing driver)."""



def default_path() -> Path:
    """$XDG_STATE_HOME/shadowdiff/store.db, ~/.local/state/shadowdiff/store.db without it."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "shadowdiff" / "store.db"


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed store.url: SQLite's file path, or PostgreSQL's connection string."""

    engine: str  # "sqlite" or "postgresql"
    target: str  # the file's path, or the URL psycopg connects to
    shown: str  # what logs and errors may print (no password)

    @classmethod
    def parse(cls, url: str) -> Location:
        if not url:
            path = default_path()
            return cls("sqlite", str(path), f"sqlite:///{path}")
        if url.startswith("sqlite:///"):
            path = os.path.expanduser(unquote(url[len("sqlite:///") :]))
            if not path:
                raise StoreError("store.url: sqlite:/// needs a file path, e.g. sqlite:////var/lib/shadowdiff/store.db")
            return cls("sqlite", path, f"sqlite:///{path}")
        if url.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(url)
            try:
                port = f":{parts.port}" if parts.port else ""
            except ValueError:  # the message would quote the URL, password and all
                raise StoreError(f"store.url: {URL_UNREADABLE}") from None
            host = parts.hostname or "localhost"
            user = f"{parts.username}@" if parts.username else ""
            return cls("postgresql", url, f"postgresql://{user}{host}{port}{parts.path}")
        raise StoreError("store.url must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


class Database:
    """One connection, used by one thread at a time (the writer's, or the readers' behind `lock`).
    A reader's (`create=False`) writes nothing: no schema, no SQLite settings, no file created,
    so a read-only PostgreSQL role will do."""

    def __init__(self, location: Location, *, connect_timeout: float = 3.0, create: bool = True) -> None:
        self.location = location
        self.lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self.postgres = location.engine == "postgresql"
        self.create = create

    # -- connecting ---------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection (and, unless a reader's, the schema) if it is not open."""
        if self._conn is not None:
            return
        if self.postgres:
            self._conn = _postgres(self.location, self._connect_timeout)
        else:
            self._conn = _sqlite(self.location) if self.create else _sqlite_reader(self.location)
        if not self.create:
            return
        try:
            self._create()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection to a server that went away
                pass

    def _create(self) -> None:
        id_column = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY"
        cur = self._conn.cursor()
        if self.postgres:  # two proxies starting at once must not both create the tables
            cur.execute("SELECT pg_advisory_xact_lock(7341)")
        for statement in _TABLES:
            cur.execute(statement.replace("{id}", id_column))
        cur.execute(self.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"), ("schema", str(SCHEMA_VERSION)))
        self._conn.commit()

    # -- statements ---------------------------------------------------------------

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.cursor()
        cur.execute(self.sql(statement), tuple(params))
        rows = cur.fetchall() if cur.description is not None else []
        return list(rows)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._conn.cursor().executemany(self.sql(statement), rows)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:
                self.close()

    # -- size ---------------------------------------------------------------------

    def size(self) -> int:
        """Bytes the store's data takes. SQLite: its pages in use. PostgreSQL: its live rows, roughly
        (their text and a fixed cost a row): the files' size shrinks only with VACUUM FULL, so it
        would never come back under store.max_bytes after a delete."""
        if self.postgres:
            texts = {"route_stats": "host_examples", "field_values": "data", "samples": "summary) + octet_length(data"}
            parts = [
                f"(SELECT COUNT(*) * {_ROW_BYTES[t]} + COALESCE(SUM(octet_length({texts[t]})), 0) FROM {t})"
                if t in texts else f"(SELECT COUNT(*) * {_ROW_BYTES[t]} FROM {t})"
                for t in TABLES
            ]  # fmt: skip
            return int(self.execute(f"SELECT {' + '.join(parts)}")[0][0])
        pages = self.execute("PRAGMA page_count")[0][0]
        free = self.execute("PRAGMA freelist_count")[0][0]
        page = self.execute("PRAGMA page_size")[0][0]
        return int((pages - free) * page)

    def give_back(self) -> None:
        """Return freed space to the file system (SQLite's incremental vacuum; PostgreSQL's autovacuum does it)."""
        if not self.postgres:
            self.execute("PRAGMA incremental_vacuum")
            self.commit()


def _sqlite(location: Location) -> Any:
    path = Path(location.target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=1.0, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store {location.shown}: {exc} (set store.url to a writable path)") from exc
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the store {location.shown}: {exc} (set store.url to a writable path)") from exc
    return conn


def _sqlite_reader(location: Location) -> Any:
    """A connection that creates nothing: the file must exist (a proxy creates it)."""
    try:
        return sqlite3.connect(f"file:{quote(location.target)}?mode=rw", uri=True, timeout=1.0, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the store {location.shown}: {exc} (a proxy with this store.url creates it)") from exc


def _postgres(location: Location, timeout: float) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError("store.url is postgresql://...: install the driver with pip install 'shadowdiff[postgres]'") from exc
    return psycopg.connect(location.target, connect_timeout=max(1, round(timeout)), autocommit=False)


def open_store(url: str) -> Database:
    """The Database for store.url, connected if it can be: StoreError (what to fix) for a bad URL,
    a file that cannot be created or a missing driver. A PostgreSQL server that does not answer
    yet is no error: the writer connects when it does (`store_error` is logged meanwhile)."""
    database = Database(Location.parse(url))
    try:
        database.connect()  # a missing driver is _postgres()'s StoreError
    except StoreError:
        raise
    except Exception as exc:
        if not database.postgres:
            raise StoreError(f"cannot open the store {database.location.shown}: {reason(exc)}") from exc
        log.event("warning", "store_error", op="connect", store=database.location.shown, error=reason(exc),
                  note="serving anyway; the store is written once it answers")  # fmt: skip
    return database


def open_reader(url: str) -> Database:
    """A reader's Database for store.url, checked to hold a store: StoreError (what to do) if it
    cannot be read or no proxy has created the store yet. It writes nothing."""
    database = Database(Location.parse(url), create=False)
    try:
        database.connect()
        database.execute("SELECT value FROM meta WHERE key = ?", ("schema",))
        database.rollback()
    except StoreError:
        raise
    except Exception as exc:
        database.close()
        raise StoreError(
            f"cannot read the store {database.location.shown}: {reason(exc)} (a proxy with this store.url creates it)"
        ) from exc
    return database


def reason(exc: BaseException) -> str:
    """An exception as one line with no password in it (psycopg's messages name host and user only)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]

"""The test PostgreSQL server itself (tests/store/postgres.py): the store tests rely on it being
real, on it going down when told to, and on it coming back with its data."""

from __future__ import annotations

import psycopg
import pytest

from tests.store.postgres import PostgresServer


def test_url_accepts_a_connection_and_runs_a_query(postgres_url: str) -> None:
    """The per-test URL reaches a real PostgreSQL server: a psycopg connection opens on it, lands in
    that test's own database, and a query returns its result."""
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute("SELECT current_database(), 6 * 7, version()").fetchone()
    assert row is not None
    database, answer, version = row
    assert postgres_url.endswith("/" + database)
    assert answer == 42
    assert version.startswith("PostgreSQL ")


def test_each_test_gets_a_database_of_its_own(postgres_server: PostgresServer, postgres_url: str) -> None:
    """The per-test database is not the server's default one and is empty: no tables of a former
    test in it."""
    assert postgres_url != postgres_server.url
    with psycopg.connect(postgres_url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_stop_takes_the_database_down_and_start_brings_the_data_back(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """After `stop()` a connection attempt fails with psycopg.OperationalError (the database is
    really down, not just idle); after `start()` the same URL works again and a row committed
    before the stop is still there."""
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        connection.execute("INSERT INTO kept VALUES (1, 'written before the stop')")

    postgres_server.stop()
    try:
        assert not postgres_server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_url, connect_timeout=5).close()
    finally:
        postgres_server.start()

    assert postgres_server.running
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT id, note FROM kept").fetchall()
    assert rows == [(1, "written before the stop")]


def test_stop_cuts_open_connections(postgres_server: PostgresServer, postgres_url: str) -> None:
    """A connection opened before `stop()` is cut by it (a fast shutdown): its next query fails with
    psycopg.OperationalError instead of hanging."""
    connection = psycopg.connect(postgres_url)
    try:
        postgres_server.stop()
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
    finally:
        connection.close()
        postgres_server.start()

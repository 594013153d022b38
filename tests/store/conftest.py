"""Fixtures of the store tests: one real PostgreSQL server per session, one database per test."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from tests.store.postgres import PostgresServer

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A started PostgreSQL server (see tests/store/postgres.py), shared by the session and deleted
    at its end. A test may `stop()` it to take the database down, and must `start()` it again."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, empty database of its own on the session's server, dropped afterwards.
    Its name (`t<n>_<test name>`) tells whose it was in the server's log."""
    name = f"t{next(_numbers)}_{re.sub(r'[^a-z0-9]+', '_', request.node.name.lower())}"[:63]
    yield postgres_server.create_database(name)
    # A test that took the server down and failed before bringing it back must not break the rest.
    postgres_server.start()
    postgres_server.drop_database(name)


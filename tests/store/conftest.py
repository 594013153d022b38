"""Fixtures of the store tests: one real PostgreSQL server per session, one database per test, and
the backends of tests/store/apps.py."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.backends import serve_app
from tests.store.apps import store_app
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


@pytest.fixture
async def store_apps() -> AsyncIterator[dict[str, str]]:
    """The primary's and the candidate's URLs (tests/store/apps.py), on 127.0.0.1."""
    runners, urls = [], {}
    for name, candidate in (("primary", False), ("shadow", True)):
        runner, urls[name] = await serve_app(store_app(candidate=candidate))
        runners.append(runner)
    yield urls
    for runner in runners:
        await runner.cleanup()

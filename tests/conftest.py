"""Fixtures every test directory may use: a PostgreSQL server for the whole run
(tests/pgserver.py), started on first use and stopped at the end, and a fresh database on it
per test.  Without the server binaries those tests are skipped, naming the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import PostgresServer, migrated_template, missing_reason


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A new database with sipgateway's schema (no data), dropped after the test."""
    url = postgres.create_database(template=migrated_template(postgres))
    yield url
    postgres.drop_database(url)


@pytest.fixture
def postgres_empty(postgres: PostgresServer) -> Iterator[str]:
    """A new empty database (no schema), dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)

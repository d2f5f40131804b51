"""A real PostgreSQL server for the session (``$CATALOGFLOW_TEST_POSTGRES_URL``, or one
started by ``catalogflow.localbroker.postgres`` in a temporary folder), and a fresh
database per test on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from catalogflow.localbroker.postgres import LocalPostgres
from psycopg import sql
from sqlalchemy.engine import make_url

NewDatabase = Callable[[], str]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a server's ``postgres`` database (a superuser may create more)."""
    external = os.environ.get("CATALOGFLOW_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    server = LocalPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def new_database(postgres_url: str) -> NewDatabase:
    """Make an empty database on the session's server; returns its URL."""

    def make() -> str:
        url = make_url(postgres_url)
        name = f"t{uuid.uuid4().hex[:12]}"
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return url.set(database=name).render_as_string(hide_password=False)

    return make

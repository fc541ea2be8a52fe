"""PostgreSQL for tests: a fresh database per test session, a fresh schema per test.

Load it as a plugin from a test module (tests/ is on sys.path under pytest's default
"prepend" import mode), or later from tests/conftest.py:

    pytest_plugins = ("pg",)

- `pg_database` (session): URL of a new database `intentflow_test_<pid>_<hex>`, created through
  an AUTOCOMMIT connection to the server's `test` database and dropped at the end.
- `pg_url` (function): URL into `pg_database` whose search_path is a new, empty schema, so each
  test starts clean without paying for a database; plain strings, so subprocesses can use them.
- `db_url` (function, parametrized "sqlite"/"postgresql"): a registry URL on either backend.
- `read_only_role(url, *tables)`: a role that may only SELECT those tables (SQL sources).

No server: the PostgreSQL cases skip, except under CI (tests/ci.py), where they fail.
Other fixtures of the same kind come from `make_pg_database_fixture` / `make_pg_schema_fixture`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import pytest
from ci import skip_or_fail
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_HOST = os.environ.get("INTENTFLOW_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("INTENTFLOW_TEST_PG_PORT", "5432"))
PG_ADMIN_DB = "test"
PG_USERS = ("postgres", "root")  # trust auth: whichever role exists


def unavailable(reason: str) -> NoReturn:
    """Skip locally; in CI a missing server is a broken setup, not a reason to pass."""
    skip_or_fail(f"PostgreSQL unavailable at {PG_HOST}:{PG_PORT}: {reason}")


def server_url(database: str, user: str) -> str:
    return f"postgresql+psycopg2://{user}@{PG_HOST}:{PG_PORT}/{database}"


def _admin_engine() -> tuple[Engine, str]:
    """An AUTOCOMMIT engine on the admin database (CREATE/DROP DATABASE need it)."""
    errors = []
    for user in PG_USERS:
        engine = create_engine(
            server_url(PG_ADMIN_DB, user),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return engine, user
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
            engine.dispose()
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    unavailable("; ".join(errors))


def make_pg_database_fixture(
    name: str = "pg_database", prefix: str = "intentflow_test"
) -> Callable[..., Iterator[str]]:
    """A session fixture `name` yielding the URL of a new database, dropped afterwards."""

    @pytest.fixture(scope="session", name=name)
    def _database() -> Iterator[str]:
        admin, user = _admin_engine()
        database = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        try:
            yield server_url(database, user)
        finally:
            with admin.connect() as conn:
                # FORCE: a leaked pooled connection must not leave the database behind.
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()

    return _database


def make_pg_schema_fixture(
    name: str = "pg_url", database_fixture: str = "pg_database"
) -> Callable[..., Iterator[str]]:
    """A function fixture `name` yielding a URL pinned (search_path) to a new schema."""

    @pytest.fixture(name=name)
    def _schema(request: pytest.FixtureRequest) -> Iterator[str]:
        base = request.getfixturevalue(database_fixture)
        schema = f"t_{secrets.token_hex(6)}"
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            # libpq `options`, passed through by psycopg2: every connection uses the schema.
            yield f"{base}?options={quote(f'-csearch_path={schema}')}"
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()

    return _schema


pg_database = make_pg_database_fixture()
pg_url = make_pg_schema_fixture()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh registry database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_url")


@contextmanager
def read_only_role(url: str, *tables: str) -> Iterator[tuple[str, str]]:
    """A login role granted SELECT on `tables` of the schema a `pg_url` URL is pinned to, and
    nothing else: (a URL that logs in as it, without the search path; the schema). Dropped
    afterwards: roles are server-wide."""
    schema = schema_of(url)
    assert schema, "a pg_url URL"
    role = f"ro_{secrets.token_hex(6)}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        for table in tables:
            conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{role}"'))
    try:
        yield make_url(url).set(username=role, query={}).render_as_string(False), schema
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()


def schema_of(url: str) -> str | None:
    """The schema a `pg_url` URL is pinned to (None for other URLs)."""
    options = make_url(url).query.get("options")
    if isinstance(options, str) and options.startswith("-csearch_path="):
        return options.removeprefix("-csearch_path=")
    return None

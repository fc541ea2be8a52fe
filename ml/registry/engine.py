"""How the registry connects: one engine per database URL, SQLite's transactions, and which
driver errors mean "the database cannot be reached now" (worth a retry) rather than bad SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ml.registry.schema import json_dumps

# Connection execution option that makes SQLite take the write lock at BEGIN.
SQLITE_WRITE = "intentflow_sqlite_write"
# Driver messages (psycopg2, sqlite3) that mean "not reachable now", as opposed to bad SQL.
_UNREACHABLE_HINTS = (
    "could not connect",
    "connection refused",
    "connection to server",
    "server closed the connection",
    "terminating connection",
    "timeout expired",
    "the database system is",  # starting up / shutting down / in recovery mode
    "unable to open database",
    "database is locked",
)


def registry_engine(url: URL) -> Engine:
    """The engine for `url`; a SQLite file's folder is created, its writers BEGIN IMMEDIATE."""
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and url.database not in (None, "", ":memory:"):
        if not url.database.startswith("file:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        json_serializer=json_dumps,
        # Wait for a busy SQLite writer instead of failing at once; fail fast on a dead host.
        connect_args={"timeout": 30} if sqlite else _connect_timeout(url),
    )
    if sqlite:
        _sqlite_transactions(engine)
    return engine


def writer(engine: Engine) -> Engine:
    """`engine` for write transactions (on SQLite: holding the write lock from BEGIN)."""
    return engine.execution_options(**{SQLITE_WRITE: True})


def is_disconnect(exc: DBAPIError) -> bool:
    """Whether the error means the server cannot be reached (worth a retry), not bad SQL."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig or exc).lower()
    return any(hint in message for hint in _UNREACHABLE_HINTS)


def _connect_timeout(url: URL) -> dict[str, Any]:
    # libpq waits for a dead host for minutes by default; backoff handles the retries.
    return {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy emit BEGIN (the sqlite3 driver skips it for SELECT and DDL).

    Writers BEGIN IMMEDIATE: they take the write lock up front and wait for each other
    (connect timeout) instead of failing with "database is locked" on lock upgrade.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get(SQLITE_WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

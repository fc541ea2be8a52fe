"""Registry schema migrations (Alembic, shipped in ml/registry/migrations), run from Python.

- :func:`upgrade` brings a database to the latest revision: `intentflow registry upgrade`.
- :func:`ensure_current` is what `Registry()` calls: a SQLite registry (the embedded default)
  is upgraded on first use; any other database at an older revision is refused with a message
  naming the command, so a shared PostgreSQL is only changed when an operator says so.
- :func:`offline_sql` renders the migrations as SQL: what `sql/registry_<dialect>.sql` holds.
"""

from __future__ import annotations

import io
import sys
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from ml.registry.errors import SchemaError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "intentflow registry upgrade"
# Serializes migrations across processes on PostgreSQL (any constant works).
_PG_MIGRATION_LOCK = 0x1E7F_0001


def _config(connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config(output_buffer=io.StringIO())
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head() -> str:
    """The latest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:
        raise SchemaError(f"no migrations in {MIGRATIONS}")
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None when it has no registry schema."""
    return MigrationContext.configure(connection).get_current_revision()


def _known(revision: str) -> bool:
    scripts = ScriptDirectory.from_config(_config())
    return any(s.revision == revision for s in scripts.walk_revisions())


def _upgrade_locked(connection: Connection, target: str) -> tuple[str | None, str]:
    """Upgrade inside the caller's transaction; returns (from, to) revisions."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    before = current(connection)
    if before is not None and not _known(before):
        raise SchemaError(
            f"the registry database is at revision {before!r}, newer than this intentflow "
            f"(latest {head()!r}): upgrade the intentflow package"
        )
    if before != target:
        command.upgrade(_config(connection), target)
    return before, target


def upgrade(engine: Engine, target: str | None = None) -> tuple[str | None, str]:
    """Bring the database to `target` (default: the latest revision); returns (from, to).

    Idempotent, and safe to run from several processes at once.
    """
    with engine.begin() as connection:
        return _upgrade_locked(connection, target or head())


def ensure_current(engine: Engine, *, auto_upgrade: bool, where: str) -> tuple[str | None, str]:
    """(found, now): return if the schema is current, upgrade when allowed, else SchemaError."""
    with engine.connect() as connection:
        revision = current(connection)
    if revision == head():
        return revision, revision
    if auto_upgrade:
        return upgrade(engine)
    state = "has no registry schema" if revision is None else f"is at revision {revision!r}"
    raise SchemaError(
        f"the registry database {where} {state}, this intentflow needs {head()!r}: "
        f"run `{UPGRADE_COMMAND}` (with INTENTFLOW_REGISTRY_URL pointing at it)"
    )


def offline_sql(dialect: str) -> str:
    """The migrations from nothing to head as a SQL script for `dialect` (sqlite, postgresql)."""
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown dialect {dialect!r}: sqlite or postgresql")
    cfg = _config(url=f"{dialect}://")
    command.upgrade(cfg, "head", sql=True)
    body = cfg.output_buffer.getvalue()
    header = (
        f"-- Intentflow model registry schema ({dialect}) at revision {head()}.\n"
        f"-- Generated from the migrations in ml/registry/migrations: python -m ml.registry.migrate {dialect}\n"
        f"-- Apply to an empty database, or let `{UPGRADE_COMMAND}` do it.\n"
        "-- metrics.class_label is NULL for scalar metrics; uniqueness uses COALESCE(.., '').\n"
    )
    return header + "\n".join(line.rstrip() for line in body.strip().splitlines()) + "\n"


if __name__ == "__main__":
    print(offline_sql(sys.argv[1] if len(sys.argv) > 1 else "sqlite"), end="")

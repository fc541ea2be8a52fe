"""Fill revision 0002's lineage columns of versions registered before it, from their lineage JSON.

Before 0002 the retrain steps recorded the run in `model_versions.lineage` (JSON): `dag_id`,
`run_id`, `logical_date` (an ISO string) and `code_version`. 0002 added those as columns (and
`base_model_sha256`) but left them NULL on existing rows. This revision copies each key into its
column where the column is NULL and the JSON holds a usable value; the JSON is left as it is.
A value that does not fit its column (too long, not an aware ISO date-time, not a sha256) stays
in the JSON only, with a warning. Nothing to do on a fresh database.

A data migration: it runs online only (`intentflow registry upgrade`, or any Registry that
upgrades itself). Rendered as SQL (`python -m ml.registry.migrate`, from an empty database) it is a comment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# Frozen copies of the columns this revision reads and writes (not ml.registry.store's ORM, which
# changes over time).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STRINGS = {"base_model_sha256": 64, "dag_id": 250, "run_id": 250, "code_version": 100}
COLUMNS = (*STRINGS, "logical_date")
model_versions = sa.table(
    "model_versions",
    sa.column("id", sa.Integer()),
    sa.column("lineage", JSON),
    *(sa.column(name, sa.String(length)) for name, length in STRINGS.items()),
    sa.column("logical_date", sa.DateTime(timezone=True)),
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _string(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not text or len(text) > STRINGS[name]:
        return None
    if name == "base_model_sha256" and not _SHA256_RE.match(text):
        return None
    return text


def _timestamp(value: Any, dialect: str) -> datetime | None:
    """An aware ISO string as the registry stores timestamps: UTC, naive on SQLite (no zone
    there). A string without a zone is not used: the registry refuses naive timestamps too."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    when = when.astimezone(UTC)
    return when.replace(tzinfo=None) if dialect == "sqlite" else when


def backfill(connection: sa.Connection) -> dict[str, int]:
    """Copy the lineage JSON's values into the NULL lineage columns; returns rows filled per
    column. Safe to run again (it only writes NULL columns)."""
    dialect = connection.dialect.name
    missing = sa.or_(*(model_versions.c[name].is_(None) for name in COLUMNS))
    query = sa.select(model_versions).where(missing).order_by(model_versions.c.id)
    updates: dict[str, list[dict[str, Any]]] = {name: [] for name in COLUMNS}
    for row in connection.execute(query).mappings().all():
        lineage = row["lineage"]
        if not isinstance(lineage, dict):
            continue
        for name in COLUMNS:
            if row[name] is not None or lineage.get(name) is None:
                continue
            raw = lineage[name]
            if name == "logical_date":
                value: Any = _timestamp(raw, dialect)
            else:
                value = _string(name, raw)
            if value is None:
                log.warning(
                    "model_versions id %s: lineage %s=%r does not fit the column; left in the "
                    "lineage JSON only",
                    row["id"],
                    name,
                    raw,
                )
                continue
            updates[name].append({"row_id": row["id"], "value": value})
    for name, params in updates.items():
        if params:
            connection.execute(
                model_versions.update()
                .where(model_versions.c.id == sa.bindparam("row_id"))
                .where(model_versions.c[name].is_(None))
                .values({name: sa.bindparam("value")}),
                params,
            )
    return {name: len(params) for name, params in updates.items()}


def upgrade() -> None:
    if context.is_offline_mode():
        # No rows to read when rendering SQL; an empty database has nothing to fill.
        op.execute("-- lineage backfill from the lineage JSON runs online only; no-op when empty")
        return
    filled = backfill(op.get_bind())
    if any(filled.values()):
        log.info("lineage backfill: %s", ", ".join(f"{k} {v}" for k, v in filled.items() if v))


def downgrade() -> None:
    # The values were copied, not moved: the lineage JSON still holds them, and 0002's downgrade
    # drops the columns.
    pass

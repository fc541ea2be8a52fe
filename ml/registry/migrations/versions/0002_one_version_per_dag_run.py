"""One version per model and DAG run: a unique index on model_versions (model_id, dag_id,
run_id) where run_id is set, so a retried register task cannot add a second version.

A database that already holds such twins (a register task retried before this revision) keeps
them all: the later twins' run_id gets a `#retry-vN` suffix (N: their version), so the index
can be built and each still names its run. No version, alias or audit entry is removed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_model_versions_model_id_dag_id_run_id"

# Portable SQL (SQLite and PostgreSQL): `||` casts the integer version to text on both.
RENAME_LATER_TWINS = """UPDATE model_versions
   SET run_id = substr(run_id, 1, 200) || '#retry-v' || version
 WHERE run_id IS NOT NULL
   AND EXISTS (SELECT 1
                 FROM model_versions AS earlier
                WHERE earlier.model_id = model_versions.model_id
                  AND earlier.dag_id = model_versions.dag_id
                  AND earlier.run_id = model_versions.run_id
                  AND earlier.version < model_versions.version)"""


def upgrade() -> None:
    op.execute(RENAME_LATER_TWINS)
    op.create_index(
        INDEX,
        "model_versions",
        ["model_id", "dag_id", "run_id"],
        unique=True,
        sqlite_where=sa.text("run_id IS NOT NULL"),
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )


def downgrade() -> None:
    # Renamed twins keep their suffix: which run they came from is still readable in it.
    op.drop_index(INDEX, table_name="model_versions")

"""Lineage as columns on every version, and the `alias_lineage` view.

Versions registered before this revision keep NULL there (their lineage JSON still holds what
was recorded then).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("base_model_sha256", sa.String(64)),
    ("dag_id", sa.String(250)),
    ("run_id", sa.String(250)),
    ("logical_date", sa.DateTime(timezone=True)),
    ("code_version", sa.String(100)),
)

# Which data and code made the version each alias serves ("which data trained the champion").
ALIAS_LINEAGE = """SELECT m.name AS model,
       a.alias AS alias,
       v.version AS version,
       v.data_snapshot_hash AS data_snapshot_hash,
       v.dag_id AS dag_id,
       v.run_id AS run_id,
       v.logical_date AS logical_date,
       v.base_model AS base_model,
       v.base_model_sha256 AS base_model_sha256,
       v.code_version AS code_version,
       v.artifact_uri AS artifact_uri,
       v.artifact_sha256 AS artifact_sha256,
       a.updated_at AS alias_since
  FROM aliases a
  JOIN registered_models m ON m.id = a.model_id
  JOIN model_versions v ON v.id = a.version_id"""


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("model_versions", sa.Column(name, type_, nullable=True))
    op.create_index(
        "ix_model_versions_data_snapshot_hash", "model_versions", ["data_snapshot_hash"]
    )
    op.execute(f"CREATE VIEW alias_lineage AS\n{ALIAS_LINEAGE}")


def downgrade() -> None:
    op.execute("DROP VIEW alias_lineage")
    op.drop_index("ix_model_versions_data_snapshot_hash", "model_versions")
    for name, _ in reversed(COLUMNS):
        op.drop_column("model_versions", name)

"""The registry: models, versions with their lineage, metrics, aliases, audit log, and the
operators' views (current_champions, metric_history, alias_lineage).

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: a migration must not change when the ORM does.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_TIMESTAMP = sa.DateTime(timezone=True)

CURRENT_CHAMPIONS = """SELECT m.name AS model,
       v.version AS version,
       acc.value AS accuracy,
       f1.value AS macro_f1,
       v.created_at AS created_at,
       a.updated_at AS promoted_at
  FROM aliases a
  JOIN registered_models m ON m.id = a.model_id
  JOIN model_versions v ON v.id = a.version_id
  LEFT JOIN metrics acc ON acc.version_id = v.id AND acc.split = 'test'
   AND acc.name = 'accuracy' AND acc.class_label IS NULL
  LEFT JOIN metrics f1 ON f1.version_id = v.id AND f1.split = 'test'
   AND f1.name = 'macro_f1' AND f1.class_label IS NULL
 WHERE a.alias = 'champion'"""

METRIC_HISTORY = """SELECT m.name AS model,
       v.version AS version,
       x.split AS split,
       x.name AS name,
       x.value AS value,
       v.created_at AS created_at
  FROM metrics x
  JOIN model_versions v ON v.id = x.version_id
  JOIN registered_models m ON m.id = v.model_id
 WHERE x.class_label IS NULL"""

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
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task_type", sa.String(50), server_default="intent", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registered_models"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("data_snapshot_hash", sa.String(128), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("lineage", JSON, nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("base_model_sha256", sa.String(64), nullable=True),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("logical_date", UTC_TIMESTAMP, nullable=True),
        sa.Column("code_version", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name="fk_model_versions_model_id_registered_models",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    )
    op.create_index(
        "ix_model_versions_data_snapshot_hash", "model_versions", ["data_snapshot_hash"]
    )
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"], name="fk_aliases_model_id_registered_models"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_aliases_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_aliases"),
        sa.UniqueConstraint("model_id", "alias", name="uq_aliases_model_id_alias"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("alias", sa.String(100), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"], name="fk_audit_log_model_id_registered_models"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_audit_log_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_model_id", "audit_log", ["model_id"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("class_label", sa.String(200), nullable=True),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_metrics_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
    )
    # NULL-safe uniqueness: a scalar metric (class_label NULL) can be stored once only.
    op.create_index(
        "uq_metrics_version_id_split_name_class_label",
        "metrics",
        ["version_id", "split", "name", sa.text("coalesce(class_label, '')")],
        unique=True,
    )
    op.execute(f"CREATE VIEW current_champions AS\n{CURRENT_CHAMPIONS}")
    op.execute(f"CREATE VIEW metric_history AS\n{METRIC_HISTORY}")
    op.execute(f"CREATE VIEW alias_lineage AS\n{ALIAS_LINEAGE}")


def downgrade() -> None:
    op.execute("DROP VIEW alias_lineage")
    op.execute("DROP VIEW metric_history")
    op.execute("DROP VIEW current_champions")
    for table in ("metrics", "audit_log", "aliases", "model_versions", "registered_models"):
        op.drop_table(table)

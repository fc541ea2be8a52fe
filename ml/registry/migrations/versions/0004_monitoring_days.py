"""Monitoring days: each served model's daily drift figures, verdict and report (ml.monitoring).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: a migration must not change when the ORM does.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitoring_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reference_version", sa.Integer(), nullable=False),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("report_url", sa.Text(), nullable=True),
        sa.Column("computed_at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["model"],
            ["registered_models.name"],
            name="fk_monitoring_days_model_registered_models",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring_days"),
        sa.UniqueConstraint("model", "day", name="uq_monitoring_days_model_day"),
    )


def downgrade() -> None:
    op.drop_table("monitoring_days")

"""The registry's tables as the SQLAlchemy ORM: models, versions, metrics, aliases, audit log,
erasures, and the daily monitoring figures of the served champions.

- `metrics.class_label` is NULL for scalar metrics and the class name for per-class ones. SQL
  treats NULLs as distinct in UNIQUE constraints, so uniqueness is a unique index on
  `(version_id, split, name, COALESCE(class_label, ''))`, which both backends support. An empty
  class label is therefore rejected (ml.registry.metrics).
- Timestamps are stored in UTC and always come back timezone-aware (SQLite keeps no zone).
- JSON columns (params, lineage, details) are JSONB on PostgreSQL, so operators can index and
  query lineage. They accept datetimes, dates, paths and sets (json_dumps): written as ISO
  strings, plain strings and sorted lists, and they come back as such.

The schema is changed only by the Alembic migrations in ml/registry/migrations (see
ml.registry.migrate), which tests keep equal to these classes; `sql/registry_*.sql` are those
migrations rendered as SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    literal,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE on PostgreSQL; UTC without zone on SQLite, re-zoned on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: registry timestamps must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def _json_default(value: Any) -> Any:
    # Airflow hands over logical dates (pendulum) and paths; store them readably.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> str:
    """A JSON column's value as stored (the engines' json_serializer)."""
    return json.dumps(value, default=_json_default)


class Base(DeclarativeBase):
    # Deterministic constraint names: identical on both backends and stable for migrations.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task_type: Mapped[str] = mapped_column(String(50), default="intent", server_default="intent")
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    artifact_uri: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(Text)
    data_snapshot_hash: Mapped[str] = mapped_column(String(128), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    # The run that made the version, as columns so the alias_lineage view can show them; NULL
    # where the caller did not know (a CLI run has no DAG).
    base_model_sha256: Mapped[str | None] = mapped_column(String(64))
    dag_id: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))
    logical_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_version: Mapped[str | None] = mapped_column(String(100))

    model: Mapped[RegisteredModel] = relationship(lazy="joined")
    metric_rows: Mapped[list[Metric]] = relationship(order_by="Metric.id")
    # Read-only: aliases are moved by id (ml.registry.store), never through this collection.
    aliases: Mapped[list[Alias]] = relationship(viewonly=True)


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    split: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    class_label: Mapped[str | None] = mapped_column(String(200))  # NULL: scalar metric
    value: Mapped[float] = mapped_column(Double)


# NULL-safe uniqueness (see module docstring).
Index(
    "uq_metrics_version_id_split_name_class_label",
    Metric.version_id,
    Metric.split,
    Metric.name,
    func.coalesce(Metric.class_label, literal("")),
    unique=True,
)


# One version per model and DAG run: a retried register task finds the version its first try
# wrote (ml.registry.store.register_version) and a racing twin fails here. Versions without a
# run (run_id NULL) are not constrained; nor, as NULLs differ in SQL, are those without a DAG.
Index(
    "uq_model_versions_model_id_dag_id_run_id",
    ModelVersion.model_id,
    ModelVersion.dag_id,
    ModelVersion.run_id,
    unique=True,
    sqlite_where=ModelVersion.run_id.is_not(None),
    postgresql_where=ModelVersion.run_id.is_not(None),
)


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(50))  # register, promote, set_alias, rollback...
    alias: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Erasure(Base):
    """One `intentflow erase` (ml.erasure): who, why, what it removed where, which models saw
    the data. Holds nothing that identifies the person, not even their keyed hashes (see
    docs/security.md, Right to erasure): only counts, days, snapshot hashes and versions."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # started, done, failed
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    identifiers: Mapped[dict[str, Any]] = mapped_column(JSONType)  # {kind: how many given}
    removed: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # {store: rows}
    days: Mapped[list[str]] = mapped_column(JSONType, default=list)  # days that held rows
    snapshots: Mapped[list[str]] = mapped_column(JSONType, default=list)  # hashes rewritten
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)  # "name:version" that saw it
    notes: Mapped[list[str]] = mapped_column(JSONType, default=list)


class MonitoringDay(Base):
    """One model's day of served predictions against its champion's training snapshot
    (ml.monitoring): the drift figures the UI charts (`figures`, the JSON layout of
    docs/monitoring.md), the checks' verdict and the HTML report. A rerun of a day replaces its
    row (unique model and day). `model` names the registered model, as the UI and alerts do."""

    __tablename__ = "monitoring_days"
    __table_args__ = (UniqueConstraint("model", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), ForeignKey("registered_models.name"))
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)  # the champion that served most of the day
    reference_version: Mapped[int] = mapped_column(Integer)  # whose snapshot is the reference
    predictions: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # ok, drift, no_data
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    report_url: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

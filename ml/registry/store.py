"""The model registry: versions, their metrics and lineage, aliases, and an audit trail.

A plain SQLAlchemy 2 library (no Airflow). SQLite is the embedded default; PostgreSQL is the
scaled-out store, where several workers may register versions of one model at the same time.

Schema notes:
- `metrics.class_label` is NULL for scalar metrics and the class name for per-class ones. SQL
  treats NULLs as distinct in UNIQUE constraints, so uniqueness is a unique index on
  `(version_id, split, name, COALESCE(class_label, ''))`, which both backends support. An empty
  class label is therefore rejected.
- Timestamps are stored in UTC and always come back timezone-aware (SQLite keeps no zone).
- JSON columns (params, lineage, details) accept datetimes, dates and paths: they are written
  as ISO strings / plain strings and come back as such.

The schema is changed only by the Alembic migrations in ml/registry/migrations (see ml.registry.migrate), which
tests keep equal to this ORM; `sql/registry_*.sql` are those migrations rendered as SQL.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePath
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)

from ml.config import settings
from ml.registry.errors import NotFoundError, RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
PER_CLASS = "per_class"

# Model and alias names end up inside refs like "intent@champion" / "intent:3".
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REF_RE = re.compile(r"^(?P<model>[^@:\s]+)(?:@(?P<alias>[^@:\s]+)|:(?P<version>\d+))?$")
# Connection execution option that makes SQLite take the write lock at BEGIN.
_SQLITE_WRITE = "intentflow_sqlite_write"
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
# Attempts at a write that lost a race (e.g. two workers creating the same model).
_WRITE_ATTEMPTS = 5

T = TypeVar("T")
log = logging.getLogger(__name__)


def _utcnow() -> datetime:
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


# JSONB on PostgreSQL so operators can index and query lineage.
JSONType = JSON().with_variant(JSONB(), "postgresql")


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_utcnow)


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    # Lineage (revision 0002); on versions registered before it, filled by revision 0003 from
    # their lineage JSON where that held the value (else NULL).
    base_model_sha256: Mapped[str | None] = mapped_column(String(64))
    dag_id: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))
    logical_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_version: Mapped[str | None] = mapped_column(String(100))

    model: Mapped[RegisteredModel] = relationship(lazy="joined")
    metric_rows: Mapped[list[Metric]] = relationship(order_by="Metric.id")
    # Read-only: aliases are moved by id in _move_alias, never through this collection.
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


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_utcnow)


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
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=_utcnow)


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    aliases: tuple[str, ...]
    artifact_uri: str
    artifact_sha256: str
    base_model: str
    data_snapshot_hash: str
    params: dict
    lineage: dict  # partitions, window and anything else the caller recorded
    created_at: datetime
    created_by: str
    base_model_sha256: str | None
    dag_id: str | None
    run_id: str | None
    logical_date: datetime | None
    code_version: str | None
    # {"test": {"accuracy": .., "macro_f1": .., "per_class": {label: {"f1": .., ...}}}, ...}
    metrics: dict
    task_type: str = "intent"  # the registered model's (ml.tasks.contract)


def _json_default(value: Any) -> Any:
    # Airflow hands over logical dates (pendulum) and paths; store them readably.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _as_json(value: Any, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise RegistryError(f"{what} must be a dict, got {value!r}")
    try:
        return json.loads(_json_dumps(value))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} cannot be stored as JSON: {exc}") from exc


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-', '/' "
            "and start with a letter or digit"
        )


def _check_sha256(what: str, value: Any) -> None:
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        raise RegistryError(f"{what} must be 64 lowercase hex digits (a sha256), got {value!r}")


def _aware(value: datetime | str | None, what: str) -> datetime | None:
    """A timezone-aware datetime from a datetime or an ISO string (Airflow passes either)."""
    if value is None or value == "":
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise RegistryError(f"{what} {value!r} is not an ISO date-time") from exc
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise RegistryError(f"{what} {value!r} must be a timezone-aware date-time")
    return when


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RegistryError(f"metric {where} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        # SQLite would store NaN as NULL; refuse rather than lose it silently.
        raise RegistryError(f"metric {where} is {number}: only finite numbers are stored")
    return number


def flatten_metrics(metrics: Mapping[str, Any]) -> list[tuple[str, str, str | None, float]]:
    """Nested metrics -> (split, name, class_label, value) rows; class_label None for scalars."""
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"metrics must be a dict of split -> metrics, got {metrics!r}")
    rows: list[tuple[str, str, str | None, float]] = []
    for split, values in metrics.items():
        if not isinstance(values, Mapping):
            raise RegistryError(f"metrics[{split!r}] must be a dict, got {values!r}")
        for name, value in values.items():
            if name != PER_CLASS:
                rows.append((split, name, None, _number(value, f"{split}/{name}")))
                continue
            if not isinstance(value, Mapping):
                raise RegistryError(f"metrics[{split!r}]['per_class'] must be a dict")
            for label, per in value.items():
                if not isinstance(per, Mapping) or str(label) == "":
                    raise RegistryError(
                        f"metrics[{split!r}]['per_class'][{label!r}] must be a dict of "
                        "metric -> number under a non-empty label"
                    )
                for m, x in per.items():
                    rows.append((split, m, str(label), _number(x, f"{split}/{label}/{m}")))
    return rows


def nest_metrics(rows: list[tuple[str, str, str | None, float]]) -> dict:
    """Inverse of flatten_metrics; support counts come back as ints."""
    out: dict[str, dict[str, Any]] = {}
    for split, name, label, value in rows:
        values = out.setdefault(split, {})
        if label is None:
            values[name] = value
            continue
        if name == "support" and value.is_integer():
            value = int(value)
        values.setdefault(PER_CLASS, {}).setdefault(label, {})[name] = value
    return out


def _to_info(v: ModelVersion) -> VersionInfo:
    rows = [(m.split, m.name, m.class_label, m.value) for m in v.metric_rows]
    return VersionInfo(
        model=v.model.name,
        version=v.version,
        aliases=tuple(sorted(a.alias for a in v.aliases)),
        artifact_uri=v.artifact_uri,
        artifact_sha256=v.artifact_sha256,
        base_model=v.base_model,
        data_snapshot_hash=v.data_snapshot_hash,
        params=dict(v.params or {}),
        lineage=dict(v.lineage or {}),
        created_at=v.created_at,
        created_by=v.created_by,
        base_model_sha256=v.base_model_sha256,
        dag_id=v.dag_id,
        run_id=v.run_id,
        logical_date=v.logical_date,
        code_version=v.code_version,
        metrics=nest_metrics(rows),
        task_type=v.model.task_type,
    )


def diff_versions(a: VersionInfo, b: VersionInfo) -> dict[str, Any]:
    """Metrics of two versions side by side (overall and per class) and the params that differ.

    `metrics` rows: split, class (None overall), name, a, b, delta (b - a; None where one side
    lacks the metric). `params`: {key: [a, b]} for keys whose values differ.
    """
    left = {(s, c, n): x for s, n, c, x in flatten_metrics(a.metrics)}
    right = {(s, c, n): x for s, n, c, x in flatten_metrics(b.metrics)}
    rows = []
    # Overall metrics first, then per class; both sorted.
    for split, label, name in sorted(
        left.keys() | right.keys(), key=lambda k: (k[0], k[1] is not None, k[1] or "", k[2])
    ):
        x, y = left.get((split, label, name)), right.get((split, label, name))
        delta = None if x is None or y is None else y - x
        rows.append({"split": split, "class": label, "name": name, "a": x, "b": y, "delta": delta})
    params = {
        key: [a.params.get(key), b.params.get(key)]
        for key in sorted(a.params.keys() | b.params.keys())
        if a.params.get(key) != b.params.get(key)
    }
    return {
        "a": f"{a.model}:{a.version}",
        "b": f"{b.model}:{b.version}",
        "metrics": rows,
        "params": params,
    }


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """'intent@champion' -> alias, 'intent:3' -> version, 'intent' -> champion."""
    match = _REF_RE.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise RegistryError(
            f"malformed model reference {ref!r}: expected 'name', 'name@alias' or 'name:version'"
        )
    version = match["version"]
    if version is not None:
        if int(version) < 1:
            raise RegistryError(f"malformed model reference {ref!r}: versions start at 1")
        return match["model"], int(version), None
    return match["model"], None, match["alias"] or CHAMPION


def _versions_query() -> Select[Any]:
    return select(ModelVersion).options(
        selectinload(ModelVersion.metric_rows), selectinload(ModelVersion.aliases)
    )


class Registry:
    """The registry behind one database URL. Cheap to create; safe to use from many processes.

    The schema must be at the latest migration: a SQLite registry is upgraded on first use
    (`auto_upgrade` defaults to True for SQLite only); any other database at an older revision
    raises SchemaError naming `intentflow registry upgrade`. A database that cannot be reached
    is retried `attempts` times with exponential backoff, then reported as a RegistryError.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        auto_upgrade: bool | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        from ml.registry import migrate

        self.url = url or settings().registry_url
        parsed = make_url(self.url)
        # Error messages name the database, never its password.
        self.where = parsed.render_as_string(hide_password=True)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._attempts, self._backoff_s = max(attempts, 1), backoff_s
        if self._sqlite and parsed.database not in (None, "", ":memory:"):
            if not parsed.database.startswith("file:"):
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(
            self.url,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            # Wait for a busy SQLite writer instead of failing at once; fail fast on a dead host.
            connect_args={"timeout": 30} if self._sqlite else _connect_timeout(parsed),
        )
        if self._sqlite:
            _sqlite_transactions(self._engine)
        writer = self._engine.execution_options(**{_SQLITE_WRITE: True})
        self._reads = sessionmaker(self._engine, expire_on_commit=False)
        self._writes = sessionmaker(writer, expire_on_commit=False)
        auto = self._sqlite if auto_upgrade is None else auto_upgrade
        # (revision found, revision now): they differ when this call upgraded the schema.
        self.schema: tuple[str | None, str] = self._reachable(
            lambda: migrate.ensure_current(writer, auto_upgrade=auto, where=self.where)
        )

    def close(self) -> None:
        """Release pooled connections (tests drop their databases afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reachable(self, fn: Callable[[], T]) -> T:
        """Run fn, retrying with exponential backoff while the database cannot be reached.

        Each attempt is one whole transaction, so a failed one leaves nothing half-written.
        """
        for attempt in range(1, self._attempts + 1):
            try:
                return fn()
            except (OperationalError, InterfaceError) as exc:
                if not _is_disconnect(exc):
                    raise
                if attempt == self._attempts:
                    first = str(exc.orig or exc).strip().splitlines()[0]
                    raise RegistryError(
                        f"cannot reach the registry database {self.where} after {attempt} "
                        f"attempts: {first}"
                    ) from exc
                delay = self._backoff_s * 2 ** (attempt - 1)
                log.warning("registry database unreachable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # --- writes -------------------------------------------------------------------------------

    def _read(self, fn: Callable[[Session], T]) -> T:
        def once() -> T:
            with self._reads() as session:
                return fn(session)

        return self._reachable(once)

    def _retrying(self, fn: Callable[[Session], T]) -> T:
        """Run fn in a write transaction, retrying when a concurrent writer won a race."""

        def once() -> T:
            with self._writes.begin() as session:
                return fn(session)

        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                return self._reachable(once)
            except IntegrityError as exc:
                if attempt == _WRITE_ATTEMPTS:
                    raise RegistryError(f"write failed after {attempt} attempts: {exc}") from exc
        raise AssertionError("unreachable")

    def register_version(
        self,
        model: str,
        *,
        artifact_uri: str,
        artifact_sha256: str,
        base_model: str,
        data_snapshot_hash: str,
        params: dict,
        lineage: dict,
        metrics: dict,
        actor: str = "intentflow",
        task_type: str = "intent",
        base_model_sha256: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        logical_date: datetime | str | None = None,
        code_version: str | None = None,
    ) -> VersionInfo:
        """Add the next version of `model` (created on first use) with its metrics and lineage.

        `lineage` holds what has no column of its own (the partitions read, the window...).
        """
        _check_name("model", model)
        _check_sha256("artifact_sha256", artifact_sha256)
        if base_model_sha256 is not None:
            _check_sha256("base_model_sha256", base_model_sha256)
        when = _aware(logical_date, "logical_date")
        rows = flatten_metrics(metrics)
        # Store and return the JSON form, so this VersionInfo equals what get() reads back.
        params, lineage = _as_json(params, "params"), _as_json(lineage, "lineage")

        def write(session: Session) -> VersionInfo:
            registered = self._lock_model(session, model)
            if registered is None:
                registered = RegisteredModel(name=model, task_type=task_type)
                session.add(registered)
                session.flush()  # IntegrityError if another worker just created it: retry
            elif registered.task_type != task_type:
                raise RegistryError(
                    f"model {model!r} has task_type {registered.task_type!r}, not {task_type!r}"
                )
            latest = session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == registered.id)
            )
            version = ModelVersion(
                model=registered,
                version=(latest or 0) + 1,
                artifact_uri=artifact_uri,
                artifact_sha256=artifact_sha256,
                base_model=base_model,
                data_snapshot_hash=data_snapshot_hash,
                params=params,
                lineage=lineage,
                created_by=actor,
                base_model_sha256=base_model_sha256,
                dag_id=dag_id,
                run_id=run_id,
                logical_date=when,
                code_version=code_version,
                metric_rows=[
                    Metric(split=s, name=n, class_label=c, value=x) for s, n, c, x in rows
                ],
            )
            session.add(version)
            session.flush()
            session.add(
                AuditLog(
                    model_id=registered.id,
                    version_id=version.id,
                    action="register",
                    actor=actor,
                    details={"artifact_uri": artifact_uri, "artifact_sha256": artifact_sha256},
                )
            )
            return _to_info(version)

        return self._retrying(write)

    def add_metrics(
        self, model: str, version: int, metrics: dict, *, actor: str = "intentflow"
    ) -> None:
        """Add metrics to a version (e.g. "champion_test"); existing keys are overwritten."""
        rows = flatten_metrics(metrics)

        def write(session: Session) -> None:
            registered = self._require_model(session, model, lock=True)
            v = self._require_version(session, registered, version)
            existing = {(m.split, m.name, m.class_label): m for m in v.metric_rows}
            for split, name, label, value in rows:
                row = existing.get((split, name, label))
                if row is None:
                    v.metric_rows.append(
                        Metric(split=split, name=name, class_label=label, value=value)
                    )
                else:
                    row.value = value
            session.add(
                AuditLog(
                    model_id=registered.id,
                    version_id=v.id,
                    action="add_metrics",
                    actor=actor,
                    details={"splits": sorted(metrics)},
                )
            )

        self._retrying(write)

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        action: str = "set_alias",
        details: dict | None = None,
    ) -> None:
        """Point `model@alias` at `version` (create or move) and audit it, atomically.

        `action` names the audit action ("promote", "rollback"...); `details` is stored with it.
        """
        _check_name("alias", alias)

        def write(session: Session) -> None:
            registered = self._require_model(session, model, lock=True)
            target = self._require_version(session, registered, version)
            self._move_alias(session, registered, alias, target, actor, reason, action, details)

        self._retrying(write)

    def rollback(
        self, model: str, *, actor: str, reason: str, version: int | None = None
    ) -> VersionInfo:
        """Move the champion back to `version`, or to the one it pointed at before its last move."""

        def write(session: Session) -> int:
            registered = self._require_model(session, model, lock=True)
            target = version if version is not None else self._previous_champion(session, model)
            v = self._require_version(session, registered, target)
            self._move_alias(session, registered, CHAMPION, v, actor, reason, "rollback", None)
            return v.version

        return self.get(model, version=self._retrying(write))

    def _move_alias(
        self,
        session: Session,
        registered: RegisteredModel,
        alias: str,
        target: ModelVersion,
        actor: str,
        reason: str,
        action: str,
        details: dict | None,
    ) -> None:
        # The model row is locked (FOR UPDATE), so read-then-upsert cannot race.
        row = session.scalar(
            select(Alias).where(Alias.model_id == registered.id, Alias.alias == alias)
        )
        previous = None
        if row is None:
            session.add(Alias(model_id=registered.id, alias=alias, version_id=target.id))
        else:
            previous = session.scalar(
                select(ModelVersion.version).where(ModelVersion.id == row.version_id)
            )
            row.version_id = target.id
            row.updated_at = _utcnow()
        moved = {"from_version": previous, "to_version": target.version}
        if alias == CHAMPION and self._drop_alias(session, registered, CHALLENGER, target):
            moved["removed_aliases"] = [CHALLENGER]  # the champion is no longer a challenger
        session.add(
            AuditLog(
                model_id=registered.id,
                version_id=target.id,
                action=action,
                alias=alias,
                actor=actor,
                reason=reason,
                details=moved | (details or {}),
            )
        )

    @staticmethod
    def _drop_alias(
        session: Session, registered: RegisteredModel, alias: str, target: ModelVersion
    ) -> bool:
        """Remove `alias` if it points at `target`; whether it did."""
        row = session.scalar(
            select(Alias).where(
                Alias.model_id == registered.id,
                Alias.alias == alias,
                Alias.version_id == target.id,
            )
        )
        if row is not None:
            session.delete(row)
        return row is not None

    def previous_champion(self, model: str) -> int:
        """The version `champion` pointed at before its last move (what rollback returns to)."""

        def read(session: Session) -> int:
            self._require_model(session, model)
            return self._previous_champion(session, model)

        return self._read(read)

    def _previous_champion(self, session: Session, model: str) -> int:
        moves = session.scalars(
            select(AuditLog)
            .join(RegisteredModel, RegisteredModel.id == AuditLog.model_id)
            .where(RegisteredModel.name == model, AuditLog.alias == CHAMPION)
            .order_by(AuditLog.id.desc())
            .limit(1)
        ).all()
        previous = moves[0].details.get("from_version") if moves else None
        if previous is None:
            raise NotFoundError(f"model {model!r} has no earlier champion to roll back to")
        return int(previous)

    # --- reads --------------------------------------------------------------------------------

    def get(
        self, model: str, *, version: int | None = None, alias: str | None = None
    ) -> VersionInfo:
        """One version, by number or alias; neither means the champion (like resolve)."""
        if version is not None and alias is not None:
            raise RegistryError(f"model {model!r}: give a version or an alias, not both")

        def read(session: Session) -> VersionInfo:
            registered = self._require_model(session, model)
            if version is not None:
                return _to_info(self._require_version(session, registered, version))
            return _to_info(self._require_alias(session, registered, alias or CHAMPION))

        return self._read(read)

    def resolve(self, ref: str) -> VersionInfo:
        """'intent@champion', 'intent:3', or 'intent' (= intent@champion)."""
        model, version, alias = parse_ref(ref)
        return self.get(model, version=version, alias=alias)

    def list_versions(self, model: str | None = None) -> list[VersionInfo]:
        """Every version, ordered by model then version; [] for a model never registered."""
        query = _versions_query().join(ModelVersion.model)
        if model is not None:
            query = query.where(RegisteredModel.name == model)
        query = query.order_by(RegisteredModel.name, ModelVersion.version)
        return self._read(lambda session: [_to_info(v) for v in session.scalars(query)])

    def audit(self, model: str) -> list[dict]:
        """The model's audit trail, oldest first."""

        def read(session: Session) -> list[dict]:
            registered = self._require_model(session, model)
            query = (
                select(AuditLog, ModelVersion.version)
                .outerjoin(ModelVersion, ModelVersion.id == AuditLog.version_id)
                .where(AuditLog.model_id == registered.id)
                .order_by(AuditLog.at, AuditLog.id)
            )
            return [
                {
                    "id": row.id,
                    "model": model,
                    "version": number,
                    "action": row.action,
                    "alias": row.alias,
                    "actor": row.actor,
                    "reason": row.reason,
                    "details": dict(row.details or {}),
                    "at": row.at,
                }
                for row, number in session.execute(query)
            ]

        return self._read(read)

    # --- lookups with clear errors ------------------------------------------------------------

    @staticmethod
    def _lock_model(session: Session, model: str) -> RegisteredModel | None:
        # FOR UPDATE serializes writers per model on PostgreSQL (SQLite locks at BEGIN).
        return session.scalar(
            select(RegisteredModel).where(RegisteredModel.name == model).with_for_update()
        )

    def _require_model(self, session: Session, model: str, lock: bool = False) -> RegisteredModel:
        if lock:
            registered = self._lock_model(session, model)
        else:
            registered = session.scalar(
                select(RegisteredModel).where(RegisteredModel.name == model)
            )
        if registered is None:
            known = session.scalars(select(RegisteredModel.name).order_by(RegisteredModel.name))
            names = ", ".join(known) or "none"
            raise NotFoundError(f"model {model!r} is not registered (registered models: {names})")
        return registered

    @staticmethod
    def _require_version(
        session: Session, registered: RegisteredModel, version: int
    ) -> ModelVersion:
        found = session.scalar(
            _versions_query().where(
                ModelVersion.model_id == registered.id, ModelVersion.version == version
            )
        )
        if found is None:
            latest = session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == registered.id)
            )
            raise NotFoundError(
                f"model {registered.name!r} has no version {version} (latest is {latest})"
            )
        return found

    @staticmethod
    def _require_alias(session: Session, registered: RegisteredModel, alias: str) -> ModelVersion:
        found = session.scalar(
            _versions_query()
            .join(Alias, Alias.version_id == ModelVersion.id)
            .where(Alias.model_id == registered.id, Alias.alias == alias)
        )
        if found is None:
            names = session.scalars(
                select(Alias.alias).where(Alias.model_id == registered.id).order_by(Alias.alias)
            )
            known = ", ".join(names) or "none"
            raise NotFoundError(
                f"model {registered.name!r} has no alias {alias!r} (aliases: {known})"
            )
        return found


def _connect_timeout(url: URL) -> dict[str, Any]:
    # libpq waits for a dead host for minutes by default; backoff handles the retries.
    return {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}


def _is_disconnect(exc: DBAPIError) -> bool:
    """Whether the error means the server cannot be reached (worth a retry), not bad SQL."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig or exc).lower()
    return any(hint in message for hint in _UNREACHABLE_HINTS)


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
        write = conn.get_execution_options().get(_SQLITE_WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

"""The model registry: versions, their metrics and lineage, aliases, and an audit trail.

A plain SQLAlchemy 2 library (no Airflow). SQLite is the embedded default; PostgreSQL is the
scaled-out store, where several workers may register versions of one model at the same time.
The tables are ml.registry.schema's; metrics are stored flattened (ml.registry.metrics).
Timestamps come back timezone-aware; JSON columns accept datetimes, dates and paths (stored as
ISO strings / plain strings, and returned as such).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from ml.config import settings
from ml.credentials import hide_credentials
from ml.registry.engine import is_disconnect, registry_engine, writer
from ml.registry.errors import AliasChangedError, NotFoundError, RegistryError
from ml.registry.metrics import flatten_metrics, nest_metrics
from ml.registry.names import check_name
from ml.registry.schema import (
    Alias,
    AuditLog,
    Erasure,
    Metric,
    ModelVersion,
    RegisteredModel,
    json_dumps,
    utcnow,
)

CHAMPION = "champion"
CHALLENGER = "challenger"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REF_RE = re.compile(r"^(?P<model>[^@:\s]+)(?:@(?P<alias>[^@:\s]+)|:(?P<version>\d+))?$")
# Attempts at a write that lost a race (e.g. two workers creating the same model).
_WRITE_ATTEMPTS = 5


class _AnyVersion:
    def __repr__(self) -> str:
        return "ANY_VERSION"


# `set_alias(expected=...)` default: move the alias wherever it points now.
ANY_VERSION: Any = _AnyVersion()

T = TypeVar("T")
log = logging.getLogger(__name__)


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


def _as_json(value: Any, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise RegistryError(f"{what} must be a dict, got {value!r}")
    try:
        return json.loads(json_dumps(value))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} cannot be stored as JSON: {exc}") from exc


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


def _shown(version: int | None) -> str:
    return "unset" if version is None else f"v{version}"


def _erasure_fields(found: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure's `removed` ({store: rows}) and lists (days, snapshots, models, notes)."""
    lists = {name: list(found.get(name) or []) for name in ("days", "snapshots", "models", "notes")}
    return {
        **json.loads(json_dumps(lists)),
        "removed": _as_json(found.get("removed", {}), "removed"),
    }


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
    check_name("model", match["model"])
    version = match["version"]
    if version is not None:
        if int(version) < 1:
            raise RegistryError(f"malformed model reference {ref!r}: versions start at 1")
        return match["model"], int(version), None
    return match["model"], None, check_name("alias", match["alias"] or CHAMPION)


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
        # Error messages name the database, never its password.
        self.where = hide_credentials(self.url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:  # a clear error for the CLI and tasks, the URL without password
            raise RegistryError(f"the registry URL {self.where!r} is not a database URL") from None
        self._attempts, self._backoff_s = max(attempts, 1), backoff_s
        self._engine = registry_engine(parsed)
        writes = writer(self._engine)
        self._reads = sessionmaker(self._engine, expire_on_commit=False)
        self._writes = sessionmaker(writes, expire_on_commit=False)
        auto = parsed.get_backend_name() == "sqlite" if auto_upgrade is None else auto_upgrade
        # (revision found, revision now): they differ when this call upgraded the schema.
        self.schema: tuple[str | None, str] = self._reachable(
            lambda: migrate.ensure_current(writes, auto_upgrade=auto, where=self.where)
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
                if not is_disconnect(exc):
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

    def read(self, fn: Callable[[Session], T]) -> T:
        """fn(session) in a read transaction, retried while the database is unreachable: for
        the registry's tables another package owns (ml.monitoring.store)."""
        return self._read(fn)

    def write(self, fn: Callable[[Session], T]) -> T:
        """fn(session) in a write transaction, retried as the registry's own writes are."""
        return self._retrying(fn)

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
        Idempotent per DAG run: when `dag_id` and `run_id` are given and that run already
        registered a version of `model` (a retried register task), that version is returned
        and nothing is written; the database's unique index on (model, dag_id, run_id) settles a
        race between two such calls (the loser's retry finds the winner's version). The same
        run with a different artifact is refused.
        """
        check_name("model", model)
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
            elif dag_id is not None and run_id is not None:
                done = self._registered_by_run(session, registered, dag_id, run_id)
                if done is not None:
                    if done.artifact_sha256 != artifact_sha256:
                        raise RegistryError(
                            f"DAG run {dag_id}/{run_id} already registered {model}:{done.version}"
                            f" with another artifact (sha256 {done.artifact_sha256[:12]}, now "
                            f"{artifact_sha256[:12]}): start a new DAG run to register a new model"
                        )
                    log.info(
                        "%s:%s is DAG run %s/%s's: not registered again",
                        model,
                        done.version,
                        dag_id,
                        run_id,
                    )
                    return _to_info(done)
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
        expected: int | None = ANY_VERSION,
    ) -> None:
        """Point `model@alias` at `version` (create or move) and audit it, atomically.

        `action` names the audit action ("promote", "rollback"...); `details` is stored with it.
        `expected` makes it a compare-and-swap: move only if the alias still points at that
        version (None: only if there is no such alias yet), else raise AliasChangedError and
        write nothing. The check and the move are one transaction holding the model's lock, so
        no other alias move can slip between them.
        """
        check_name("alias", alias)

        def write(session: Session) -> None:
            registered = self._require_model(session, model, lock=True)
            target = self._require_version(session, registered, version)
            self._move_alias(
                session, registered, alias, target, actor, reason, action, details, expected
            )

        self._retrying(write)

    def rollback(
        self,
        model: str,
        *,
        actor: str,
        reason: str,
        version: int | None = None,
        details: dict | None = None,
    ) -> VersionInfo:
        """Move the champion back to `version`, or to the one it pointed at before its last move."""

        def write(session: Session) -> int:
            registered = self._require_model(session, model, lock=True)
            target = version if version is not None else self._previous_champion(session, model)
            v = self._require_version(session, registered, target)
            self._move_alias(session, registered, CHAMPION, v, actor, reason, "rollback", details)
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
        expected: int | None = ANY_VERSION,
    ) -> None:
        # The model row is locked (FOR UPDATE on PostgreSQL; SQLite writers BEGIN IMMEDIATE),
        # so read-compare-then-upsert cannot race another alias move of this model.
        row = session.scalar(
            select(Alias).where(Alias.model_id == registered.id, Alias.alias == alias)
        )
        previous = None
        if row is not None:
            previous = session.scalar(
                select(ModelVersion.version).where(ModelVersion.id == row.version_id)
            )
        if expected is not ANY_VERSION and previous != expected:
            raise AliasChangedError(
                f"{registered.name}@{alias} is {_shown(previous)}, not {_shown(expected)} "
                "as expected: not moved",
                expected=expected,
                current=previous,
            )
        if row is None:
            session.add(Alias(model_id=registered.id, alias=alias, version_id=target.id))
        else:
            row.version_id = target.id
            row.updated_at = utcnow()
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

    # --- erasures (ml.erasure's audit; nothing in it identifies the person) -------------------

    def start_erasure(
        self, *, actor: str, reason: str | None, identifiers: dict[str, int], found: dict
    ) -> int:
        """Record an erasure before it changes anything (status `started`); returns its id.

        `identifiers`: how many of each kind were given; `found`: the erasure's `removed`,
        `days`, `snapshots`, `models` and `notes` as planned. A crash leaves the row `started`,
        so the models that saw the data stay on record even when a rerun finds nothing left.
        """
        row = Erasure(
            status="started",
            actor=actor,
            reason=reason,
            identifiers=_as_json(identifiers, "identifiers"),
            **_erasure_fields(found),
        )

        def write(session: Session) -> int:
            session.add(row)
            session.flush()
            return row.id

        return self._retrying(write)

    def finish_erasure(self, erasure_id: int, *, status: str, found: dict) -> None:
        """Close an erasure: `done` with what it removed, or `failed`."""

        def write(session: Session) -> None:
            row = session.get(Erasure, erasure_id)
            if row is None:
                raise NotFoundError(f"no erasure {erasure_id}")
            row.status, row.finished_at = status, utcnow()
            for name, value in _erasure_fields(found).items():
                setattr(row, name, value)

        self._retrying(write)

    def erasures(self) -> list[dict]:
        """Every erasure, oldest first."""
        columns = [c.key for c in Erasure.__table__.columns]

        def read(session: Session) -> list[dict]:
            rows = session.scalars(select(Erasure).order_by(Erasure.id))
            return [{name: getattr(row, name) for name in columns} for row in rows]

        return self._read(read)

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
    def _registered_by_run(
        session: Session, registered: RegisteredModel, dag_id: str, run_id: str
    ) -> ModelVersion | None:
        return session.scalar(
            _versions_query().where(
                ModelVersion.model_id == registered.id,
                ModelVersion.dag_id == dag_id,
                ModelVersion.run_id == run_id,
            )
        )

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

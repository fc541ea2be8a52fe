"""Right to erasure: remove one person's rows from every store that holds them, and say so.

The lake is redacted: it holds no e-mail, phone number or customer id to search for. Ingest
keeps instead, per row, the keyed hashes of the identifiers it removed (`subject_keys`,
ml.subjects); :func:`erase` computes the same keys from the identifiers it is given and
walks :data:`STORES`:

- the lake (the `transcripts` Delta table): each day holding a key is rewritten without those
  rows in one commit (ml.lake.rewrite_partition), with the manifest recounted; the replaced
  file stays for time travel until VACUUM deletes it once older than the retention
  (INTENTFLOW_LAKE_RETENTION_HOURS; the maintenance DAG); the result's notes say so;
- the quarantine (a Delta table): each day without the records carrying a key, or the
  conversation id of one of the person's lake rows;
- the prediction log (`predictions`): each day without the rows carrying a key;
- agents' corrections (`feedback`): the rows of the predictions just found, and those whose
  note held one of the identifiers (ml.feedback.table);
- training snapshots frozen from the lake: the split files without those conversation ids or
  corrected prediction ids (snapshots keep no keys); a snapshot keeps its hash, which models'
  lineage names, and its snapshot.json records the erasure.

It then lists the registered model versions that saw the data (trained on a rewritten snapshot
or on a window that held an erased day): they are not retrained here (docs/security.md). The
registry's `erasures` table records who erased, why, and what was removed where, without the
identifiers or their keys.

Nothing here reads Airflow; the CLI's `intentflow erase` calls :func:`erase`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from ml import delta, lake, storage
from ml.config import Settings, lake_retention_hours, pii_key_env
from ml.quarantine import rule_counts
from ml.snapshots.lake_window import FEEDBACK_FILE
from ml.snapshots.writer import SNAPSHOT_FILE, SPLITS, cached_copy
from ml.storage import Location, is_remote
from ml.subjects import KEY_FILE, KINDS, normal, pii_key, subject_key

log = logging.getLogger(__name__)

SUBJECT_KEYS = "subject_keys"
SNAPSHOT_SPLITS = tuple(SPLITS)


class ErasureError(ValueError):
    """An erasure request Intentflow cannot carry out as given (no identifier, a bad reason)."""


# --- what the stores hold of the person ------------------------------------------------------


@dataclass
class Found:
    """What one store holds of the person: rows, the days or snapshots holding them, notes."""

    store: str
    rows: int = 0
    days: list[date] = field(default_factory=list)
    snapshots: dict[str, dict[str, int]] = field(default_factory=dict)  # hash -> file -> rows
    notes: list[str] = field(default_factory=list)
    stale: list[date] = field(default_factory=list)  # days with an unvacuumed file holding rows


@dataclass
class Job:
    """One erasure as the stores are walked: the keys, and what earlier stores found that later
    ones are searched by (their rows carry no keys)."""

    cfg: Settings
    keys: frozenset[str]
    conversation_ids: set[str] = field(default_factory=set)  # of the person's lake rows
    prediction_ids: set[str] = field(default_factory=set)  # of the person's predictions
    lake_days: set[date] = field(default_factory=set)  # days whose partition held them
    quarantine_days: set[date] = field(default_factory=set)


class Store(Protocol):
    """A place that may hold a person's rows: found first (reading only), removed after."""

    name: str

    def find(self, job: Job) -> Found: ...

    def remove(self, job: Job, found: Found) -> None: ...


# --- matching --------------------------------------------------------------------------------


def _matching(table: pa.Table, keys: frozenset[str], ids: Iterable[str] = ()) -> pa.Array:
    """Per row: does it carry one of `keys` in `subject_keys`, or one of `ids` as its
    conversation id? (A table without the column matches by id only.)"""
    n = table.num_rows
    hit = pa.array([False] * n, pa.bool_())
    if SUBJECT_KEYS in table.column_names and n:
        column = table.column(SUBJECT_KEYS).combine_chunks()
        flat = pc.list_flatten(column)
        if flat.type != pa.string():  # a MERGE's files (the feedback table) hold string_view
            flat = flat.cast(pa.string())
        rows = pc.filter(
            pc.list_parent_indices(column), pc.is_in(flat, value_set=pa.array(sorted(keys)))
        )
        hit = pc.is_in(pa.array(range(n), pa.int64()), value_set=rows)
    ids = sorted(ids)
    if ids and "conversation_id" in table.column_names and n:
        by_id = pc.is_in(table.column("conversation_id"), value_set=pa.array(ids, pa.string()))
        hit = pc.or_(hit, by_id)
    return pc.fill_null(hit, False)


def _without(table: pa.Table, hit: pa.Array) -> pa.Table:
    return table.filter(pc.invert(hit))


# --- the lake ----------------------------------------------------------------------------------


class LakeStore:
    """The transcripts table: one partition per day, rows carrying `subject_keys`."""

    name = "lake"

    def find(self, job: Job) -> Found:
        found, predate = Found(self.name), 0
        root = job.cfg.lake
        table = delta.open_table(root)
        if table is None:
            return found
        published = delta.manifests(table)
        for day in lake.list_partitions(root):
            if published.get(day.isoformat(), {}).get(lake.NO_SUBJECT_KEYS):
                predate += 1
                continue
            rows = delta.read_day(table, day.isoformat(), ["conversation_id", SUBJECT_KEYS])
            hits = rows.filter(_matching(rows, job.keys))
            if hits.num_rows:
                found.rows += hits.num_rows
                found.days.append(day)
                job.lake_days.add(day)
                job.conversation_ids.update(hits.column("conversation_id").to_pylist())
        found.stale = _stale_days(root, job.keys)
        _vacuum_note(found)
        if predate:
            found.notes.append(
                f"{predate} lake partition(s) predate subject keys: nothing could be matched "
                "there (re-ingest those days from a source the person's rows were deleted from)"
            )
        return found

    def remove(self, job: Job, found: Found) -> None:
        root = job.cfg.lake
        # Days whose rows go, and days whose quarantine changed: their manifest is recounted.
        for day in sorted(set(found.days) | job.quarantine_days):
            lake.rewrite_partition(root, day, _day_without(job, day))


def _stale_days(root: Location, keys: frozenset[str]) -> list[date]:
    """Days with an old data file (replaced, not yet vacuumed: time travel reads it) holding
    one of `keys`. One that cannot be read counts as holding one."""
    days = set()
    for loc in delta.unvacuumed(root):
        day = _day_of_file(str(loc))
        if day is None or day in days:
            continue
        try:
            rows = storage.read_parquet(loc, [SUBJECT_KEYS])
        except (OSError, pa.ArrowException):
            days.add(day)
            continue
        if bool(pc.any(_matching(rows, keys)).as_py()):
            days.add(day)
    return sorted(days)


def _vacuum_note(found: Found) -> None:
    """Delta keeps a replaced file for time travel: say when the person's rows really go."""
    if found.days or found.stale:
        found.notes.append(
            f"{found.store}: the files replaced (and {len(found.stale)} older day(s) not yet "
            f"vacuumed) keep the rows for time travel until VACUUM deletes them, "
            f"{lake_retention_hours()} h after the erasure (the maintenance DAG, or "
            "`intentflow lake vacuum`; docs/security.md)"
        )


def _day_of_file(uri: str) -> date | None:
    folder = uri.rstrip("/").rsplit("/", 2)[-2] if "/" in uri else ""
    try:
        return date.fromisoformat(folder.removeprefix(f"{delta.PARTITION}="))
    except ValueError:
        return None


def _day_without(job: Job, day: date) -> lake.Change:
    """The change of one lake day: the person's rows out, the manifest recounted."""

    def change(rows: pa.Table, manifest: dict) -> tuple[pa.Table, dict] | None:
        kept = _without(rows, _matching(rows, job.keys))
        recounted = _recount(manifest, kept.num_rows, _quarantine_rules(job.cfg, day))
        if kept.num_rows == rows.num_rows and recounted == manifest:
            return None
        return kept, recounted

    return change


def _recount(manifest: dict, written: int, quarantine: dict[str, int] | None) -> dict:
    """An ingest manifest after an erasure: rows read = written + quarantined + erased."""
    if "rows_read" not in manifest:  # not written by ingest: write_partition recounts `rows`
        return manifest
    recounted = {**manifest, "rows": written, "rows_written": written}
    if quarantine is not None:
        recounted["rows_quarantined"] = sum(quarantine.values())
        recounted["quarantine_rules"] = quarantine
    erased = int(manifest["rows_read"]) - written - int(recounted.get("rows_quarantined", 0))
    if erased or "rows_erased" in manifest:
        recounted["rows_erased"] = erased
    return recounted


def _quarantine_rules(cfg: Settings, day: date) -> dict[str, int] | None:
    if not lake.has_quarantine_table(cfg.quarantine):
        return None
    return rule_counts(lake.read_quarantine(cfg.quarantine, day, ["rule"]))


# --- the quarantine ----------------------------------------------------------------------------


class QuarantineStore:
    """Each day's quarantined records, as read: found by their keys (where ingest recorded
    them) or by the conversation id of one of the person's lake rows."""

    name = "quarantine"

    def find(self, job: Job) -> Found:
        found = Found(self.name)
        root = job.cfg.quarantine
        for day in lake.quarantine_days(root):
            rows = lake.read_quarantine(root, day, ["conversation_id", SUBJECT_KEYS])
            hits = int(pc.sum(_matching(rows, job.keys, job.conversation_ids)).as_py() or 0)
            if hits:
                found.rows += hits
                found.days.append(day)
                job.quarantine_days.add(day)
        found.stale = _stale_days(root, job.keys)
        _vacuum_note(found)
        return found

    def remove(self, job: Job, found: Found) -> None:
        for day in found.days:
            lake.rewrite_quarantine(
                job.cfg.quarantine,
                day,
                lambda rows: _without(rows, _matching(rows, job.keys, job.conversation_ids)),
            )


# --- snapshots ---------------------------------------------------------------------------------


class SnapshotStore:
    """Training snapshots frozen from the lake (ml.snapshots.lake_window): copies of lake rows
    (conversation_id, text, intent), found by the conversation ids of the person's lake rows
    in snapshots whose window held one of the days those rows were on."""

    name = "snapshots"

    def find(self, job: Job) -> Found:
        found = Found(self.name)
        ids = _snapshot_ids(job)
        if not ids:
            return found
        erased = {d.isoformat() for d in job.lake_days}
        for folder, record in _snapshots(job.cfg.snapshots):
            days = {p.get("day") for p in record.get("partitions") or []}
            corrected = bool(record.get("feedback")) and bool(job.prediction_ids)
            if not days & erased and not corrected:  # not from the lake, or from other days
                continue
            counts = {}
            for name in SNAPSHOT_SPLITS:
                rows = _split(folder, name, ["conversation_id"])
                hits = int(pc.sum(_matching(rows, frozenset(), ids)).as_py() or 0)
                if hits:
                    counts[name] = hits
            if counts:
                found.snapshots[record["hash"]] = counts
                found.rows += sum(counts.values())
        return found

    def remove(self, job: Job, found: Found) -> None:
        for folder, record in _snapshots(job.cfg.snapshots):
            if record.get("hash") not in found.snapshots:
                continue
            counts = dict(record.get("counts") or {})
            removed, ids = 0, _snapshot_ids(job)
            for name in SNAPSHOT_SPLITS:
                rows = _split(folder, name)
                kept = _without(rows, _matching(rows, frozenset(), ids))
                if kept.num_rows != rows.num_rows:
                    storage.write_parquet(kept, storage.join(folder, f"{name}.parquet"))
                    removed += rows.num_rows - kept.num_rows
                    counts[name] = kept.num_rows
            # The test split's corrections (the `feedback` golden set) are a copy: rewritten
            # too, not counted twice.
            extra = storage.join(folder, FEEDBACK_FILE)
            if storage.exists(extra):
                rows = storage.read_parquet(extra)
                kept = _without(rows, _matching(rows, frozenset(), ids))
                if kept.num_rows != rows.num_rows:
                    storage.write_parquet(kept, extra)
            # snapshot.json last: it says the files are whole, and records the change.
            erasures = [*record.get("erasures", []), {"at": _now(), "rows": removed}]
            record = {**record, "counts": counts, "erasures": erasures}
            storage.write_bytes(
                (json.dumps(record, indent=2) + "\n").encode(), storage.join(folder, SNAPSHOT_FILE)
            )
            _drop_cached(job.cfg, folder)


def _snapshot_ids(job: Job) -> set[str]:
    """A snapshot's keys of the person's rows: lake conversations, corrected predictions (the
    key of a correction's example, ml.feedback.training)."""
    return job.conversation_ids | job.prediction_ids


def _snapshots(root: Location) -> list[tuple[Location, dict]]:
    """Every snapshot under `root` (any depth: snapshots/<model>/<hash16> too) and its record."""
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(root))
        fs.invalidate_cache(path)
        try:
            found = [p for p in fs.find(path) if p.endswith(f"/{SNAPSHOT_FILE}")]
        except FileNotFoundError:
            return []
        prefix = path.rstrip("/")
        markers: list[Location] = [f"{root}/{p[len(prefix) :].lstrip('/')}" for p in found]
    else:
        markers = list(Path(root).rglob(SNAPSHOT_FILE))
    return [
        (storage.parent(m), json.loads(storage.read_bytes(m))) for m in sorted(markers, key=str)
    ]


def _split(folder: Location, name: str, columns: list[str] | None = None) -> pa.Table:
    return storage.read_parquet(storage.join(folder, f"{name}.parquet"), columns)


def _drop_cached(cfg: Settings, folder: Location) -> None:
    """This machine's cached copy of a remote snapshot still holds the rows: drop it. (Other
    workers' copies are fetched again on their next use: local_snapshot sees the new
    snapshot.json; docs/operations.md says how to clear them at once.)"""
    if storage.is_remote(folder):
        shutil.rmtree(cached_copy(str(folder), cfg.cache), ignore_errors=True)


# --- the serving prediction log ----------------------------------------------------------------


class PredictionStore:
    """`intentflow serve`'s `predictions` table (ml.serving.prediction_log): redacted messages,
    each row with the keys of the identifiers removed from it; a day rewritten without the
    person's rows in one commit (a flush meanwhile makes it read again, nothing is lost)."""

    name = "predictions"

    def find(self, job: Job) -> Found:
        found = Found(self.name)
        table = _prediction_table(job.cfg)
        for day in table.days():
            rows = table.read_day(day, ["prediction_id", SUBJECT_KEYS])
            hit = _matching(rows, job.keys)
            hits = int(pc.sum(hit).as_py() or 0)
            if hits:
                found.rows += hits
                found.days.append(date.fromisoformat(day))
                job.prediction_ids.update(rows.filter(hit).column("prediction_id").to_pylist())
        found.stale = _stale_days(job.cfg.predictions, job.keys)
        _vacuum_note(found)
        return found

    def remove(self, job: Job, found: Found) -> None:
        table = _prediction_table(job.cfg)
        for day in found.days:
            table.rewrite_day(
                day.isoformat(), lambda rows: _without(rows, _matching(rows, job.keys))
            )


def _prediction_table(cfg: Settings) -> Any:
    from ml.serving.prediction_log import PredictionTable  # the service's writer, read back

    return PredictionTable(cfg.predictions)


# --- agents' corrections -------------------------------------------------------------------------


class FeedbackStore:
    """The `feedback` table (ml.feedback.table): corrections of the person's predictions
    (found by the prediction store, before this one), or whose note held an identifier."""

    name = "feedback"

    def _hit(self, job: Job) -> Any:
        ids = pa.array(sorted(job.prediction_ids), pa.string())

        def hit(rows: pa.Table) -> pa.Array:
            by_id = pc.is_in(rows.column("prediction_id"), value_set=ids)
            return pc.fill_null(pc.or_(_matching(rows, job.keys), by_id), False)

        return hit

    def find(self, job: Job) -> Found:
        from ml.feedback.table import FeedbackTable

        found, table, hit = Found(self.name), FeedbackTable(job.cfg.feedback), self._hit(job)
        for day in table.days():
            rows = table.read(["prediction_id", SUBJECT_KEYS], days=[day])
            hits = int(pc.sum(hit(rows)).as_py() or 0)
            if hits:
                found.rows += hits
                found.days.append(date.fromisoformat(day))
        found.stale = _stale_days(job.cfg.feedback, job.keys)
        _vacuum_note(found)
        return found

    def remove(self, job: Job, found: Found) -> None:
        from ml.feedback.table import FeedbackTable

        table = FeedbackTable(job.cfg.feedback)
        for day in found.days:
            table.delete(day.isoformat(), self._hit(job))


# Found in this order (each store after those it is found through: the predictions through
# their keys, the corrections through the predictions, snapshots through both and the lake),
# removed in the reverse one.
STORES: tuple[Store, ...] = (
    LakeStore(),
    QuarantineStore(),
    PredictionStore(),
    FeedbackStore(),
    SnapshotStore(),
)


# --- the erasure -------------------------------------------------------------------------------


@dataclass
class ErasureResult:
    """What was found (and, unless a dry run, removed), and the models that saw it. No
    identifier, no key: the result is printed, logged and stored as it is."""

    dry_run: bool
    erasure_id: int | None
    identifiers: dict[str, int]  # kind -> how many were given
    removed: dict[str, int]  # store -> rows
    days: dict[str, list[str]]  # store -> days that held rows
    snapshots: list[str]  # hashes of the snapshots rewritten
    models: list[str]  # "name:version" of the versions that saw the data
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def erase(
    config: Settings,
    identifiers: Mapping[str, Iterable[str]],
    actor: str,
    reason: str | None = None,
    *,
    dry_run: bool = False,
) -> ErasureResult:
    """Remove the rows of the person with these identifiers ({kind: [values]}, kinds as in
    ml.subjects.KINDS) from every store in :data:`STORES`, record the erasure in the registry,
    and list the model versions that saw the data. `dry_run` finds and lists, changes nothing
    and records nothing.

    Idempotent: a second run finds nothing and changes nothing (it is still recorded). A crash
    leaves every file whole (each is replaced atomically) and the audit row `started`; a rerun
    finishes the work.
    """
    from ml.registry.store import Registry

    given = _identifiers(identifiers)
    _check_reason(reason, given)
    key = _ingest_key(config)
    keys = frozenset(subject_key(kind, v, key) for kind, values in given.items() for v in values)
    # The registry first: an old schema or a dead database fails before anything changes.
    with Registry(config.registry_url) as registry:
        job = Job(config, keys)
        found = [store.find(job) for store in STORES]
        result = _result(found, _models_that_saw(registry, job, found), given, dry_run)
        if dry_run:
            return result
        result.erasure_id = registry.start_erasure(
            actor=actor, reason=reason, identifiers=result.identifiers, found=_audit(result)
        )
        try:
            for store, what in reversed(list(zip(STORES, found, strict=True))):
                store.remove(job, what)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                registry.finish_erasure(result.erasure_id, status="failed", found=_audit(result))
            raise
        registry.finish_erasure(result.erasure_id, status="done", found=_audit(result))
    log.info("erasure %d: removed %s", result.erasure_id, result.removed)
    return result


def _ingest_key(config: Settings) -> bytes:
    """The key ingest hashed identifiers with. Where it would be generated now (no
    INTENTFLOW_PII_KEY, no key file under this home), ingest never ran with this home: a new
    key would match nothing and the erasure would report success having found nothing."""
    if not pii_key_env() and not is_remote(config.data_root):
        if not (config.home / KEY_FILE).exists():
            raise ErasureError(
                f"no pseudonymisation key: INTENTFLOW_PII_KEY is unset and "
                f"{config.home / KEY_FILE} does not exist, so nothing ingested with this "
                "INTENTFLOW_HOME could be matched; run erase with the INTENTFLOW_HOME (or "
                "INTENTFLOW_PII_KEY) that ingest uses"
            )
    return pii_key(config)


def _identifiers(identifiers: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The identifiers by kind, blanks dropped; ErasureError when none is left. Messages name
    kinds, never values."""
    given: dict[str, list[str]] = {}
    for kind, values in identifiers.items():
        if kind not in KINDS:
            raise ErasureError(f"unknown identifier kind: use {', '.join(KINDS)}")
        values = list(values)
        kept = [v for v in values if normal(kind, v)]
        if len(kept) != len(values):
            raise ErasureError(f"an empty {kind} was given (a phone number needs digits)")
        if kept:
            given[kind] = kept
    if not given:
        raise ErasureError("give at least one identifier: --email, --phone or --customer-id")
    return given


def _check_reason(reason: str | None, given: Mapping[str, list[str]]) -> None:
    """The reason is stored in the audit log: it must not carry the identifiers."""
    if not reason:
        return
    text, digits = reason.casefold(), "".join(c for c in reason if c.isdigit())
    for kind, values in given.items():
        for value in values:
            value_normal = normal(kind, value)
            if kind == "phone":  # in any spelling: its last 7 digits (the prefix varies)
                inside = len(value_normal) >= 7 and value_normal[-7:] in digits
            else:
                inside = value_normal.casefold() in text
            if inside:
                raise ErasureError(
                    f"the reason contains the {kind} being erased; it is kept in the audit "
                    "log, so give a ticket or case number instead"
                )


def _models_that_saw(registry: Any, job: Job, found: list[Found]) -> list[str]:
    """Registered versions trained on a snapshot being rewritten, or on a lake window holding a
    day the person's rows were on (their snapshot may be gone, or from before the rows)."""
    hashes = {h for f in found for h in f.snapshots}
    days = {d.isoformat() for d in job.lake_days}
    saw = []
    for version in registry.list_versions():
        lineage = version.lineage or {}
        trained_on = {p.get("day") for p in lineage.get("partitions") or []}
        window = lineage.get("window") or {}
        if not trained_on and window.get("start") and window.get("end"):
            trained_on = {d for d in days if window["start"] <= d <= window["end"]}
        if version.data_snapshot_hash in hashes or trained_on & days:
            saw.append(f"{version.model}:{version.version}")
    return saw


def _result(
    found: list[Found], models: list[str], given: Mapping[str, list[str]], dry_run: bool
) -> ErasureResult:
    return ErasureResult(
        dry_run=dry_run,
        erasure_id=None,
        identifiers={kind: len(given.get(kind, [])) for kind in KINDS},
        removed={f.store: f.rows for f in found},
        days={f.store: [d.isoformat() for d in f.days] for f in found if f.days},
        snapshots=sorted(h for f in found for h in f.snapshots),
        models=models,
        notes=[n for f in found for n in f.notes],
    )


def _audit(result: ErasureResult) -> dict[str, Any]:
    """The registry's record of an erasure: the result's counts, days, snapshots, models."""
    days = sorted({d for ds in result.days.values() for d in ds})
    return {
        "removed": result.removed,
        "days": days,
        "snapshots": result.snapshots,
        "models": result.models,
        "notes": result.notes,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""`intentflow lake migrate`: convert a lake written before the Delta tables (ml.delta).

The old layout, read here only (nothing else knows it any more):

    transcripts/dt=DAY/part-00000.parquet + _manifest.json            local folder
    transcripts/dt=DAY/_manifest.json -> _versions/<id>/part-00000.parquet   object storage
    quarantine/dt=DAY/quarantine.parquet
    lake/predictions/dt=DAY/part-*.parquet

Each day becomes one commit of its Delta table, in place (the same root), carrying its old
manifest; the day's rows are streamed in their file order, so its content hash stays valid.
The old files are deleted only once every day of a table is committed. A rerun after a crash
commits the remaining days again (an overwrite of the same rows) and finishes the deletion:
the migration is idempotent. Days written before `subject_keys` get it empty, and their
manifest says so (ml.lake.NO_SUBJECT_KEYS): erasure reports them, as before.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml import delta, lake, storage
from ml.config import Settings
from ml.quarantine import QUARANTINE_FILE, QUARANTINE_SCHEMA
from ml.storage import Location
from ml.transcript import TRANSCRIPT_SCHEMA

log = logging.getLogger(__name__)

DATA_FILE = "part-00000.parquet"
MANIFEST = "_manifest.json"
VERSIONS = "_versions"


def migrate(cfg: Settings) -> dict[str, Any]:
    """Convert the lake, quarantine and predictions of `cfg`; what was converted, per table."""
    return {
        "transcripts": _migrate_transcripts(cfg.lake),
        "quarantine": _migrate_files(cfg.quarantine, QUARANTINE_FILE, QUARANTINE_SCHEMA),
        "predictions": _migrate_files(cfg.predictions, "part-*T*.parquet", None),
    }


# --- the old layout ----------------------------------------------------------------------------


def _day_folders(root: Location) -> dict[date, Location]:
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(root))
        fs.invalidate_cache(path)
        found = fs.glob(f"{path}/dt=*")
        return {
            d: f"{root}/{p.rstrip('/').rsplit('/', 1)[-1]}"
            for p in found
            if (d := _day_of(p)) is not None
        }
    if not Path(root).is_dir():
        return {}
    return {d: p for p in Path(root).glob("dt=*") if p.is_dir() and (d := _day_of(p.name))}


def _day_of(name: str) -> date | None:
    try:
        return date.fromisoformat(str(name).rstrip("/").rsplit("/", 1)[-1].removeprefix("dt="))
    except ValueError:
        return None


def _legacy_day(folder: Location) -> tuple[Location, dict] | None:
    """The old partition's data file and manifest; None when the folder holds no old day."""
    marker = storage.join(folder, MANIFEST)
    if not storage.exists(marker):
        return None
    manifest = json.loads(storage.read_bytes(marker))
    if storage.is_remote(folder):
        data = storage.join(folder, VERSIONS, manifest["version"], DATA_FILE)
    else:
        data = storage.join(folder, DATA_FILE)
    return data, manifest


# The old prediction log's files: part-<YYYYmmddTHHMMSS>-<12 hex>.parquet. The Delta table's
# own files (part-00000-<uuid>-c000.zstd.parquet) live in the same folders: never theirs.
OLD_NAME = re.compile(r"(quarantine|part-\d{8}T\d{6}-[0-9a-f]{12})\.parquet")


def _files(folder: Location, pattern: str) -> list[Location]:
    if storage.is_remote(folder):
        fs, path = storage.filesystem(str(folder))
        fs.invalidate_cache(path)
        found = [f"{folder}/{p.rsplit('/', 1)[-1]}" for p in sorted(fs.glob(f"{path}/{pattern}"))]
    else:
        found = sorted(Path(folder).glob(pattern))
    return [f for f in found if OLD_NAME.fullmatch(str(f).rsplit("/", 1)[-1])]


def _opened(data: Location) -> Any:
    if not storage.is_remote(data):
        return open(data, "rb")
    fs, path = storage.filesystem(str(data))
    return fs.open(path, "rb")


def _batches(data: Location) -> Iterator[pa.RecordBatch]:
    with _opened(data) as fh:
        yield from pq.ParquetFile(fh).iter_batches(lake.ROW_GROUP_ROWS)


def with_subject_keys(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch (of a table with `schema`) written before `subject_keys` existed, with it
    empty: no identifier was recorded for its rows."""
    names = set(batch.schema.names)
    if "subject_keys" in names or not names >= set(schema.names) - {"subject_keys"}:
        return batch
    field = schema.field("subject_keys")
    return batch.append_column(field, pa.array([[]] * batch.num_rows, field.type))


# --- conversion ----------------------------------------------------------------------------------


def _migrate_transcripts(root: Location) -> list[str]:
    days = {d: old for d, f in sorted(_day_folders(root).items()) if (old := _legacy_day(f))}
    for day, (data, manifest) in days.items():
        manifest = {k: v for k, v in manifest.items() if k not in ("version", "previous_version")}
        with _opened(data) as fh:
            names = pq.read_schema(fh).names
        if "subject_keys" not in names:
            manifest[lake.NO_SUBJECT_KEYS] = True
        _commit_day(root, day, [data], manifest, TRANSCRIPT_SCHEMA)
    for day in days:
        _remove_old(
            storage.join(root, f"dt={day.isoformat()}"), [MANIFEST, DATA_FILE, VERSIONS, "_lock"]
        )
    return [d.isoformat() for d in days]


def _migrate_files(root: Location, pattern: str, schema: pa.Schema | None) -> list[str]:
    days = {
        d: files for d, f in sorted(_day_folders(root).items()) if (files := _files(f, pattern))
    }
    for day, files in days.items():
        _commit_day(root, day, files, None, schema)
    for files in days.values():
        for file in files:
            _remove(file)
    return [d.isoformat() for d in days]


def _commit_day(
    root: Location,
    day: date,
    files: list[Location],
    manifest: dict | None,
    schema: pa.Schema | None,
) -> None:
    key = day.isoformat()

    def batches() -> Iterator[pa.RecordBatch]:
        for file in files:
            for batch in _batches(file):
                yield delta.with_day(with_subject_keys(batch, schema) if schema else batch, key)

    def publish() -> None:
        first = next(batches(), None)
        if first is None:
            return
        reader = pa.RecordBatchReader.from_batches(first.schema, batches())
        delta.write(
            root,
            reader,
            mode="overwrite",
            predicate=delta.day_predicate(key),
            changed=None if manifest is None else {key: manifest},
        )

    delta.commit(publish)
    log.info("migrated %s of %s", key, root)


def _remove_old(folder: Location, names: list[str]) -> None:
    for name in names:
        _remove(storage.join(folder, name))


def _remove(loc: Location) -> None:
    if storage.is_remote(loc):
        fs, path = storage.filesystem(str(loc))
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    path = Path(loc)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()

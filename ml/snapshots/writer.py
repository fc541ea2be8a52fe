"""Writing a training snapshot: split tables frozen into a content-addressed folder, once.

Every task type's snapshot is written here: the lake window and labeled files for intent,
span files for entities, question → answer pairs for answers. A snapshot folder is named by its
content hash, holds `<split>.parquet` for train/validation/test (plus any task files and the
quarantine) and `snapshot.json`, which is written last: a snapshot exists once that file does,
and a killed writer's partial folder is simply redone. The out root is a local folder or an
fsspec URL (ml.storage).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import storage
from ml.credentials import hide_credentials_in
from ml.quarantine import QUARANTINE_FILE, rule_counts
from ml.storage import Location

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"
# Buckets 0-99 from a key's hash: [0, 80) train, [80, 90) validation, [90, 100) test.
SPLITS = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}


class EmptySnapshotError(ValueError):
    """Nothing to train on: no labeled rows in the window or the file."""


# The validation carve-out is always SPLITS' 10 buckets; a snapshot of a labeled file may have
# another test share (0: every row outside validation trains; a test file is given instead).
VALIDATION_BUCKETS = 10


def split_of(key: str, test_buckets: int = 10) -> str:
    """The split of a key (a conversation id, or a task's grouping key): a stable hash bucket,
    so a key stays in its split however the data around it changes. With `test_buckets` of
    100 other than 10: train [0, 90 - test), validation [90 - test, 100 - test), test the rest."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    train_end = 100 - VALIDATION_BUCKETS - test_buckets
    if bucket < train_end:
        return "train"
    return "validation" if bucket < train_end + VALIDATION_BUCKETS else "test"


def split_rows(table: pa.Table, keys: list[str], test_buckets: int = 10) -> dict[str, pa.Table]:
    """`table`'s rows by split_of(key, test_buckets), `keys` giving each row's key."""
    splits = pa.array([split_of(k, test_buckets) for k in keys], pa.string())
    return {name: table.filter(pc.equal(splits, name)) for name in SPLITS}


def content_hash(identity: Mapping[str, Any]) -> str:
    """The snapshot's hash: sha256 of what determines its content (sources' hashes, rules)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def existing(out_root: Location, digest: str) -> dict[str, Any] | None:
    """The snapshot with this hash if it was written already (its snapshot.json and path)."""
    folder = storage.join(out_root, digest[:16])
    marker = storage.join(folder, SNAPSHOT_FILE)
    if not storage.exists(marker):
        return None
    log.info("snapshot %s exists: reused", folder)
    return json.loads(storage.read_bytes(marker)) | {"path": str(folder)}


def freeze(
    out_root: Location,
    digest: str,
    splits: Mapping[str, pa.Table],
    info: Mapping[str, Any],
    quarantine: pa.Table | None = None,
    files: Mapping[str, pa.Table] | None = None,
) -> dict[str, Any]:
    """Write the snapshot `out_root/<hash16>` once and return its snapshot.json plus `path`.

    snapshot.json holds `hash`, `info`, and `counts`: rows per split, then `info["counts"]`,
    then `quarantined` (with `quarantine_rules`) when a quarantine is given. `files` are other
    tables the task keeps beside the splits (e.g. the answer bank), by file name.
    """
    found = existing(out_root, digest)
    if found is not None:
        return found
    counts = {name: splits[name].num_rows for name in SPLITS} | dict(info.get("counts", {}))
    extra: dict[str, Any] = {}
    if quarantine is not None:
        counts["quarantined"] = quarantine.num_rows
        extra["quarantine_rules"] = rule_counts(quarantine)
    # The record goes to snapshot.json, XCom, the registry's lineage and model cards: a source
    # URL's password (a labeled file on ftp://user:password@...) is masked in all of them.
    record = hide_credentials_in({"hash": digest, **info, "counts": counts, **extra})
    tables = {f"{name}.parquet": splits[name] for name in SPLITS} | dict(files or {})
    if quarantine is not None:
        tables[QUARANTINE_FILE] = quarantine
    folder = storage.join(out_root, digest[:16])
    if storage.is_remote(folder):
        with storage.local_output(folder, last=SNAPSHOT_FILE) as tmp:
            _write(tmp, tables, record)
    else:
        tmp = Path(out_root) / f".{digest[:16]}.tmp-{uuid.uuid4().hex}"
        _write(tmp, tables, record)
        try:
            os.rename(tmp, folder)
        except OSError:  # another run wrote the same snapshot first: same content, keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("snapshot %s: %s", digest[:16], counts)
    return record | {"path": str(folder)}


def _write(folder: Path, tables: Mapping[str, pa.Table], record: Mapping[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / name)
    (folder / SNAPSHOT_FILE).write_text(json.dumps(record, indent=2) + "\n")


def local_snapshot(path: str, cache: Path) -> Path:
    """A local folder holding the snapshot at `path`: itself, or a cached download of a URL.

    Snapshots are content-addressed (their folder is named by their hash) and change only when
    an erasure (ml.erasure) removes rows, which rewrites their snapshot.json: a cached copy is
    reused while its snapshot.json is the store's, else fetched again, so no worker trains on
    erased rows from its cache.
    """
    if not storage.is_remote(storage.location(path)):
        return Path(path)
    local = cached_copy(path, cache)
    if (local / SNAPSHOT_FILE).is_file():
        if (local / SNAPSHOT_FILE).read_bytes() == storage.read_bytes(f"{path}/{SNAPSHOT_FILE}"):
            return local
        log.info("snapshot %s changed since it was cached (an erasure): fetched again", path)
        shutil.rmtree(local, ignore_errors=True)
    return storage.get_dir(path, local)


def cached_copy(path: str, cache: Path) -> Path:
    """Where :func:`local_snapshot` keeps its copy of the remote snapshot at `path`."""
    url = path.rstrip("/")
    # The folder's name (its hash) names the cache entry: never '..' or '.'.
    return cache / "snapshots" / storage.relative_key(url, str(storage.parent(url)))

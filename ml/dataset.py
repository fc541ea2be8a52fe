"""Training snapshots: a window of lake partitions frozen into train/validation/test files.

The split is a function of the conversation id alone (a hash bucket), so a conversation stays
in the same split however the window moves, and the test set never leaks into training.
The snapshot's hash covers its partitions' content hashes and the split rule: same data, same
hash, same folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import lake, storage
from ml.storage import Location

log = logging.getLogger(__name__)

# Buckets 0-99 from the id's hash: [0, 80) train, [80, 90) validation, [90, 100) test.
SPLITS = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}
SPLIT_RULE = "sha256(conversation_id) mod 100: train<80, validation<90, test"
COLUMNS = ["conversation_id", "text", "intent"]


class EmptyWindowError(ValueError):
    """No labeled data in the requested window: nothing to train on."""


def split_of(conversation_id: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(conversation_id.encode()).digest()[:8], "big") % 100
    return next(name for name, (lo, hi) in SPLITS.items() if lo <= bucket < hi)


def _load_window(lake_root: Location, days: list[date]) -> tuple[pa.Table, list[dict[str, str]]]:
    tables, partitions = [], []
    for day in days:
        manifest = lake.read_manifest(lake_root, day)
        if manifest is None:
            log.warning("no partition for %s in %s: skipped", day, lake_root)
            continue
        tables.append(lake.read_partition(lake_root, day).select([*COLUMNS, "started_at"]))
        partitions.append({"day": day.isoformat(), "content_hash": manifest["content_hash"]})
    if not tables:
        raise EmptyWindowError(
            f"no partitions in {lake_root} for {days[0]}..{days[-1]}: ingest those days first"
        )
    return pa.concat_tables(tables), partitions


def _dedupe_latest(table: pa.Table) -> pa.Table:
    """Keep one row per conversation id: the latest (a conversation can be re-sent a day later)."""
    table = table.sort_by([("conversation_id", "ascending"), ("started_at", "descending")])
    ids = table.column("conversation_id").to_pylist()
    keep = [i for i, cid in enumerate(ids) if i == 0 or ids[i - 1] != cid]
    return table.take(pa.array(keep, type=pa.int64()))


def make_snapshot(
    lake_root: Location, out_root: Location, end: date, window_days: int
) -> dict[str, Any]:
    """Freeze the labeled rows of the `window_days` days ending `end` into a snapshot folder."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    days = lake.days_in_window(end, window_days)
    table, partitions = _load_window(lake_root, days)
    table = _dedupe_latest(table.filter(pc.is_valid(table.column("intent")))).select(COLUMNS)
    if table.num_rows == 0:
        raise EmptyWindowError(f"the window {days[0]}..{days[-1]} holds no labeled transcripts")
    digest = hashlib.sha256(
        json.dumps({"partitions": partitions, "split": SPLIT_RULE}, sort_keys=True).encode()
    ).hexdigest()
    window = {"start": days[0].isoformat(), "end": days[-1].isoformat()}
    return _freeze(table, out_root, digest, {"window": window, "partitions": partitions})


def snapshot_from_file(
    path: Path, out_root: Location, text_column: str = "text", label_column: str = "label"
) -> dict[str, Any]:
    """A snapshot of one labeled file (see :func:`load_labeled`), split like the lake's."""
    table = _dedupe_first(load_labeled(path, text_column, label_column))
    if table.num_rows == 0:
        raise EmptyWindowError(f"{path} holds no labeled rows")
    file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256(
        json.dumps(
            {"file": file_hash, "columns": [text_column, label_column], "split": SPLIT_RULE}
        ).encode()
    ).hexdigest()
    source = [{"file": str(path.absolute()), "sha256": file_hash}]
    return _freeze(table, out_root, digest, {"window": None, "partitions": source})


def _dedupe_first(table: pa.Table) -> pa.Table:
    ids = table.column("conversation_id").to_pylist()
    seen: set[str] = set()
    keep = [i for i, cid in enumerate(ids) if not (cid in seen or seen.add(cid))]
    return table.take(pa.array(keep, type=pa.int64()))


def _freeze(
    table: pa.Table, out_root: Location, digest: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the split files and snapshot.json into `out_root/<hash16>`, once.

    snapshot.json is written last (renamed in place locally, uploaded last to object storage):
    a snapshot exists once it does, and a killed writer's partial upload is simply redone.
    """
    folder = storage.join(out_root, digest[:16])
    marker = storage.join(folder, "snapshot.json")
    if storage.exists(marker):
        log.info("snapshot %s exists: reused", folder)
        return json.loads(storage.read_bytes(marker)) | {"path": str(folder)}
    if storage.is_remote(folder):
        with storage.local_output(folder, last="snapshot.json") as tmp:
            info = _write_splits(table, tmp, digest, meta)
    else:
        tmp = Path(out_root) / f".{digest[:16]}.tmp-{uuid.uuid4().hex}"
        info = _write_splits(table, tmp, digest, meta)
        try:
            os.rename(tmp, folder)
        except OSError:  # another run wrote the same snapshot first: same content, keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("snapshot %s: %s rows %s", digest[:16], table.num_rows, info["counts"])
    return info | {"path": str(folder)}


def _write_splits(table: pa.Table, folder: Path, digest: str, meta: dict[str, Any]) -> dict:
    splits = [split_of(cid) for cid in table.column("conversation_id").to_pylist()]
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in SPLITS:
        part = table.filter(pa.array([s == name for s in splits]))
        pq.write_table(part, folder / f"{name}.parquet")
        counts[name] = part.num_rows
    info = {
        "hash": digest,
        **meta,
        "labels": sorted(set(table.column("intent").to_pylist())),
        "counts": counts,
        "split_rule": SPLIT_RULE,
    }
    (folder / "snapshot.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def local_snapshot(path: str, cache: Path) -> Path:
    """A local folder holding the snapshot at `path`: itself, or a cached download of a URL.

    Snapshots are content-addressed (their folder is named by their hash) and never change,
    so a copy in `cache` is reused as it is.
    """
    if not storage.is_remote(storage.location(path)):
        return Path(path)
    local = cache / "snapshots" / path.rstrip("/").rsplit("/", 1)[-1]
    if (local / "snapshot.json").is_file():
        return local
    return storage.get_dir(path, local)


def load_labeled(path: Path, text_column: str = "text", label_column: str = "label") -> pa.Table:
    """A labeled file as (conversation_id, text, intent) rows.

    Accepts Parquet or CSV with a text and a label column (`intent` is accepted as the label
    column too), or JSONL transcripts in the ingest format (text = the customer's turns).
    Ids are the file's own `conversation_id` when present, else `<file name>:<row number>`.
    """
    import pyarrow.csv as pacsv

    from ml.schema import model_text

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pq.read_table(path)
    elif suffix == ".csv":
        table = pacsv.read_csv(path)
    elif suffix in (".jsonl", ".json"):
        records = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        for r in records:
            if "turns" in r and text_column not in r:
                r[text_column] = model_text(r["turns"])
        table = pa.Table.from_pylist(records)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r} (use .parquet, .csv or .jsonl)")
    if label_column not in table.column_names and "intent" in table.column_names:
        label_column = "intent"
    for column in (text_column, label_column):
        if column not in table.column_names:
            raise ValueError(
                f"{path}: no column {column!r} (columns: {', '.join(table.column_names)})"
            )
    ids = (
        table.column("conversation_id").cast(pa.string())
        if "conversation_id" in table.column_names
        else pa.array([f"{path.name}:{i + 1}" for i in range(table.num_rows)])
    )
    out = pa.table(
        {
            "conversation_id": ids,
            "text": table.column(text_column).cast(pa.string()),
            "intent": table.column(label_column).cast(pa.string()),
        }
    )
    has_text = pc.fill_null(
        pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(out.column("text"))), 0), False
    )
    return out.filter(pc.and_(pc.is_valid(out.column("intent")), has_text))

"""The Parquet lake: one partition `dt=YYYY-MM-DD` per day, written atomically.

A partition is a directory holding `part-00000.parquet` and `_manifest.json` (counts and the
content hash). It is built beside the final path and swapped in with renames, so readers never
see a half-written day and a killed writer leaves the previous partition in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DATA_FILE = "part-00000.parquet"
MANIFEST = "_manifest.json"


def partition_path(root: Path, day: date) -> Path:
    return root / f"dt={day.isoformat()}"


def table_content_hash(table: pa.Table) -> str:
    """sha256 over the rows' content hashes in conversation order: equal data, equal hash."""
    hashes = sorted(table.column("content_hash").to_pylist()) if table.num_rows else []
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _recover(final: Path) -> None:
    """Finish a swap that a killed writer left between its two renames."""
    if final.exists():
        return
    leftovers = sorted(final.parent.glob(f".{final.name}.old-*"))
    if leftovers:
        os.rename(leftovers[-1], final)


def write_partition(table: pa.Table, root: Path, day: date, manifest: dict) -> Path:
    """Write `table` as the partition for `day`, replacing any earlier one atomically.

    Rows are written sorted by conversation id with fixed writer options, so the same input
    gives byte-identical files.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = partition_path(root, day)
    _recover(final)
    tmp = root / f".{final.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    table = table.sort_by("conversation_id")
    pq.write_table(table, tmp / DATA_FILE, compression="zstd", write_statistics=True)
    manifest = {**manifest, "rows": table.num_rows, "content_hash": table_content_hash(table)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():
        old = root / f".{final.name}.old-{uuid.uuid4().hex}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    return final


def read_manifest(root: Path, day: date) -> dict | None:
    path = partition_path(root, day) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def read_partition(root: Path, day: date) -> pa.Table:
    return pq.read_table(partition_path(root, day) / DATA_FILE)


def days_in_window(end: date, window_days: int) -> list[date]:
    """The `window_days` days ending with `end` (inclusive), oldest first."""
    return [end - timedelta(days=i) for i in range(window_days - 1, -1, -1)]


def list_partitions(root: Path) -> list[date]:
    if not root.exists():
        return []
    return sorted(
        date.fromisoformat(p.name[3:])
        for p in root.glob("dt=*")
        if p.is_dir() and (p / DATA_FILE).exists()
    )


def write_quarantine(table: pa.Table, root: Path, day: date) -> Path:
    """Write the day's quarantined records (replacing a rerun's identical set) atomically."""
    folder = partition_path(root, day)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quarantine.parquet"
    tmp = folder / f".quarantine.parquet.tmp-{uuid.uuid4().hex}"
    pq.write_table(table.sort_by([("source_file", "ascending"), ("line", "ascending")]), tmp)
    os.replace(tmp, path)
    return path

"""The Parquet lake: one partition `dt=YYYY-MM-DD` per day, written atomically.

A partition is a directory holding `part-00000.parquet` and `_manifest.json` (counts and the
content hash). It is built beside the final path and swapped in atomically (renameat2
RENAME_EXCHANGE on Linux, two renames elsewhere), so readers never
see a half-written day and a killed writer leaves the previous partition in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if unsupported.

    With an exchange the final path always names a complete partition: there is no instant,
    even under SIGKILL, where a reader finds it missing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False  # this file system cannot exchange: fall back to two renames
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def _recover(final: Path) -> None:
    """Finish a two-rename swap that a killed writer left between its renames; drop debris.

    Runs under the partition's lock, so every `.tmp-`/`.old-` folder is a dead writer's.
    """
    leftovers = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not final.exists() and leftovers:
        os.rename(leftovers.pop(), final)
    for debris in [*leftovers, *final.parent.glob(f".{final.name}.tmp-*")]:
        shutil.rmtree(debris, ignore_errors=True)


@contextlib.contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    """One partition writer per lake at a time (runs of the same day may overlap).

    flock on the lake folder itself: no lock file to leave behind, released if killed.
    """
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_partition(table: pa.Table, root: Path, day: date, manifest: dict) -> Path:
    """Write `table` as the partition for `day`, replacing any earlier one atomically.

    Written beside the final path (`.dt=DAY.tmp-*`), fsynced, then swapped in. A writer killed
    at any point leaves the previous partition whole at its path; the next write removes the
    debris. Rows are sorted by conversation id with fixed writer options, so the same input
    gives byte-identical files.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = partition_path(root, day)
    with _root_lock(root):
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
        if not final.exists():
            os.rename(tmp, final)
        elif _exchange(tmp, final):
            shutil.rmtree(tmp)  # now holds the previous partition
        else:
            old = root / f".{final.name}.old-{uuid.uuid4().hex}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old)
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

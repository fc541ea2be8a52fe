"""The staged day between ingest's tasks: a local folder, or a prefix on object storage.

`normalise` stages a day (ml/ingest/staging.py builds its files) in a local folder; when the data
root is on object storage it uploads the folder to `<data root>/staging/<day>__<run>/`, so
`validate` and `publish` may run on any worker. The marker file, uploaded last, says the
upload is whole. A staged day is removed by `publish`, by a failed gate, or by :func:`sweep`
once stale: it holds customer rows not yet checked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml import storage
from ml.ingest.results import Staged
from ml.quarantine import QUARANTINE_FILE

log = logging.getLogger(__name__)

ROWS_FILE = "rows.parquet"
# Uploaded last to a staging prefix on object storage: the staged day is whole once it exists.
STAGED_MARKER = "_staged.json"


def upload(local: Path, url: str, staged: Staged) -> None:
    """Upload the staged day to `url`: quarantine, rows, then the marker (the completion).

    A retried normalise replaces the prefix: the old marker goes first, so a half-done
    upload is never taken for a whole one.
    """
    fs, root = storage.filesystem(url)
    remove(url)
    fs.put_file(str(local / QUARANTINE_FILE), f"{root}/{QUARANTINE_FILE}")
    fs.put_file(str(local / ROWS_FILE), f"{root}/{ROWS_FILE}")
    fs.pipe_file(f"{root}/{STAGED_MARKER}", (json.dumps(staged, indent=2) + "\n").encode())
    fs.invalidate_cache(root)
    log.info("staged %s at %s", staged["day"], url)


def remove(url: str) -> None:
    """Delete a staging prefix on object storage, its marker first."""
    fs, root = storage.filesystem(url)
    fs.invalidate_cache(root)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(f"{root}/{STAGED_MARKER}")
    fs.invalidate_cache(root)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(root, recursive=True)
    fs.invalidate_cache(root)


def discard(where: storage.Location) -> None:
    """Remove a staged day, a local folder or a prefix on object storage (it holds raw lines)."""
    if storage.is_remote(where):
        remove(str(where))
    else:
        shutil.rmtree(where, ignore_errors=True)


def sweep(local_root: Path, store: str | None, max_age_hours: float) -> list[str]:
    """Remove the staged days last written more than `max_age_hours` ago; the ones removed.

    A staged day holds customer rows. A run that succeeds or fails its gate removes its own;
    this bounds what a run that never got there (a lost worker, retries spent) leaves behind.
    `local_root`: the local staging folder; `store`: the staging prefix on object storage.
    """
    cutoff = time.time() - max_age_hours * 3600
    stale = [str(p) for p in _local_days(local_root) if _local_age(p) < cutoff]
    if store is not None:
        fs, root = storage.filesystem(store)
        fs.invalidate_cache(root)
        with contextlib.suppress(FileNotFoundError):
            for prefix in fs.ls(root, detail=False):
                written = _remote_written(fs, prefix)
                if written is not None and written < cutoff:
                    stale.append(f"{store.rstrip('/')}/{prefix.rstrip('/').rsplit('/', 1)[-1]}")
    for where in stale:
        discard(storage.location(where))
    if stale:
        log.info("removed %d staged day(s) older than %g hours", len(stale), max_age_hours)
    return stale


def _local_days(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []


def _local_age(folder: Path) -> float:
    """When a staged folder was last written: its own or a direct entry's newest mtime."""
    times = [folder.stat().st_mtime]
    with contextlib.suppress(OSError):
        times += [p.stat().st_mtime for p in folder.iterdir()]
    return max(times)


def _remote_written(fs: Any, prefix: str) -> float | None:
    """The newest modification time of a staged prefix's files (None: the store cannot say)."""
    times = []
    for path in fs.find(prefix):
        try:
            times.append(fs.modified(path).timestamp())
        except (NotImplementedError, OSError, AttributeError):
            return None
    return max(times) if times else None


def location(staged: Staged) -> storage.Location:
    """The staged day's folder (a Path) or prefix on object storage (a URL)."""
    return storage.location(staged["staging_dir"])


def is_whole(staged: Staged) -> bool:
    where = location(staged)
    if storage.is_remote(where):
        return storage.exists(storage.join(where, STAGED_MARKER))
    return (Path(where) / ROWS_FILE).exists()


def require(staged: Staged) -> None:
    if not is_whole(staged):
        raise missing(staged)


def missing(staged: Staged) -> FileNotFoundError:
    return FileNotFoundError(
        f"staged day {staged['day']} is missing or incomplete at {staged['staging_dir']}: "
        "rerun normalise"
    )


@contextlib.contextmanager
def open_file(staged: Staged, name: str) -> Iterator[Any]:
    """A staged file, for pyarrow: its local Path, or an fsspec file object (read by range)."""
    loc = storage.join(location(staged), name)
    if not storage.is_remote(loc):
        yield loc
        return
    fs, path = storage.filesystem(str(loc))
    with fs.open(path, "rb") as fh:
        yield fh

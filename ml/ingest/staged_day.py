"""The staged day between ingest's tasks: a local folder, or a prefix on object storage.

`normalise` stages a day (ml/ingest/staging.py builds its files) in a local folder; when the data
root is on object storage it uploads the folder to `<data root>/staging/<day>__<run>/`, so
`validate` and `publish` may run on any worker. The marker file, uploaded last, says the
upload is whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
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

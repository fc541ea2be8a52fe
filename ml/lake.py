"""The Parquet lake: one partition `dt=YYYY-MM-DD` per day, written atomically.

The lake's root is a local folder or an fsspec URL (ml/storage.py); each public function
chooses the protocol from it.

On local disk a partition is a directory holding `part-00000.parquet` and `_manifest.json`
(counts and the content hash). It is built beside the final path and swapped in atomically
(renameat2 RENAME_EXCHANGE on Linux, two renames elsewhere), so readers never see a
half-written day and a killed writer leaves the previous partition in place.

Object stores have no rename, so there a partition is published write-beside-then-commit:

    dt=DAY/_versions/<id>/part-00000.parquet   immutable, a fresh <id> per write
    dt=DAY/_manifest.json                      the commit: one PUT naming the version

A reader resolves `_manifest.json`, then reads that version: a single PUT is atomic on S3 and
GCS, so it sees the old day or the new one, whole. A writer killed before the PUT leaves the
old manifest in place, pointing at the old version. After the commit, every version but the
new and the previous one is deleted (the previous one stays for readers that resolved the
manifest just before the commit). Writers of the same day exclude each other with a lock
object `dt=DAY/_lock` created by a conditional PUT (If-None-Match), see :func:`_remote_lock`.

Erasure (ml.erasure) changes a day in place with :func:`rewrite_partition` (the same publish,
with the read under the lock too, keeping no previous version) and deletes leftover copies of a
day with :func:`vacuum`. Callers go through these functions only: the layout may change.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml import storage
from ml.quarantine import QUARANTINE_FILE
from ml.storage import Location
from ml.transcript import TRANSCRIPT_SCHEMA

log = logging.getLogger(__name__)

DATA_FILE = "part-00000.parquet"
MANIFEST = "_manifest.json"
VERSIONS = "_versions"
LOCK = "_lock"
# A remote writer's lock older than this is a dead writer's and may be broken (a live writer
# checks it still holds the lock right before committing, so it never commits after that).
LOCK_TTL_SECONDS = 15 * 60
LOCK_POLL_SECONDS = 2.0


def partition_path(root: Location, day: date) -> Location:
    return storage.join(root, f"dt={day.isoformat()}")


def table_content_hash(table: pa.Table) -> str:
    """sha256 over the rows' content hashes in row order, one per line: equal data, equal hash.

    A partition's rows are in a fixed order (ml/ingest/staging.py), so this is the data's hash.
    """
    hashes = table.column("content_hash").to_pylist() if table.num_rows else []
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


# Rows per row group of a partition: readers stream a day by these.
ROW_GROUP_ROWS = 128 * 1024


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


def data_writer(path: Path, schema: pa.Schema = TRANSCRIPT_SCHEMA) -> pq.ParquetWriter:
    """The partition file's writer; fixed options, so the same rows give byte-identical files."""
    return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True)


def write_partition(table: pa.Table, root: Location, day: date, manifest: dict) -> Location:
    """Write `table` (one day's rows) as the partition for `day`, atomically; see publish_file.

    Rows are sorted by conversation id, so the same rows give a byte-identical file and the
    same content hash, in whatever order they come.
    """
    table, manifest = _sorted(table, manifest)
    return _publish(_table_writer(table), root, day, manifest)


# What a rewrite does to a day: (rows, manifest) -> the new (rows, manifest), or None to keep it.
Change = Callable[[pa.Table, dict], tuple[pa.Table, dict] | None]


def rewrite_partition(root: Location, day: date, change: Change) -> bool:
    """Replace `day`'s partition by `change(rows, manifest)`, read and written under the day's
    write lock, so an ingest publishing the same day meanwhile waits and neither loses the
    other's partition. Returns whether the day was rewritten (False: no partition, or `change`
    returned None).

    Erasure's primitive: the replaced data is deleted at once, on object storage too, where a
    normal publish keeps the previous version for readers that resolved the manifest just
    before (such a reader now fails and reads again). A writer killed midway leaves a stale
    copy that :func:`stale_copies` lists and :func:`vacuum` deletes.
    """
    if storage.is_remote(root):
        folder = str(partition_path(root, day))
        fs, path = storage.filesystem(folder)
        with _remote_lock(fs, path) as assert_held:
            changed = _changed(root, day, change)
            if changed is None:
                return False
            table, manifest = changed
            put = _uploaded(_table_writer(table))
            _commit_remote(put, fs, path, root, day, manifest, assert_held, keep_previous=False)
        return True
    root = Path(root)
    if not root.exists():
        return False
    with _root_lock(root):
        _recover(Path(partition_path(root, day)))
        changed = _changed(root, day, change)
        if changed is None:
            return False
        table, manifest = changed
        _swap_in(_table_writer(table), root, day, manifest)
    return True


def _changed(root: Location, day: date, change: Change) -> tuple[pa.Table, dict] | None:
    manifest = read_manifest(root, day)
    if manifest is None:
        return None
    result = change(read_partition(root, day), manifest)
    return None if result is None else _sorted(*result)


def stale_copies(root: Location, day: date) -> list[Location]:
    """Data files of `day` other than the published one: on object storage the previous and
    uncommitted versions, on local disk a killed writer's debris. They may still hold rows a
    rewrite removed; :func:`vacuum` deletes them."""
    folder = partition_path(root, day)
    if storage.is_remote(folder):
        fs, path = storage.filesystem(str(folder))
        fs.invalidate_cache(path)
        manifest = read_manifest(root, day)
        current = manifest.get("version") if manifest else None
        try:
            found = fs.ls(f"{path}/{VERSIONS}", detail=False)
        except FileNotFoundError:
            return []
        names = sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in found)
        return [f"{folder}/{VERSIONS}/{name}/{DATA_FILE}" for name in names if name != current]
    final = Path(folder)
    debris = [
        *final.parent.glob(f".{final.name}.tmp-*"),
        *final.parent.glob(f".{final.name}.old-*"),
    ]
    return sorted(d / DATA_FILE for d in debris if (d / DATA_FILE).exists())


def vacuum(root: Location, day: date) -> None:
    """Delete every copy of `day` but the published one (see :func:`stale_copies`), under the
    day's write lock; a remote manifest stops naming a previous version."""
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(partition_path(root, day)))
        with _remote_lock(fs, path) as assert_held:
            manifest = read_manifest(root, day)
            if manifest is not None and manifest.get("previous_version"):
                manifest = {**manifest, "previous_version": None}
                assert_held()
                fs.pipe_file(f"{path}/{MANIFEST}", _manifest_bytes(manifest))
            _collect_versions(fs, path, keep={manifest["version"]} if manifest else set())
        return
    if Path(root).exists():
        with _root_lock(Path(root)):
            _recover(Path(partition_path(root, day)))


def _sorted(table: pa.Table, manifest: dict) -> tuple[pa.Table, dict]:
    """Rows in partition order, and the manifest counting and hashing them."""
    table = table.sort_by("conversation_id")
    return table, {**manifest, "rows": table.num_rows, "content_hash": table_content_hash(table)}


def _table_writer(table: pa.Table) -> Callable[[Path], None]:
    def write(dest: Path) -> None:
        with data_writer(dest, table.schema) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    return write


def publish_file(data: Location, root: Location, day: date, manifest: dict) -> Location:
    """Publish a finished partition file (written by :func:`data_writer`) as `day`'s partition.

    `data` is a local file or a URL (ingest's staged file on object storage); `manifest`
    carries the file's `rows` and `content_hash`. The file is linked, copied or uploaded,
    never rewritten: within one object store the copy is server-side (S3 CopyObject), no
    byte passes through this machine. `data` is left in place (a retry publishes it again).
    The previous partition is replaced atomically: a writer killed at any point leaves it
    whole and readable, and the next write removes the debris.
    """
    if storage.is_remote(root):
        return _write_remote(lambda fs, dest: _put(data, fs, dest), str(root), day, manifest)
    return _write_local(lambda dest: _place(data, dest), Path(root), day, manifest)


def _place(data: Location, dest: Path) -> None:
    """A hard link when on the same file system (no copy; the source stays for a retry)."""
    if storage.is_remote(data):
        src_fs, src = storage.filesystem(str(data))
        src_fs.get_file(src, str(dest))
        return
    try:
        os.link(data, dest)
    except OSError:
        shutil.copyfile(data, dest)


def _put(data: Location, fs, dest: str) -> None:
    """Put `data` at `dest` on `fs`: server-side copy within one store, else an upload."""
    if not storage.is_remote(data):
        fs.put_file(str(data), dest)
        return
    src_fs, src = storage.filesystem(str(data))
    if src_fs == fs:  # same store, same credentials (fsspec compares the instances' tokens)
        fs.copy(src, dest)  # S3: CopyObject (UploadPartCopy above 5 GB)
        return
    with tempfile.TemporaryDirectory(prefix="intentflow-lake-") as tmp:
        src_fs.get_file(src, f"{tmp}/{DATA_FILE}")
        fs.put_file(f"{tmp}/{DATA_FILE}", dest)


def _uploaded(write: Callable[[Path], None]) -> Callable[..., None]:
    """`write` (to a local file) as a `put` for :func:`_write_remote`: write, then upload."""

    def put(fs, dest: str) -> None:
        with tempfile.TemporaryDirectory(prefix="intentflow-lake-") as tmp:
            write(Path(tmp) / DATA_FILE)
            fs.put_file(str(Path(tmp) / DATA_FILE), dest)

    return put


def _publish(write: Callable[[Path], None], root: Location, day: date, manifest: dict) -> Location:
    if storage.is_remote(root):
        return _write_remote(_uploaded(write), str(root), day, manifest)
    return _write_local(write, Path(root), day, manifest)


def _write_local(write: Callable[[Path], None], root: Path, day: date, manifest: dict) -> Path:
    """Written beside the final path (`.dt=DAY.tmp-*`), fsynced, then swapped in."""
    root.mkdir(parents=True, exist_ok=True)
    with _root_lock(root):
        return _swap_in(write, root, day, manifest)


def _swap_in(write: Callable[[Path], None], root: Path, day: date, manifest: dict) -> Path:
    """:func:`_write_local`'s work, for a caller holding the lake's lock."""
    final = Path(partition_path(root, day))
    _recover(final)
    tmp = root / f".{final.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    write(tmp / DATA_FILE)
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


def _write_remote(put: Callable[..., None], root: str, day: date, manifest: dict) -> str:
    """Put the data under a fresh version, then commit by writing the manifest (one PUT).

    `put(fs, dest)` places the data file at `dest` (an in-store path of `fs`).
    """
    folder = str(partition_path(root, day))
    fs, path = storage.filesystem(folder)
    with _remote_lock(fs, path) as assert_held:
        _commit_remote(put, fs, path, root, day, manifest, assert_held, keep_previous=True)
    return folder


def _commit_remote(
    put: Callable[..., None],
    fs,
    path: str,
    root: str,
    day: date,
    manifest: dict,
    assert_held: Callable[[], None],
    keep_previous: bool,
) -> None:
    """:func:`_write_remote`'s work, for a caller holding the day's lock. `keep_previous`:
    leave the replaced version for readers that resolved the manifest just before."""
    version = uuid.uuid4().hex
    put(fs, f"{path}/{VERSIONS}/{version}/{DATA_FILE}")
    previous = read_manifest(root, day)
    previous_version = previous.get("version") if previous and keep_previous else None
    manifest = {**manifest, "version": version, "previous_version": previous_version}
    assert_held()  # a writer that outlived its lock must not commit over another's
    fs.pipe_file(f"{path}/{MANIFEST}", _manifest_bytes(manifest))  # the commit
    _collect_versions(fs, path, keep={version, previous_version})


def _manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _collect_versions(fs, path: str, keep: set[str | None]) -> None:
    """Delete every version but `keep`: older commits and dead writers' uploads.

    Safe only under the day's lock: no other writer is uploading a version of this day.
    """
    fs.invalidate_cache(path)
    try:
        found = fs.ls(f"{path}/{VERSIONS}", detail=False)
    except FileNotFoundError:
        return
    for entry in found:
        if entry.rstrip("/").rsplit("/", 1)[-1] not in keep:
            fs.rm(entry, recursive=True)


def _lock_holder(fs, lock: str) -> dict | None:
    try:
        return json.loads(fs.cat_file(lock))
    except FileNotFoundError:
        return None


def _is_dead(holder: dict) -> bool:
    """Older than the TTL, or a process of this host that no longer exists."""
    if time.time() - float(holder.get("since", 0)) > LOCK_TTL_SECONDS:
        return True
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        return False
    return False


def _create_exclusive(fs, path: str, body: bytes) -> None:
    """Write `path` only if it does not exist (FileExistsError otherwise).

    A store that rejects conditional writes (HTTP 501, older S3-compatible servers) gets a
    check-then-write, with a warning: the lock then narrows the race instead of closing it.
    """
    try:
        fs.pipe_file(path, body, mode="create")
    except (NotImplementedError, OSError) as exc:
        if isinstance(exc, FileExistsError) or (
            isinstance(exc, OSError) and exc.errno != errno.ENOSYS
        ):
            raise
        log.warning("%s: no conditional writes on this store (%s); check-then-write", path, exc)
        fs.invalidate_cache(path)
        if fs.exists(path):
            raise FileExistsError(path) from None
        fs.pipe_file(path, body)


@contextlib.contextmanager
def _remote_lock(fs, folder: str) -> Iterator[Callable[[], None]]:
    """One writer per day on object storage: a lock object created only if absent.

    `pipe_file(mode="create")` is a conditional PUT (If-None-Match: *) on S3 (s3fs), atomic;
    file systems without conditional writes get fsspec's check-then-write, which narrows the
    race without closing it (there the DAG must keep writers of one day apart). A killed
    writer's lock is broken at once by the next writer on the same host (its pid is gone),
    elsewhere after LOCK_TTL_SECONDS. Yields a check that raises if the lock was lost.
    """
    lock = f"{folder}/{LOCK}"
    token = uuid.uuid4().hex
    body = json.dumps(
        {"token": token, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    ).encode()
    deadline = time.monotonic() + LOCK_TTL_SECONDS + 60
    while True:
        try:
            _create_exclusive(fs, lock, body)
            break
        except FileExistsError:
            holder = _lock_holder(fs, lock)
            if holder is not None and _is_dead(holder):
                log.warning("breaking the lock of a dead writer on %s: %s", folder, holder)
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(lock)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{lock} is held by {holder}: another writer of this day"
                ) from None
            log.info("waiting for %s, held by %s", lock, holder)
            time.sleep(LOCK_POLL_SECONDS)

    def assert_held() -> None:
        holder = _lock_holder(fs, lock)
        if holder is None or holder.get("token") != token:
            raise RuntimeError(f"lost the lock {lock} (now {holder}): not committing")

    try:
        yield assert_held
    finally:
        holder = _lock_holder(fs, lock)
        if holder is not None and holder.get("token") == token:
            fs.rm_file(lock)


def read_manifest(root: Location, day: date) -> dict | None:
    path = storage.join(partition_path(root, day), MANIFEST)
    if not storage.is_remote(path):
        return json.loads(Path(path).read_text()) if Path(path).exists() else None
    try:
        return json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        return None


def read_partition(root: Location, day: date, columns: list[str] | None = None) -> pa.Table:
    """`day`'s rows: every column, or those of `columns` the day has (see storage.read_parquet)."""
    folder = partition_path(root, day)
    if not storage.is_remote(folder):
        if columns is None:
            return with_subject_keys(pq.read_table(Path(folder) / DATA_FILE))
        return storage.read_parquet(Path(folder) / DATA_FILE, columns)
    manifest = read_manifest(root, day)
    if manifest is None:
        raise FileNotFoundError(f"no partition {folder}/{MANIFEST}")
    table = storage.read_parquet(f"{folder}/{VERSIONS}/{manifest['version']}/{DATA_FILE}", columns)
    return with_subject_keys(table) if columns is None else table


def with_subject_keys(table: pa.Table) -> pa.Table:
    """A partition written before `subject_keys` existed, with it empty: no identifier was
    recorded for its rows (re-ingest the day to compute them; its content hash then changes)."""
    names = set(table.schema.names)
    if "subject_keys" in names or not names >= set(TRANSCRIPT_SCHEMA.names) - {"subject_keys"}:
        return table
    field = TRANSCRIPT_SCHEMA.field("subject_keys")
    empty = pa.array([[]] * table.num_rows, field.type)
    return table.append_column(field, empty)


def days_in_window(end: date, window_days: int) -> list[date]:
    """The `window_days` days ending with `end` (inclusive), oldest first."""
    return [end - timedelta(days=i) for i in range(window_days - 1, -1, -1)]


def list_partitions(root: Location) -> list[date]:
    """Days with a published partition, oldest first."""
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(root))
        fs.invalidate_cache(path)
        # A day exists once its manifest (the commit) does; uncommitted versions do not count.
        found = fs.glob(f"{path}/dt=*/{MANIFEST}")
        return sorted(date.fromisoformat(p.rstrip("/").split("/")[-2][3:]) for p in found)
    root = Path(root)
    if not root.exists():
        return []
    return sorted(
        date.fromisoformat(p.name[3:])
        for p in root.glob("dt=*")
        if p.is_dir() and (p / DATA_FILE).exists()
    )


def quarantine_path(root: Location, day: date) -> Location:
    return storage.join(partition_path(root, day), QUARANTINE_FILE)


def write_quarantine(table: pa.Table, root: Location, day: date) -> Location:
    """Write the day's quarantined records (replacing a rerun's identical set) atomically.

    Locally the quarantine's folders are 0700 and its files 0600 (redacted, still customer
    records); on object storage the bucket's policy must restrict the prefix.
    """
    table = table.sort_by([("source_file", "ascending"), ("record", "ascending")])
    folder = partition_path(root, day)
    if not storage.is_remote(folder):
        storage.private_folder(Path(root))
        storage.private_folder(Path(folder))  # before the file exists: never readable by others
    return storage.write_parquet(table, quarantine_path(root, day), private=True)


def purge_quarantine(root: Location, today: date, retention_days: int) -> list[date]:
    """Delete the quarantine days older than `retention_days` before `today`; the days deleted.

    By the data's day, as a partition is named: a backfill of older days keeps their
    quarantine only until the next purge (its counts and rules stay in the manifest and report).
    """
    cutoff = today - timedelta(days=retention_days)
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(root))
        fs.invalidate_cache(path)
        folders = {_day_of(p): p for p in fs.glob(f"{path}/dt=*")}
    else:
        folders = {_day_of(str(p)): p for p in Path(root).glob("dt=*") if p.is_dir()}
    old = sorted(d for d in folders if d is not None and d < cutoff)
    for day in old:
        if storage.is_remote(root):
            fs.rm(folders[day], recursive=True)
        else:
            shutil.rmtree(folders[day])
    if old:
        log.info("quarantine: deleted %d day(s) before %s", len(old), cutoff)
    return old


def _day_of(folder: str) -> date | None:
    try:
        return date.fromisoformat(folder.rstrip("/").rsplit("/", 1)[-1].removeprefix("dt="))
    except ValueError:
        return None


def read_quarantine(root: Location, day: date, columns: list[str] | None = None) -> pa.Table:
    """The day's quarantined records: every column, or those of `columns` the file has."""
    return storage.read_parquet(quarantine_path(root, day), columns)


def quarantine_days(root: Location) -> list[date]:
    """Days with a quarantine file, oldest first."""
    if storage.is_remote(root):
        fs, path = storage.filesystem(str(root))
        fs.invalidate_cache(path)
        found = fs.glob(f"{path}/dt=*/{QUARANTINE_FILE}")
        return sorted(date.fromisoformat(p.rstrip("/").split("/")[-2][3:]) for p in found)
    return sorted(
        date.fromisoformat(p.parent.name[3:]) for p in Path(root).glob(f"dt=*/{QUARANTINE_FILE}")
    )

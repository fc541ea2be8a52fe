"""Delta Lake tables (delta-rs, no JVM) on a local folder or object storage.

The lake's tables (transcripts, quarantine, predictions) are Delta tables partitioned by day
(`dt=YYYY-MM-DD`): Spark, DuckDB, Polars or Trino read them from their path alone. A commit is
one new file in `_delta_log/` created only if absent (a rename-if-absent locally, a conditional
PUT, If-None-Match, on S3: delta-rs >= 0.23 turns it on for S3 by default, so no lock table
and no AWS_S3_ALLOW_UNSAFE_RENAME), so two writers never both make version N: the loser gets
CommitFailedError, and :func:`commit` runs its transaction again from the new version.

Each commit of ours carries, in its commitInfo, the manifest of every day it changed (counts,
content hash, where the rows came from): the log is then the history of every day's
manifest, written in the same atomic step as the data. :func:`manifests` folds it.

delta-rs runs a tokio runtime that does not survive fork(): a process that has touched a table
must start helpers with `spawn`, not `fork`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from ml import storage
from ml.storage import Location

log = logging.getLogger(__name__)

PARTITION = "dt"
# The commitInfo key holding {day: manifest} for the days a commit changed.
MANIFESTS = "intentflow.manifests"
# The commitInfo key naming one commit (a publish finds its own in the log).
COMMIT = "intentflow.commit"
# A transaction that lost the race for its version runs again, this many times.
COMMIT_ATTEMPTS = 20
# The log keeps every day's manifest: expired log files are never cleaned (they are small;
# checkpoints keep reading fast). Data files follow the vacuum retention (ml.config).
TABLE_CONFIG = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.enableExpiredLogCleanup": "false",
}
# One data file per day and commit: readers stream a day in the order it was written, which
# is the order its content hash covers (ml.lake.table_content_hash).
TARGET_FILE_BYTES = 1 << 40
ROW_GROUP_ROWS = 128 * 1024

T = TypeVar("T")


def uri(root: Location) -> str:
    return str(root) if storage.is_remote(root) else str(Path(root).absolute())


def storage_options(root: Location) -> dict[str, str] | None:
    """delta-rs reads AWS_* from the environment as s3fs does; a plain-HTTP endpoint (a local
    S3 such as MinIO or moto) must be allowed explicitly."""
    if not str(root).startswith(("s3://", "s3a://")):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3") or ""
    return {"AWS_ALLOW_HTTP": "true"} if endpoint.startswith("http://") else {}


def open_table(root: Location, as_of: int | datetime | None = None) -> Any | None:
    """The table at `root` (its latest version, or the one current `as_of` a version number or
    a time); None when there is no table there yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        if isinstance(as_of, int):
            return DeltaTable(uri(root), version=as_of, storage_options=storage_options(root))
        table = DeltaTable(uri(root), storage_options=storage_options(root))
    except TableNotFoundError:
        return None
    if isinstance(as_of, datetime):
        table.load_as_version(as_of)
    return table


def commit_time(root: Location, version: int) -> datetime | None:
    """When `version` of the table at `root` was committed (UTC); None when the table or that
    version's commit is gone (VACUUM'd logs, another table)."""
    table = open_table(root)
    if table is None:
        return None
    # The latest table's history: a table opened at an old version numbers it wrongly.
    for commit in table.history():
        if commit.get("version") == version and "timestamp" in commit:
            return datetime.fromtimestamp(commit["timestamp"] / 1000, UTC)
    return None


def writer_properties() -> Any:
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)


def commit(transaction: Callable[[], T]) -> T:
    """Run `transaction()` (which opens the table's latest version itself) until its commit
    wins: on a conflict (another writer committed first) it reads again and retries."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return transaction()
        except (CommitFailedError, OSError, Raced) as exc:
            if attempt == COMMIT_ATTEMPTS or not _conflict(exc):
                raise
            log.info("commit conflict (attempt %d): %s; retrying", attempt, str(exc)[:120])
            time.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311 (jitter, not a secret)
    raise AssertionError("unreachable")


def _conflict(exc: Exception) -> bool:
    """Lost the race for a version: delta-rs's conflict, or S3 answering two simultaneous
    conditional PUTs of one key with 409 ConditionalRequestConflict ("retry on 409")."""
    from deltalake.exceptions import CommitFailedError

    text = str(exc)
    return (
        isinstance(exc, CommitFailedError | Raced)
        or "ConditionalRequestConflict" in text
        or ("409" in text and "Conflict" in text)
    )


def commit_properties(changed: dict[str, dict | None] | None, token: str | None = None) -> Any:
    from deltalake import CommitProperties

    metadata = {} if changed is None else {MANIFESTS: json.dumps(changed, sort_keys=True)}
    if token is not None:
        metadata[COMMIT] = token
    return CommitProperties(custom_metadata=metadata) if metadata else None


def write(
    root: Location,
    data: Any,
    *,
    mode: str,
    predicate: str | None = None,
    changed: dict[str, dict | None] | None = None,
    table: Any | None = None,
) -> None:
    """One commit writing `data` (Arrow: a table or a batch reader carrying the `dt` column).

    `table`: the version the caller read (conflicts are checked against commits after it).
    """
    from deltalake import write_deltalake

    with private(root):
        write_deltalake(
            table if table is not None else uri(root),
            data,
            partition_by=[PARTITION],
            mode=mode,
            predicate=predicate,
            configuration=TABLE_CONFIG,
            storage_options=storage_options(root),
            target_file_size=TARGET_FILE_BYTES,
            writer_properties=writer_properties(),
            commit_properties=commit_properties(changed),
        )


@contextlib.contextmanager
def private(root: Location) -> Iterator[None]:
    """Every table holds customer records: locally its folders are 0700 and its files 0600 from
    their creation (umask 077 while delta-rs writes; it only ever makes files more private).
    On object storage the bucket's policy decides."""
    if storage.is_remote(root):
        yield
        return
    storage.private_folder(Path(root))
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def publish_file(
    root: Location,
    data: Location,
    day: str,
    schema: pa.Schema,
    rows: int,
    changed: dict[str, dict | None] | None,
) -> None:
    """Make the Parquet file `data` (local or a URL; `schema`, without `dt`) day `day` of the
    table, in one commit replacing the day's files. The file is not rewritten: it is linked
    (same local file system), copied within the store (S3 CopyObject) or uploaded into the
    day's folder under a fresh name, then committed; `data` stays for a retry. Killed before
    the commit, the placed file is not in the log: readers never see it, VACUUM removes it.
    """
    from deltalake.transaction import AddAction

    placed = [_placed(root, data, day)]
    stats = json.dumps({"numRecords": rows})

    def publish() -> None:
        table = _table_for(root, schema)
        read, token = table.version(), uuid.uuid4().hex
        name, size = placed[-1]
        action = AddAction(name, size, {PARTITION: day}, int(time.time() * 1000), True, stats)
        table.create_write_transaction(
            [action],
            mode="overwrite",
            schema=table.schema(),
            partition_by=[PARTITION],
            partition_filters=[(PARTITION, "=", day)],
            commit_properties=commit_properties(changed, token),
        )
        if _raced(root, day, read, token):
            # A commit of this day landed between our read and our commit, which delta-rs's
            # conflict check lets through here (this transaction records no read predicate):
            # the day now holds both files. Publish again, a fresh copy, over the day as it is.
            placed.append(_placed(root, data, day))
            raise Raced(f"{root}: day {day} changed under a publish; publishing again")

    commit(publish)


class Raced(Exception):
    """A publish committed over a version of its day it had not read: run it again."""


def _placed(root: Location, data: Location, day: str) -> tuple[str, int]:
    """`data` placed in the day's folder under a fresh name: (the name, its size)."""
    name = f"{PARTITION}={day}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    with private(root):
        return name, _place(data, storage.join(root, *name.split("/")))


def _raced(root: Location, day: str, read: int, token: str) -> bool:
    """Did a commit naming `day` land after version `read` and before ours (`token`)?"""
    table = open_table(root)
    entries = table.history(table.version() - read) if table is not None else []
    mine = next((e["version"] for e in entries if e.get(COMMIT) == token), None)
    if mine is None:
        raise RuntimeError(f"{root}: our commit of {day} is not in the log")
    return any(
        read < e["version"] < mine and day in json.loads(e.get(MANIFESTS) or "{}") for e in entries
    )


def _table_for(root: Location, schema: pa.Schema) -> Any:
    """The table at `root`, created (empty, with `schema` and `dt`) when there is none yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    table = open_table(root)
    if table is not None:
        return table
    try:
        with private(root):
            DeltaTable.create(
                uri(root),
                schema.append(pa.field(PARTITION, pa.string())),
                partition_by=[PARTITION],
                mode="ignore",
                configuration=TABLE_CONFIG,
                storage_options=storage_options(root),
            )
    except (DeltaError, OSError) as exc:  # another writer created it first?
        log.info("creating %s: %s", root, str(exc)[:120])
    table = open_table(root)
    if table is None:
        raise FileNotFoundError(f"could not create the table at {root}")
    return table


def _place(data: Location, dest: Location) -> int:
    """Put `data` at `dest` (a new name); its size in bytes."""
    if not storage.is_remote(dest):
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if storage.is_remote(data):
            src_fs, src = storage.filesystem(str(data))
            src_fs.get_file(src, str(dest))
        else:
            try:
                os.link(data, dest)  # no copy; the staged file stays for a retry
            except OSError:
                shutil.copyfile(data, dest)
        dest.chmod(0o600)
        return dest.stat().st_size
    fs, path = storage.filesystem(str(dest))
    if storage.is_remote(data):
        src_fs, src = storage.filesystem(str(data))
        if src_fs == fs:  # same store and credentials: server-side copy, no byte through here
            fs.copy(src, path)
        else:
            with tempfile.TemporaryDirectory(prefix="intentflow-lake-") as tmp:
                src_fs.get_file(src, f"{tmp}/data.parquet")
                fs.put_file(f"{tmp}/data.parquet", path)
    else:
        fs.put_file(str(data), path)
    return int(fs.info(path)["size"])


def day_predicate(day: str) -> str:
    """`dt = 'DAY'`: `day` is an ISO date (checked), never free text."""
    datetime.strptime(day, "%Y-%m-%d")
    return f"{PARTITION} = '{day}'"


def with_day(batch: pa.RecordBatch | pa.Table, day: str) -> pa.RecordBatch | pa.Table:
    return batch.append_column(PARTITION, pa.array([day] * batch.num_rows, pa.string()))


# What a rewrite does to a day: (rows, manifest or None) -> the new (rows, manifest or None),
# or None to leave the day as it is.
Change = Callable[[pa.Table, dict | None], tuple[pa.Table, dict | None] | None]


def rewrite_day(root: Location, day: str, change: Change) -> bool:
    """Replace `day`'s rows by `change(rows, manifest)` in one commit that fails if the day
    changed after it was read (a publish, an append): it is then read and changed again, so
    nothing written meanwhile is lost. Returns whether the day was rewritten.

    The commit's predicate names the day only, never a row: the log (kept for years) holds
    nothing of the rows removed. Their old file stays readable by time travel until VACUUM
    deletes it, once older than the retention (:func:`maintain`).
    """

    def rewrite() -> bool:
        table = open_table(root)
        if table is None:
            return False
        manifest = manifests(table).get(day)
        result = change(read_day(table, day), manifest)
        if result is None:
            return False
        rows, manifest = result
        write(
            root,
            with_day(rows, day),
            mode="overwrite",
            predicate=day_predicate(day),
            changed=None if manifest is None else {day: manifest},
            table=table,
        )
        return True

    return commit(rewrite)


def unvacuumed(root: Location) -> list[str]:
    """Data files no longer in the table (or never committed) that VACUUM has not deleted yet,
    as locations: time travel still reads the replaced ones."""
    table = open_table(root)
    if table is None:
        return []
    listed = table.vacuum(
        retention_hours=0, dry_run=True, enforce_retention_duration=False, full=True
    )
    # The dry run lists the log's tombstones whether or not a VACUUM deleted them already.
    return [loc for name in listed if storage.exists(loc := storage.join(root, *name.split("/")))]


def manifests(table: Any) -> dict[str, dict]:
    """{day: manifest} at `table`'s version: the latest manifest each commit up to it named
    (a day a commit dropped is absent)."""
    version = table.version()
    key = (table.table_uri, version)
    if key in _MANIFESTS:
        return _MANIFESTS[key]
    # delta-rs 1.6 lists the latest commits whatever version a table was loaded at, numbered
    # from the loaded one: read the history of the latest version, where the numbers are right.
    latest = table
    if table.version() != (current := table_at_latest(table)).version():
        latest = current
    found: dict[str, dict | None] = {}
    for entry in latest.history():  # newest first
        if entry["version"] > version:
            continue
        for day, manifest in json.loads(entry.get(MANIFESTS) or "{}").items():
            found.setdefault(day, manifest)
    result = {d: m for d, m in found.items() if m is not None}
    if len(_MANIFESTS) > 64:
        _MANIFESTS.clear()
    _MANIFESTS[key] = result
    return result


_MANIFESTS: dict[tuple[str, int], dict[str, dict]] = {}


def table_at_latest(table: Any) -> Any:
    """`table`'s latest version, as a new object (`table` stays at its version)."""
    from deltalake import DeltaTable

    return DeltaTable(table.table_uri, storage_options=storage_options(table.table_uri))


def days(table: Any) -> list[str]:
    """The `dt` values with at least one data file at `table`'s version."""
    actions = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column not in actions.column_names:
        return []
    return sorted(set(actions.column(column).to_pylist()))


def files(table: Any, root: Location) -> list[Location]:
    """The data files of `table`'s version, as locations under `root`."""
    actions = pa.table(table.get_add_actions(flatten=True))
    return [storage.join(root, *p.split("/")) for p in actions.column("path").to_pylist()]


def read_day(table: Any, day: str, columns: list[str] | None = None) -> pa.Table:
    """One day's rows at `table`'s version, in the order they were written, without `dt`."""
    import pyarrow.dataset as ds

    dataset = table.to_pyarrow_dataset()
    names = [n for n in dataset.schema.names if n != PARTITION]
    wanted = names if columns is None else [c for c in columns if c in names]
    return dataset.to_table(columns=wanted, filter=ds.field(PARTITION) == day)


def maintain(root: Location, retention_hours: int) -> dict[str, Any]:
    """Housekeeping of one table: compact small files, VACUUM the files removed more than
    `retention_hours` ago (time travel reaches no further back than that), and checkpoint."""
    table = open_table(root)
    if table is None:
        return {"table": str(root), "exists": False}
    compacted = table.optimize.compact(writer_properties=writer_properties())
    table = open_table(root)
    # Our retention is the configured one, even below the table's default of a week.
    deleted = table.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,  # killed writers' files too, which no log entry names
    )
    table = open_table(root)
    table.create_checkpoint()
    return {
        "table": str(root),
        "exists": True,
        "version": table.version(),
        "files_compacted": int(compacted.get("numFilesRemoved", 0)),
        "files_vacuumed": len(deleted),
    }

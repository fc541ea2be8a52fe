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
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from ml import storage
from ml.storage import Location

log = logging.getLogger(__name__)

PARTITION = "dt"
# The commitInfo key holding {day: manifest} for the days a commit changed.
MANIFESTS = "intentflow.manifests"
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
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.info("commit conflict (attempt %d): %s; retrying", attempt, str(exc)[:120])
    raise AssertionError("unreachable")


def commit_properties(changed: dict[str, dict | None] | None) -> Any:
    from deltalake import CommitProperties

    if changed is None:
        return None
    return CommitProperties(custom_metadata={MANIFESTS: json.dumps(changed, sort_keys=True)})


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
    """Data files no longer in the table that VACUUM has not deleted yet (time travel still
    reads them), as URIs."""
    table = open_table(root)
    if table is None:
        return []
    return table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False)


def manifests(table: Any) -> dict[str, dict]:
    """{day: manifest} at `table`'s version: the latest manifest each commit up to it named
    (a day a commit dropped is absent)."""
    version = table.version()
    key = (table.table_uri, version)
    if key in _MANIFESTS:
        return _MANIFESTS[key]
    found: dict[str, dict | None] = {}
    for entry in table.history():  # newest first; history() starts at the loaded version
        if entry.get("version", version) > version:
            continue
        for day, manifest in json.loads(entry.get(MANIFESTS) or "{}").items():
            found.setdefault(day, manifest)
    result = {d: m for d, m in found.items() if m is not None}
    if len(_MANIFESTS) > 64:
        _MANIFESTS.clear()
    _MANIFESTS[key] = result
    return result


_MANIFESTS: dict[tuple[str, int], dict[str, dict]] = {}


def days(table: Any) -> list[str]:
    """The `dt` values with at least one data file at `table`'s version."""
    actions = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column not in actions.column_names:
        return []
    return sorted(set(actions.column(column).to_pylist()))


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
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
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

"""The lake: the `transcripts` Delta table, partitioned by day (`dt=YYYY-MM-DD`), and the
quarantine beside it, a Delta table too (ml.delta).

Publishing a day is one Delta commit: an overwrite with the predicate `dt = 'DAY'`, which
removes the day's previous files and adds the new one atomically. A writer killed at any point
leaves the previous version whole (its uncommitted file is not in the log, and VACUUM removes
it); two writers of one day end with one of them whole; writers of different days both land.
The commit carries the day's manifest (counts, content hash, where the rows came from), so a
day's rows and manifest change together; :func:`read_manifest` reads it back from the log.

Every read can name a table version or a time (`as_of`): time travel reaches back to the
vacuum retention (ml.config.lake_retention_hours; docs/operations.md, "the lake").
Callers go through these functions only.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml import delta, storage
from ml.quarantine import QUARANTINE_SCHEMA
from ml.storage import Location
from ml.transcript import TRANSCRIPT_SCHEMA

log = logging.getLogger(__name__)

# Rows per row group of a staged day and of a day's data file: readers stream a day by these.
ROW_GROUP_ROWS = delta.ROW_GROUP_ROWS

AsOf = int | datetime | None
# A manifest flag: the day's rows were migrated from a lake written before ingest recorded
# `subject_keys` (ml.lake_migrate); they hold [] there and erasure cannot match them.
NO_SUBJECT_KEYS = "subject_keys_absent"


def partition_path(root: Location, day: date) -> Location:
    """The day's folder under `root` (the table's partition folder; reports use the same)."""
    return storage.join(root, f"dt={day.isoformat()}")


def table_content_hash(table: pa.Table) -> str:
    """sha256 over the rows' content hashes in row order, one per line: equal data, equal hash.

    A day's rows are in a fixed order (ml/ingest/staging.py), kept by the table (one data file
    per day and commit), so this is the data's hash.
    """
    hashes = table.column("content_hash").to_pylist() if table.num_rows else []
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def data_writer(path: Path, schema: pa.Schema = TRANSCRIPT_SCHEMA) -> pq.ParquetWriter:
    """A staged day's file writer (ml.ingest.staging): what :func:`publish_file` commits."""
    return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True)


def table_version(root: Location, as_of: AsOf = None) -> int | None:
    """The version of the table at `root` (now, or `as_of`); None when there is no table."""
    table = delta.open_table(root, as_of)
    return None if table is None else table.version()


def write_partition(table: pa.Table, root: Location, day: date, manifest: dict) -> Location:
    """Publish `table` (one day's rows) as `day`, in one commit; see :func:`publish_file`.

    Rows are sorted by conversation id, so the same rows give the same file and content hash,
    in whatever order they come.
    """
    table = table.sort_by("conversation_id")
    manifest = {**manifest, "rows": table.num_rows, "content_hash": table_content_hash(table)}
    with tempfile.TemporaryDirectory(prefix="intentflow-lake-") as tmp:
        path = Path(tmp) / "day.parquet"
        with data_writer(path, table.schema) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        return publish_file(path, root, day, manifest)


def publish_file(data: Location, root: Location, day: date, manifest: dict) -> Location:
    """Publish a finished day file (written by :func:`data_writer`; local or a URL) as `day`:
    one commit replacing the day's files (ml.delta.publish_file). The file becomes the day's
    data as it is: linked, or copied server-side within one object store, never rewritten.

    `manifest` carries the file's `rows` and `content_hash`. `data` is left in place (a retry
    publishes it again). A writer killed at any point leaves the previous day whole.
    """
    key = day.isoformat()
    with _opened(data) as file:
        meta = pq.ParquetFile(file)
        schema, rows = meta.schema_arrow, meta.metadata.num_rows
    delta.publish_file(root, data, key, schema, rows, {key: manifest})
    return partition_path(root, day)


def _opened(data: Location):
    if not storage.is_remote(data):
        return open(data, "rb")
    fs, path = storage.filesystem(str(data))
    return fs.open(path, "rb")


# What a rewrite does to a day: (rows, manifest) -> the new (rows, manifest), or None to keep it.
Change = Callable[[pa.Table, dict], tuple[pa.Table, dict] | None]


def rewrite_partition(root: Location, day: date, change: Change) -> bool:
    """Replace `day`'s rows by `change(rows, manifest)`, recounted, in one commit that a
    publish of the same day meanwhile makes read and change again (ml.delta.rewrite_day).
    Returns whether the day was rewritten (False: no such day, or `change` returned None).

    Erasure's primitive: the replaced file stays for time travel until VACUUM past the
    retention (:func:`maintain`) deletes it.
    """

    def recounted(rows: pa.Table, manifest: dict | None) -> tuple[pa.Table, dict] | None:
        result = None if manifest is None else change(rows, manifest)
        if result is None:
            return None
        rows, manifest = result
        return rows, {**manifest, "rows": rows.num_rows, "content_hash": table_content_hash(rows)}

    return delta.rewrite_day(root, day.isoformat(), recounted)


def read_manifest(root: Location, day: date, as_of: AsOf = None) -> dict | None:
    """The manifest `day`'s last commit (up to `as_of`) recorded; None when no such day."""
    table = delta.open_table(root, as_of)
    return None if table is None else delta.manifests(table).get(day.isoformat())


def manifests(root: Location, as_of: AsOf = None) -> dict[date, dict]:
    """Every day's manifest (up to `as_of`), read from the log once."""
    table = delta.open_table(root, as_of)
    found = delta.manifests(table) if table is not None else {}
    return {date.fromisoformat(d): m for d, m in sorted(found.items())}


def read_partition(
    root: Location, day: date, columns: list[str] | None = None, as_of: AsOf = None
) -> pa.Table:
    """`day`'s rows (every column, or those of `columns` the table has), now or `as_of`."""
    table = delta.open_table(root, as_of)
    if table is None:
        raise FileNotFoundError(f"no table at {root}")
    return delta.read_day(table, day.isoformat(), columns)


def data_files(root: Location, day: date, as_of: AsOf = None) -> list[Location]:
    """The data files of `day` in the table's version (now, or `as_of`): one per publish."""
    table = delta.open_table(root, as_of)
    if table is None:
        return []
    return [f for f in delta.files(table, root) if f"/dt={day.isoformat()}/" in str(f)]


def days_in_window(end: date, window_days: int) -> list[date]:
    """The `window_days` days ending with `end` (inclusive), oldest first."""
    return [end - timedelta(days=i) for i in range(window_days - 1, -1, -1)]


def list_partitions(root: Location, as_of: AsOf = None) -> list[date]:
    """Days published (with a manifest, or with rows written by another tool), oldest first."""
    table = delta.open_table(root, as_of)
    if table is None:
        return []
    found = set(delta.manifests(table)) | set(delta.days(table))
    return sorted(date.fromisoformat(d) for d in found)


def maintain(root: Location, retention_hours: int) -> dict:
    """Compact, VACUUM past `retention_hours`, checkpoint (ml.delta.maintain)."""
    return delta.maintain(root, retention_hours)


# --- the quarantine ------------------------------------------------------------------------


def quarantine_path(root: Location, day: date) -> Location:
    """Where `day`'s quarantined records are: its partition of the quarantine table."""
    return partition_path(root, day)


def write_quarantine(table: pa.Table, root: Location, day: date) -> Location:
    """Replace the day's quarantined records (a rerun's identical set) in one commit.

    Locally the table's folders are 0700 and its files 0600 (redacted, still customer
    records); on object storage the bucket's policy must restrict the prefix.
    """
    table = table.sort_by([("source_file", "ascending"), ("record", "ascending")])
    key = day.isoformat()
    table = (
        table.cast(QUARANTINE_SCHEMA) if table.schema.names == QUARANTINE_SCHEMA.names else table
    )

    def publish() -> None:
        delta.write(
            root,
            delta.with_day(table, key),
            mode="overwrite",
            predicate=delta.day_predicate(key),
        )

    delta.commit(publish)
    return quarantine_path(root, day)


def has_quarantine_table(root: Location) -> bool:
    return delta.open_table(root) is not None


def rewrite_quarantine(root: Location, day: date, keep: Callable[[pa.Table], pa.Table]) -> bool:
    """Replace the day's quarantined records by `keep(records)` (ml.delta.rewrite_day)."""

    def change(rows: pa.Table, manifest: dict | None) -> tuple[pa.Table, None] | None:
        kept = keep(rows)
        return None if kept.num_rows == rows.num_rows else (kept, None)

    return delta.rewrite_day(root, day.isoformat(), change)


def read_quarantine(root: Location, day: date, columns: list[str] | None = None) -> pa.Table:
    """The day's quarantined records (every column, or those of `columns` the table has);
    an empty table when the day quarantined nothing."""
    table = delta.open_table(root)
    if table is None:
        wanted = QUARANTINE_SCHEMA.names if columns is None else columns
        return QUARANTINE_SCHEMA.empty_table().select(
            [c for c in wanted if c in QUARANTINE_SCHEMA.names]
        )
    return delta.read_day(table, day.isoformat(), columns)


def quarantine_days(root: Location) -> list[date]:
    """Days with quarantined records, oldest first."""
    table = delta.open_table(root)
    return [] if table is None else [date.fromisoformat(d) for d in delta.days(table)]


def purge_quarantine(root: Location, today: date, retention_days: int) -> list[date]:
    """Delete the quarantine days older than `retention_days` before `today` (one DELETE on
    `dt`); the days deleted. Their files go at the next VACUUM past the lake's retention.

    By the data's day, as a partition is named: a backfill of older days keeps their
    quarantine only until the next purge (its counts and rules stay in the manifest and report).
    """
    cutoff = today - timedelta(days=retention_days)
    old = [d for d in quarantine_days(root) if d < cutoff]
    if not old:
        return []

    def purge() -> None:
        table = delta.open_table(root)
        with delta.private(root):
            table.delete(f"{delta.PARTITION} < '{cutoff.isoformat()}'")

    delta.commit(purge)
    log.info("quarantine: deleted %d day(s) before %s", len(old), cutoff)
    return old

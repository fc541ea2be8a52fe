"""The lake's window frozen into a snapshot: the labeled rows of N days of partitions.

The split is a function of the conversation id alone (ml.snapshots.writer.split_of), so a
conversation stays in the same split however the window moves, and the test set never leaks
into training. The snapshot's hash covers its partitions' content hashes and the split rule:
same data, same hash, same folder.

Every day of the window is read at one version of the `transcripts` table, which the snapshot
records (`lake_version`, with the partitions and their content hashes), so lineage names the
exact data; `as_of` (a version or a time) rebuilds the snapshot an older version gave.

Agents' corrections (ml.feedback.training) join as labeled examples keyed by prediction id:
split by the same rule, their content hash part of the snapshot's identity (new corrections,
a new snapshot), their count in `counts.corrections` and the `feedback` record (lineage), and
the test split's corrections also kept as `feedback.parquet`: the `feedback` golden set the
evaluation scores (ml.retrain.steps.evaluate_step).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ml import delta, lake
from ml.snapshots.writer import EmptySnapshotError, content_hash, freeze, split_of, split_rows
from ml.storage import Location

if TYPE_CHECKING:
    from ml.feedback.training import Corrections

log = logging.getLogger(__name__)

SPLIT_RULE = "sha256(conversation_id) mod 100: train<80, validation<90, test"
# The test split's corrected examples: the `feedback` golden set.
FEEDBACK_FILE = "feedback.parquet"
COLUMNS = ["conversation_id", "text", "intent"]


def _load_window(
    lake_root: Location, days: list[date], as_of: int | datetime | None = None
) -> tuple[pa.Table, list[dict[str, str]], int]:
    """The window's rows, its partitions (day, content hash) and the table version read."""
    if isinstance(as_of, int):  # a version past the latest: say so, not delta-rs's error
        latest = delta.open_table(lake_root)
        if latest is not None and not 0 <= as_of <= latest.version():
            raise EmptySnapshotError(
                f"the lake table at {lake_root} has no version {as_of} (versions 0 to "
                f"{latest.version()}: `intentflow lake history`)"
            )
    table = delta.open_table(lake_root, as_of)
    if table is None:
        raise EmptySnapshotError(
            f"no lake table at {lake_root} for {days[0]}..{days[-1]}: ingest those days first"
        )
    published = delta.manifests(table)
    tables, partitions = [], []
    for day in days:
        manifest = published.get(day.isoformat())
        if manifest is None:
            log.warning("no partition for %s in %s: skipped", day, lake_root)
            continue
        rows = delta.read_day(table, day.isoformat(), [*COLUMNS, "started_at"])
        tables.append(rows.select([*COLUMNS, "started_at"]))
        partitions.append({"day": day.isoformat(), "content_hash": manifest["content_hash"]})
    if not tables:
        raise EmptySnapshotError(
            f"no partitions in {lake_root} for {days[0]}..{days[-1]} at version "
            f"{table.version()}: ingest those days first"
        )
    return pa.concat_tables(tables), partitions, table.version()


def _dedupe_latest(table: pa.Table) -> pa.Table:
    """Keep one row per conversation id: the latest (a conversation can be re-sent a day later)."""
    table = table.sort_by([("conversation_id", "ascending"), ("started_at", "descending")])
    ids = table.column("conversation_id").to_pylist()
    keep = [i for i, cid in enumerate(ids) if i == 0 or ids[i - 1] != cid]
    return table.take(pa.array(keep, type=pa.int64()))


def make_snapshot(
    lake_root: Location,
    out_root: Location,
    end: date,
    window_days: int,
    as_of: int | datetime | None = None,
    corrections: Corrections | None = None,
) -> dict[str, Any]:
    """Freeze the labeled rows of the `window_days` days ending `end` into a snapshot folder,
    as the lake is now or was `as_of` (a table version or a time), with the agents'
    `corrections` (ml.feedback.training) when given."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    days = lake.days_in_window(end, window_days)
    table, partitions, version = _load_window(lake_root, days, as_of)
    table = _dedupe_latest(table.filter(pc.is_valid(table.column("intent")))).select(COLUMNS)
    if table.num_rows == 0:
        raise EmptySnapshotError(f"the window {days[0]}..{days[-1]} holds no labeled transcripts")
    window = {"start": days[0].isoformat(), "end": days[-1].isoformat()}
    # The version is not part of the identity: the same rows at a later version are the same
    # snapshot (it keeps the first version that gave them, which names the same data).
    info: dict[str, Any] = {"window": window, "partitions": partitions, "lake_version": version}
    identity: dict[str, Any] = {"partitions": partitions}
    files = None
    if corrections is not None and corrections.rows.num_rows:
        from ml.feedback.training import apply

        table, overridden = apply(table, corrections)
        # Without corrections the identity is as before: existing snapshots keep their hash.
        identity["feedback"] = corrections.info["content_hash"]
        info["feedback"] = {**corrections.info, "transcripts_overridden": overridden}
        info["counts"] = {"corrections": corrections.rows.num_rows}
        ids = corrections.rows.column("conversation_id").to_pylist()
        in_test = pa.array([split_of(i) == "test" for i in ids], pa.bool_())
        files = {FEEDBACK_FILE: corrections.rows.filter(in_test)}
        info["counts"]["feedback_test"] = files[FEEDBACK_FILE].num_rows
    return freeze_intents(table, out_root, identity, info, files=files)


def split_rule(test_buckets: int, test: pa.Table | None) -> str:
    """The split rule of a labeled file's snapshot with another test share, or a test file."""
    train_end = 90 - test_buckets
    rule = f"sha256(conversation_id) mod 100: train<{train_end}, validation<{train_end + 10}"
    if test is not None:
        return rule + ", test: the given test file"
    return rule + (", test" if test_buckets else ", no test")


def freeze_intents(
    table: pa.Table,
    out_root: Location,
    identity: dict[str, Any],
    info: dict[str, Any],
    quarantine: pa.Table | None = None,
    test: pa.Table | None = None,
    test_buckets: int = 10,
    files: dict[str, pa.Table] | None = None,
) -> dict[str, Any]:
    """An intent snapshot (conversation_id, text, intent), split by conversation id; a labeled
    file's snapshot keeps the records it could not use in `quarantine`.

    `test_buckets` (of 100) go to test, 10 to validation, the rest to train; `test` (rows of
    another file) is the test split instead, the file's own rows all train or validate."""
    rule = SPLIT_RULE if test_buckets == 10 and test is None else split_rule(test_buckets, test)
    digest = content_hash({**identity, "split": rule})
    splits = split_rows(table, table.column("conversation_id").to_pylist(), test_buckets)
    if test is not None:
        splits["test"] = test
    labels = sorted(set(table.column("intent").to_pylist()))
    info = {**info, "labels": labels, "split_rule": rule}
    return freeze(out_root, digest, splits, info, quarantine, files)

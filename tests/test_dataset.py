from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import lake
from ml.dataset import (
    SPLITS,
    EmptyWindowError,
    load_labeled,
    make_snapshot,
    snapshot_from_file,
    split_of,
)
from ml.schema import TRANSCRIPT_SCHEMA, content_hash


def day_table(day: date, ids: list[str], intent: str | None = "refund_request") -> pa.Table:
    rows = []
    for cid in ids:
        row = {
            "conversation_id": cid,
            "source": "t",
            "started_at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
            "channel": "chat",
            "language": "en",
            "turns": [{"speaker": "customer", "text": f"text {cid}"}],
            "intent": intent,
            "text": f"text {cid}",
        }
        row["content_hash"] = content_hash(row)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=TRANSCRIPT_SCHEMA)


def test_split_is_a_function_of_the_id_with_the_planned_shares() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    for name, (lo, hi) in SPLITS.items():
        assert abs(splits.count(name) / len(ids) - (hi - lo) / 100) < 0.01


def test_snapshot_of_a_window(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    d1, d2, d3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    lake.write_partition(day_table(d1, [f"a{i}" for i in range(100)]), root, d1, {})
    lake.write_partition(day_table(d2, [f"b{i}" for i in range(100)] + ["a1"]), root, d2, {})
    lake.write_partition(day_table(d2, ["u1", "u2"], intent=None), root, d3, {})
    snap = make_snapshot(root, tmp_path / "snaps", d3, window_days=3)
    assert snap["window"] == {"start": "2026-11-20", "end": "2026-11-22"}
    assert sum(snap["counts"].values()) == 200  # a1 once (deduplicated), unlabeled dropped
    assert [p["day"] for p in snap["partitions"]] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    train = pq.read_table(Path(snap["path"]) / "train.parquet")
    assert train.column_names == ["conversation_id", "text", "intent"]
    assert all(split_of(c) == "train" for c in train.column("conversation_id").to_pylist())
    again = make_snapshot(root, tmp_path / "snaps", d3, window_days=3)
    assert again["hash"] == snap["hash"] and again["path"] == snap["path"]
    smaller = make_snapshot(root, tmp_path / "snaps", d3, window_days=2)
    assert smaller["hash"] != snap["hash"]


def test_snapshot_hash_changes_with_the_data(tmp_path: Path) -> None:
    root, d = tmp_path / "lake", date(2026, 11, 22)
    lake.write_partition(day_table(d, ["a", "b"]), root, d, {})
    first = make_snapshot(root, tmp_path / "s", d, 1)["hash"]
    lake.write_partition(day_table(d, ["a", "b", "c"]), root, d, {})
    assert make_snapshot(root, tmp_path / "s", d, 1)["hash"] != first


def test_empty_window_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmptyWindowError, match="ingest those days first"):
        make_snapshot(tmp_path / "lake", tmp_path / "s", date(2026, 11, 22), 7)
    d = date(2026, 11, 22)
    lake.write_partition(day_table(d, ["u"], intent=None), tmp_path / "lake", d, {})
    with pytest.raises(EmptyWindowError, match="no labeled"):
        make_snapshot(tmp_path / "lake", tmp_path / "s", d, 1)


def test_load_labeled_csv_and_snapshot_from_file(tmp_path: Path) -> None:
    csv = tmp_path / "own.csv"
    csv.write_text("utterance,category\nhello there,greet\nbye now,leave\n,greet\n")
    table = load_labeled(csv, "utterance", "category")
    assert table.to_pylist()[0] == {
        "conversation_id": "own.csv:1",
        "text": "hello there",
        "intent": "greet",
    }
    assert table.num_rows == 2  # the row without text is not a training example
    with pytest.raises(ValueError, match="no column 'text'"):
        load_labeled(csv)
    snap = snapshot_from_file(csv, tmp_path / "s", "utterance", "category")
    assert sum(snap["counts"].values()) == 2 and snap["partitions"][0]["file"].endswith("own.csv")


def test_partition_swap_recovers_from_a_writer_killed_between_renames(tmp_path: Path) -> None:
    root, d = tmp_path / "lake", date(2026, 11, 22)
    final = lake.write_partition(day_table(d, ["a"]), root, d, {})
    final.rename(root / f".{final.name}.old-deadbeef")  # what a kill after the first rename leaves
    lake.write_partition(day_table(d, ["a", "b"]), root, d, {})
    assert lake.read_partition(root, d).num_rows == 2
    assert not list(root.glob(".*"))

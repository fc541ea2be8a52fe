import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ci import dataset

from ml import lake
from ml.snapshots.labeled import read_labeled, snapshot_from_file
from ml.snapshots.lake_window import make_snapshot
from ml.snapshots.writer import SPLITS, EmptySnapshotError, split_of
from ml.transcript import TRANSCRIPT_SCHEMA, content_hash


def load_labeled(path: Path, *columns: str, **named: str) -> pa.Table:
    """read_labeled's usable rows (the refused records are checked where a test makes some)."""
    return read_labeled(path, *columns, **named)[0]


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
    with pytest.raises(EmptySnapshotError, match="ingest those days first"):
        make_snapshot(tmp_path / "lake", tmp_path / "s", date(2026, 11, 22), 7)
    d = date(2026, 11, 22)
    lake.write_partition(day_table(d, ["u"], intent=None), tmp_path / "lake", d, {})
    with pytest.raises(EmptySnapshotError, match="no labeled"):
        make_snapshot(tmp_path / "lake", tmp_path / "s", d, 1)


def test_load_labeled_csv_and_snapshot_from_file(tmp_path: Path) -> None:
    csv = tmp_path / "own.csv"
    csv.write_text("utterance,category\nhello there,greet\nbye now,leave\n,greet\nhi,\n")
    table, refused = read_labeled(csv, "utterance", "category")
    assert table.to_pylist()[0] == {
        "conversation_id": "own.csv:1",
        "text": "hello there",
        "intent": "greet",
    }
    assert table.num_rows == 2  # the rows without text or label are not training examples
    assert [(r["record"], r["rule"], r["reason"]) for r in refused.rows] == [
        (3, "missing_text", "field 'utterance' is empty or missing"),
        (4, "missing_label", "field 'category' is empty or missing"),
    ]
    with pytest.raises(ValueError, match=r"own.csv: no column 'words' \(columns: utterance"):
        load_labeled(csv, text_column="words")
    snap = snapshot_from_file(csv, tmp_path / "s", "utterance", "category")
    assert snap["partitions"][0]["file"].endswith("own.csv")
    # Records in = rows in the splits + quarantined (+ duplicates, none here).
    counts = snap["counts"]
    assert sum(counts[s] for s in SPLITS) == 2 and counts["quarantined"] == 2
    assert counts["records"] == 4 and counts["duplicates"] == 0
    assert snap["quarantine_rules"] == {"missing_text": 1, "missing_label": 1}
    quarantine = pq.read_table(Path(snap["path"]) / "quarantine.parquet").to_pylist()
    assert [(q["record"], q["rule"]) for q in quarantine] == [
        (3, "missing_text"),
        (4, "missing_label"),
    ]
    assert json.loads(quarantine[1]["raw"]) == {"utterance": "hi", "category": ""}


def test_load_labeled_csv_picks_default_columns_like_banking77_and_bitext(tmp_path: Path) -> None:
    banking = tmp_path / "banking.csv"
    banking.write_bytes(b'text,category\r\n"\nI lost my card\n\n",lost_card\r\nhi,greet\r\n')
    assert load_labeled(banking).to_pylist() == [
        {"conversation_id": "banking.csv:1", "text": "I lost my card", "intent": "lost_card"},
        {"conversation_id": "banking.csv:2", "text": "hi", "intent": "greet"},
    ]
    bitext = tmp_path / "bitext.csv"
    bitext.write_text(
        "context,role,instruction,intent,category,response\n"
        'cs,va,cancel order 12,cancel_order,ORDER,"Sure.\r\nI can help."\n'
    )
    [row] = load_labeled(bitext).to_pylist()  # `intent` wins over the coarser `category`
    assert (row["text"], row["intent"]) == ("cancel order 12", "cancel_order")
    assert load_labeled(bitext, "instruction", "category").column("intent").to_pylist() == ["ORDER"]


def test_load_labeled_jsonl_transcripts_and_dstc11(tmp_path: Path) -> None:
    transcripts = tmp_path / "day.jsonl"
    turns = [
        {"speaker": "customer", "text": "my card"},
        {"speaker": "agent", "text": "which card?"},
        {"speaker": "customer", "text": "the blue one"},
    ]
    records = [
        {"conversation_id": "c1", "turns": turns, "intent": "lost_card"},
        {"conversation_id": "c2", "turns": turns, "intent": None},  # unlabeled: skipped
    ]
    transcripts.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert load_labeled(transcripts).to_pylist() == [
        {"conversation_id": "c1", "text": "my card the blue one", "intent": "lost_card"}
    ]
    dstc = tmp_path / "insurance.jsonl"
    dstc.write_text(
        '{"utterance": "I need a quote", "utterance_id": "insurance_0000", "intent": "GetQuote"}\n'
        "\n"
        '{"utterance": " cancel it ", "utterance_id": "insurance_0001", "intent": "Cancel"}\n'
    )
    assert load_labeled(dstc).to_pylist() == [
        {"conversation_id": "insurance_0000", "text": "I need a quote", "intent": "GetQuote"},
        {"conversation_id": "insurance_0001", "text": "cancel it", "intent": "Cancel"},
    ]


def test_load_labeled_clinc150_json(tmp_path: Path) -> None:
    clinc = tmp_path / "data_full.json"
    clinc.write_text(
        json.dumps({"train": [["freeze my card", "freeze_account"]], "val": [["hi", "greeting"]]})
    )
    assert load_labeled(clinc).to_pylist() == [
        {
            "conversation_id": "data_full-train-0",
            "text": "freeze my card",
            "intent": "freeze_account",
        },
        {"conversation_id": "data_full-val-0", "text": "hi", "intent": "greeting"},
    ]


TURN = '{"turns": [{"speaker": "customer", "text": "a"}], "intent": "x"}\n'


@pytest.mark.parametrize(
    ("name", "content", "rule", "reason"),
    [
        (
            "bad.jsonl",
            '{"text": "a", "label": "x"}\n{"text": "zebra",\n',
            "malformed_json",
            "malformed JSON",
        ),
        (
            "bad.jsonl",
            '{"text": "a", "label": "x"}\n{"text": "zebra", "label": 3}\n',
            "invalid_field",
            "field 'label' must be a string",
        ),
        (
            "bad.jsonl",
            '{"text": "a", "label": "x"}\n{"text": ["zebra"], "label": "y"}\n',
            "invalid_field",
            "field 'text' must be a string",
        ),
        (
            "bad.jsonl",
            TURN + '{"turns": "zebra", "intent": "x"}\n',
            "invalid_field",
            "field 'turns' must be a list",
        ),
        (
            "bad.csv",
            "text,label\na,x\nzebra,y,extra\n",
            "malformed_csv",
            "row has more fields than the header",
        ),
        (
            "bad.parquet",
            None,  # text "a"/label "x", then a row without a label
            "missing_label",
            "field 'label' is empty or missing",
        ),
        (
            "bad.json",
            '{"train": [["a", "x"], ["zebra"]]}',
            "invalid_field",
            r"train\[1\] is not \[text, intent\]",
        ),
    ],
)
def test_read_labeled_refuses_a_bad_record_naming_file_record_and_field(
    tmp_path: Path, name: str, content: str | None, rule: str, reason: str
) -> None:
    """A malformed record is quarantined, not fatal: the file's other records are read; the
    reason names the field, never the value."""
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"text": ["a", "zebra"], "label": ["x", None]}), path)
    else:
        path.write_text(content)
    table, refused = read_labeled(path)
    [row] = refused.rows
    assert (row["source_file"], row["record"], row["rule"]) == (str(path), 2, rule)
    assert re.match(reason, row["reason"]) and "zebra" not in row["reason"]
    assert table.num_rows == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.jsonl",
            '{"words": "a", "label": "x"}\n',
            r"bad.jsonl: no column 'text' \(columns: words, label\)",
        ),
        ("bad.jsonl", "[1, 2]\n[3]\n", r"bad.jsonl: record 1 is not a JSON object"),
        ("bad.txt", "hello\n", r"bad.txt: record 1 is not JSON"),
        ("bad.csv", "words,label\na,x\n", r"bad.csv: no column 'text' \(columns: words, label\)"),
    ],
)
def test_read_labeled_refuses_a_file_it_cannot_read_as_labeled_data(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labeled(path)


@pytest.mark.parametrize(
    ("relative", "rows", "labels"),
    [
        ("banking77/train.csv", 10_003, 77),
        ("bitext-customer-support/train.csv", 3_611, 27),
        ("dstc11-intents/insurance.jsonl", 913, 22),
        ("dstc11-intents/finance.jsonl", 1_130, 38),
        ("clinc150/data_full_train_val.json", 18_200, 151),
        ("abcd-sample/abcd_sample.json", 3, None),
    ],
)
def test_load_labeled_reads_the_public_datasets(
    relative: str, rows: int, labels: int | None
) -> None:
    path = dataset(relative)
    table = load_labeled(path)
    assert table.num_rows == rows
    assert len(set(table.column("conversation_id").to_pylist())) == rows
    if labels is not None:
        assert len(set(table.column("intent").to_pylist())) == labels
    assert all(t and t == t.strip() for t in table.column("text").to_pylist())


def test_a_snapshot_records_the_lake_version_and_as_of_rebuilds_an_old_one(
    tmp_path: Path,
) -> None:
    """The version read is in snapshot.json; `as_of` (a version or a time) gives back the
    snapshot an older version of the lake gave, byte for byte the same rows."""
    from datetime import UTC, datetime

    root, d = tmp_path / "lake", date(2026, 11, 22)
    lake.write_partition(day_table(d, [f"a{i}" for i in range(50)]), root, d, {})
    first = make_snapshot(root, tmp_path / "s", d, 1)
    assert first["lake_version"] == lake.table_version(root) == 1
    between = datetime.now(UTC)
    lake.write_partition(day_table(d, [f"b{i}" for i in range(60)]), root, d, {})
    second = make_snapshot(root, tmp_path / "s2", d, 1)
    assert second["lake_version"] == 2 and second["hash"] != first["hash"]
    for as_of in (1, between):
        again = make_snapshot(root, tmp_path / f"old-{as_of!s:.1}", d, 1, as_of=as_of)
        assert again["hash"] == first["hash"] and again["lake_version"] == 1
        assert again["partitions"] == first["partitions"]
        for split in ("train", "validation", "test"):
            old = pq.read_table(Path(first["path"]) / f"{split}.parquet")
            assert pq.read_table(Path(again["path"]) / f"{split}.parquet").equals(old)

"""ml.tasks.answers' data: answer ids and the bank (ml.tasks.answers.bank), question templates,
groups, and build_dataset's snapshot with its quarantine (ml.tasks.answers.data), on small
files and on Bitext."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from answer_pairs import pairs_csv, write_pairs
from ci import dataset

from ml.snapshots.writer import SPLITS
from ml.tasks.answers import build_dataset
from ml.tasks.answers.bank import EmptyBankError, answer_id, build_bank
from ml.tasks.answers.data import group_keys, question_template

BITEXT = "bitext-customer-support/train.csv"  # under ../shared/datasets (tests/ci.py)


def test_answer_ids_dedupe_by_whitespace_and_case_only() -> None:
    assert answer_id("Thanks,  we\nwill help.") == answer_id("thanks, we will help.")
    assert answer_id("Thanks, we will help.") != answer_id("Thanks, we will help!")


def test_bank_dedupes_answers_and_keeps_the_mapping() -> None:
    pairs = [
        {"answer_id": answer_id("A"), "answer": "A", "intent": "x"},
        {"answer_id": answer_id("a"), "answer": "a", "intent": "y"},
        {"answer_id": answer_id("B"), "answer": "B", "intent": "x"},
    ]
    bank = build_bank(pairs).to_pylist()
    assert len(bank) == 2
    by_id = {row["answer_id"]: row for row in bank}
    assert by_id[answer_id("A")] == {
        "answer_id": answer_id("A"),
        "answer": "A",  # the first text seen
        "intents": ["x", "y"],
        "n_questions": 2,
    }


def test_empty_bank_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmptyBankError, match="empty"):
        build_bank([])
    source = write_pairs(
        tmp_path / "empty.csv",
        [
            {
                "instruction": "hi",
                "intent": "x",
                "start_offset": "",
                "end_offset": "",
                "response": "",
            }
        ],
    )
    with pytest.raises(EmptyBankError, match="answer bank would be empty"):
        build_dataset(str(source), tmp_path / "snapshots")
    # Nothing lost: the one record is in quarantine.
    (quarantine,) = (tmp_path / "snapshots").glob("*.quarantine.parquet")
    assert pq.read_table(quarantine).column("rule").to_pylist() == ["empty_answer"]


def test_templates_mask_ids_and_entity_spans() -> None:
    assert question_template("Cancel purchase 00123842!") == question_template("cancel purchase 77")
    text = "order from Mr. Jones please"
    assert question_template(text, (11, 20)) == "order from <e> please"


def test_groups_join_shared_templates_and_shared_answers() -> None:
    templates = ["t1", "t2", "t1", "t3", "t4"]
    ids = ["a", "b", "c", "b", "d"]  # t2 and t3 share answer b
    assert group_keys(templates, ids) == ["t1", "t2", "t1", "t2", "t4"]


def test_build_dataset_splits_by_group_and_quarantines_bad_records(tmp_path: Path) -> None:
    source = pairs_csv(tmp_path / "pairs.csv")
    with source.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "track_order", "", "", "Some reply."])  # record 121
        writer.writerow(["where is it", "track_order", "", "", "   "])  # record 122
        writer.writerow(["x", "y", "", "", "z", "one field too many"])  # record 123
    result = build_dataset(str(source), tmp_path / "snapshots")

    folder = Path(result["path"])
    assert folder.parent == tmp_path / "snapshots" and folder.name == result["hash"][:16]
    assert {"hash", "counts", "window", "partitions", "source", "path"} <= set(result)
    assert result["partitions"][0]["file"] == str(source)
    counts = result["counts"]
    assert counts["quarantined"] == 3
    assert counts["train"] + counts["validation"] + counts["test"] + 3 == counts["records"] == 123
    assert counts["answers"] == 120 and counts["duplicate_answers"] == 0

    quarantine = pq.read_table(folder / "quarantine.parquet").to_pylist()
    assert [(q["record"], q["rule"]) for q in quarantine] == [
        (121, "empty_question"),
        (122, "empty_answer"),
        (123, "malformed_csv"),
    ]
    assert all(q["source_file"] == str(source) and q["reason"] for q in quarantine)
    assert json.loads(quarantine[1]["raw"])["instruction"] == "where is it"

    splits = {s: pq.read_table(folder / f"{s}.parquet").to_pylist() for s in SPLITS}
    groups = {s: {r["group"] for r in rows} for s, rows in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["validation"]
    bank = pq.read_table(folder / "answers.parquet")
    assert set(bank["answer_id"].to_pylist()) == {
        r["answer_id"] for v in splits.values() for r in v
    }
    # The same source gives the same snapshot (reused, not rewritten).
    assert build_dataset(str(source), tmp_path / "snapshots")["hash"] == result["hash"]


def test_duplicate_answers_map_to_one_bank_entry_in_one_split(tmp_path: Path) -> None:
    reply = "Please call us on {{Customer Support Phone Number}}."
    rows = [
        {"instruction": q, "intent": "contact", "start_offset": "", "end_offset": "", "response": r}
        for q, r in [
            ("how do i call you", reply),
            ("phone number of support", reply.upper()),  # same reply up to case
            ("what is your phone", "  " + reply + "\r\n"),
        ]
    ]
    result = build_dataset(str(write_pairs(tmp_path / "dup.csv", rows)), tmp_path / "snap")
    assert result["counts"]["answers"] == 1 and result["counts"]["duplicate_answers"] == 2
    bank = pq.read_table(Path(result["path"]) / "answers.parquet").to_pylist()
    assert bank == [
        {"answer_id": answer_id(reply), "answer": reply, "intents": ["contact"], "n_questions": 3}
    ]
    non_empty = [s for s in SPLITS if result["counts"][s]]
    assert len(non_empty) == 1  # one group: a shared answer never straddles splits


def test_build_dataset_reads_a_jsonl_source_through_a_source_spec(tmp_path: Path) -> None:
    lines = [
        {"q": f"question {i} about topic {i % 9}", "a": f"reply {i % 9}", "label": f"t{i % 9}"}
        for i in range(60)
    ]
    lines.append({"q": "no reply here", "label": "t1"})  # record 61: no answer field at all
    data = tmp_path / "faq.jsonl"
    data.write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")
    spec = {"format": "jsonl", "url": str(data), "columns": {"text": "q", "agent_text": "a"}}
    result = build_dataset(json.dumps(spec), tmp_path / "snap")
    counts = result["counts"]
    assert counts["records"] == 62 and counts["quarantined"] == 2
    assert counts["answers"] == 9 and counts["duplicate_answers"] == 51
    quarantine = pq.read_table(Path(result["path"]) / "quarantine.parquet").to_pylist()
    assert [(q["record"], q["rule"]) for q in quarantine] == [
        (61, "empty_answer"),
        (62, "malformed_json"),
    ]


def test_bitext_snapshot_has_no_template_leak(tmp_path: Path) -> None:
    result = build_dataset(str(dataset(BITEXT)), tmp_path)
    counts = result["counts"]
    assert counts["records"] == 3611 and counts["quarantined"] == 0
    folder = Path(result["path"])
    train = pq.read_table(folder / "train.parquet").to_pydict()
    test = pq.read_table(folder / "test.parquet").to_pydict()
    assert not set(train["group"]) & set(test["group"])
    # Bitext labels some ids and not others: masking digits too keeps those twins together.
    assert not {question_template(t) for t in train["text"]} & {
        question_template(t) for t in test["text"]
    }
    assert 300 < counts["test"] < 450

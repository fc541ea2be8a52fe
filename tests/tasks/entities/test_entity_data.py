"""The entities task's data: labeled sources frozen into a snapshot split by template, with bad
records quarantined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from ci import dataset

from ml.tasks import entities
from ml.tasks.entities.data import template
from ml.tasks.entities.spans import ENTITY_TYPES

BITEXT = "bitext-customer-support/train.csv"  # under ../shared/datasets (tests/ci.py)


def write_abcd(path: Path) -> None:
    convo = {
        "convo_id": 7,
        "scenario": {
            "personal": {"customer_name": "crystal minh"},
            "order": {"order_id": "3348917502", "city": "san mateo"},
        },
        "original": [
            ["agent", "How can I help?"],
            ["customer", "Hi, Crystal Minh here, order 3348917502 never reached San Mateo"],
            ["customer", "thanks"],
            ["agent", "Is that order 3348917502?"],
        ],
    }
    path.write_text(json.dumps([convo]))


def test_build_dataset_quarantines_bad_spans_and_splits_by_template(
    tmp_path: Path, write_bitext: Any
) -> None:
    source, abcd = tmp_path / "bitext.csv", tmp_path / "abcd.json"
    broken = write_bitext(source, 180)
    write_abcd(abcd)
    snap = entities.build_dataset(str(source), tmp_path / "snaps", abcd=str(abcd))
    folder = Path(snap["path"])
    counts = snap["counts"]
    # Rows in = rows written + rows quarantined; the ABCD customer turn with values adds one.
    assert counts["train"] + counts["validation"] + counts["test"] == 180 + 1
    assert counts["quarantined"] == broken
    quarantine = pq.read_table(folder / "quarantine.parquet").to_pylist()
    assert [(q["record"], q["rule"]) for q in quarantine] == [
        (4, "span_out_of_range"),
        (5, "span_splits_word"),
        (6, "invalid_field"),
    ]
    assert all(q["source_file"] == str(source) and q["reason"] and q["raw"] for q in quarantine)
    assert "3707955617" in quarantine[0]["raw"]

    rows = [
        r
        for s in ("train", "validation", "test")
        for r in pq.read_table(folder / f"{s}.parquet").to_pylist()
    ]
    [weak] = [r for r in rows if r["source"] == "abcd"]
    assert sorted((s["type"], weak["text"][s["start"] : s["end"]]) for s in weak["spans"]) == [
        ("city", "San Mateo"),
        ("order_id", "3348917502"),
        ("person_name", "Crystal Minh"),
    ]
    # Same template, same split: "cancel order <id>" never straddles train and test.
    by_template: dict[str, set[str]] = {}
    for split in ("train", "validation", "test"):
        for r in pq.read_table(folder / f"{split}.parquet").to_pylist():
            by_template.setdefault(template(r), set()).add(split)
    assert all(len(splits) == 1 for splits in by_template.values())
    # Content-hashed: the same input gives the same snapshot.
    assert (
        entities.build_dataset(str(source), tmp_path / "snaps", abcd=str(abcd))["path"]
        == snap["path"]
    )
    assert snap["window"] is None and snap["partitions"][0]["file"] == str(source)


def test_bitext_real_spans_every_record_accounted_for(tmp_path: Path) -> None:
    snap = entities.build_dataset(str(dataset(BITEXT)), tmp_path)
    c = snap["counts"]
    assert c["train"] + c["validation"] + c["test"] + c["quarantined"] == 3611
    # Bitext ships spans past the end of the text and ids glued to a word: quarantined.
    assert set(snap["quarantine_rules"]) == {"span_out_of_range", "span_splits_word"}
    assert set(snap["entities"]) == set(ENTITY_TYPES)

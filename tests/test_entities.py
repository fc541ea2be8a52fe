"""The entities task: span checks, BIO alignment to word pieces, span metrics, the dataset
with its quarantine, and a real (tiny BERT) training through the CLI and the retrain steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from ci import dataset
from typer.testing import CliRunner

from ml.tasks import entities
from ml.tasks.entities import Span, SpanError, bio_tags, check_spans, decode, span_metrics

BITEXT = "bitext-customer-support/train.csv"  # under ../shared/datasets (tests/ci.py)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from ml.config import default_base_model

    return AutoTokenizer.from_pretrained(default_base_model())


# --- spans, tags, metrics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spans", "rule"),
    [
        ("track order 3707955617", [Span(12, 24, "order_id")], "span_out_of_range"),
        ("refund $1", [Span(-1, 3, "amount")], "span_out_of_range"),
        ("see order113542617735902 now", [Span(9, 24, "order_id")], "span_splits_word"),
        ("ship to Valencia", [Span(8, 12, "city")], "span_splits_word"),
        (
            "bill from Mr. Jones",
            [Span(10, 19, "person_name"), Span(14, 19, "city")],
            "span_overlap",
        ),
        ("ship to Valencia", [Span(7, 8, "city")], "span_empty"),
        ("ship to Valencia", [Span(8, 16, "planet")], "unknown_entity_type"),
    ],
)
def test_bad_spans_are_refused_with_their_rule(text: str, spans: list[Span], rule: str) -> None:
    with pytest.raises(SpanError) as err:
        check_spans(text, spans)
    assert err.value.rule == rule


def test_good_spans_come_back_sorted() -> None:
    text = "bill #00108 from Mr. Jones"
    spans = [Span(17, 26, "person_name"), Span(5, 11, "invoice_id")]
    assert check_spans(text, spans) == sorted(spans)


def test_bio_tags_follow_word_pieces_and_decode_back_to_the_spans(tokenizer: Any) -> None:
    text = "check invoice #12588 from Mr. Jones in Valencia"
    spans = [Span(14, 20, "invoice_id"), Span(26, 35, "person_name"), Span(39, 47, "city")]
    enc = tokenizer(text, return_offsets_mapping=True)
    tags = bio_tags(enc["offset_mapping"], spans)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    tagged = [(p, t) for p, t in zip(pieces, tags, strict=True) if t not in ("O", None)]
    # "#12588" is three word pieces: B on the first, I on the rest.
    assert tagged[:4] == [
        ("#", "B-invoice_id"),
        ("125", "I-invoice_id"),
        ("##8", "I-invoice_id"),
        ("##8", "I-invoice_id"),
    ]
    assert tags[0] is None and tags[-1] is None  # [CLS], [SEP]: ignored by the loss
    decoded = decode(text, enc["offset_mapping"], [t or "O" for t in tags])
    assert [(d["type"], d["start"], d["end"], d["text"]) for d in decoded] == [
        ("invoice_id", 14, 20, "#12588"),
        ("person_name", 26, 35, "Mr. Jones"),
        ("city", 39, 47, "Valencia"),
    ]


def test_decode_starts_an_entity_at_a_stray_i_tag() -> None:
    text = "to Paris"
    offsets = [(0, 0), (0, 2), (3, 8), (0, 0)]
    spans = decode(text, offsets, ["O", "O", "I-city", "O"], [1.0, 0.9, 0.8, 1.0])
    assert spans == [{"type": "city", "text": "Paris", "start": 3, "end": 8, "score": 0.8}]


def test_span_metrics_need_exact_type_and_boundaries() -> None:
    gold = [[("city", 0, 5), ("order_id", 10, 20)], [("amount", 3, 5)], []]
    predicted = [[("city", 0, 5), ("order_id", 10, 19)], [("amount", 3, 5)], [("city", 0, 2)]]
    m = span_metrics(gold, predicted)
    assert m["per_class"]["city"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    assert m["per_class"]["order_id"]["f1"] == 0.0  # one character short is a miss
    assert m["per_class"]["amount"]["f1"] == 1.0
    assert m["micro_precision"] == 0.5 and m["micro_recall"] == pytest.approx(2 / 3)
    assert (m["n"], m["entities"]) == (3, 3)
    assert list(m["per_class"]) == ["order_id", "city", "amount"]  # ENTITY_TYPES order


# --- dataset -----------------------------------------------------------------------------------


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
    assert all(q["file"] == str(source) and q["reason"] and q["raw"] for q in quarantine)
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
            by_template.setdefault(entities._template(r), set()).add(split)
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
    assert set(snap["entities"]) == set(entities.ENTITY_TYPES)


# --- training, registry, CLI -------------------------------------------------------------------


@pytest.mark.slow
def test_entities_train_register_predict_evaluate_through_the_cli(
    intentflow_home: Path,
    tiny_bert_dir: Path,
    tmp_path: Path,
    write_bitext: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml.cli.main import app
    from ml.config import settings
    from ml.registry.store import Registry

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    source = tmp_path / "bitext.csv"
    write_bitext(source, 360, broken=False)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    common = ["--task", "entities", "--data", str(source), "--batch-size", "16"]
    trained = json.loads(
        invoke("train", *common, "--epochs", "8", "--learning-rate", "0.003", "--json")
    )
    assert (trained["model"], trained["version"], trained["alias"]) == ("entities", 1, "champion")
    assert trained["task"] == "entities" and trained["metric"] == "micro_f1"
    test = trained["test"]
    assert set(test["per_class"]) <= set(entities.ENTITY_TYPES) and test["n"] > 20
    # Eight epochs of a tiny random BERT (val micro-F1 0.70, test 0.47 here): it learned; an
    # untrained head tags nothing (0.0).
    assert test["micro_f1"] > 0.25, test

    registry = Registry(settings().registry_url)
    version = registry.get("entities", alias="champion")
    assert version.task_type == "entities"
    assert version.metrics["test"]["micro_f1"] == test["micro_f1"]
    artifact = Path(version.artifact_uri)
    assert json.loads((artifact / "task.json").read_text()) == {"task": "entities"}
    assert "# Entity tagger" in (artifact / "README.md").read_text()

    text = "cancel order 12345678"
    [pred] = json.loads(invoke("predict", "--model", "entities@champion", text, "--json"))
    assert pred["text"] == text
    for span in pred["spans"]:
        assert span["type"] in entities.ENTITY_TYPES
        assert text[span["start"] : span["end"]] == span["text"] and 0 < span["score"] <= 1
    shown = invoke("predict", "--model", "entities@champion", text)
    assert shown.startswith(text)

    snapshot = Path(version.lineage["snapshot_path"])
    metrics = json.loads(
        invoke("evaluate", "--model", "entities:1", "--data", str(snapshot), "--json")
    )
    assert metrics["task"] == "entities" and metrics["micro_f1"] == test["micro_f1"]
    assert "latency_ms_p50" in metrics

    # A second training is compared with the champion on micro-F1, not the intent metric.
    again = json.loads(invoke("train", *common, "--epochs", "1", "--json"))
    assert again["version"] == 2 and any("micro_f1" in r for r in again["reasons"])
    # The intent model is untouched: another registered model, another task type.
    assert [v.version for v in registry.list_versions("entities")] == [1, 2]
    assert registry.list_versions("intent") == []


def test_entities_training_resumes_from_its_checkpoint(
    tiny_bert_dir: Path,
    tmp_path: Path,
    write_bitext: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ml.tasks.intent.train's checkpoints serve the token-classification loop too: a retried training that
    finds epoch 1's checkpoint (killed in epoch 2) resumes there and ends with the same weights."""
    from ml.training import loop

    source = tmp_path / "bitext.csv"
    write_bitext(source, 90, broken=False)
    snap = Path(entities.build_dataset(str(source), tmp_path / "snaps")["path"])
    config = {
        "base_model": str(tiny_bert_dir),
        "epochs": 2,
        "learning_rate": 3e-3,
        "batch_size": 16,
        "num_threads": 1,
        "early_stopping_patience": None,
    }
    # Only the latest checkpoint is kept: a copy of epoch 1's is what a kill in epoch 2 leaves.
    save, after_epoch_1 = loop._save_checkpoint, tmp_path / "after-epoch-1"

    def save_and_copy_the_first(root: Path, config: Any, run: Any, *rest: Any) -> None:
        save(root, config, run, *rest)
        if run.epoch == 1:
            shutil.copytree(root / "epoch-001", after_epoch_1 / "epoch-001")

    monkeypatch.setattr(loop, "_save_checkpoint", save_and_copy_the_first)
    first = entities.fine_tune(snap, tmp_path / "a", config, tmp_path / "ckpt")
    assert first["epochs_run"] == 2 and (after_epoch_1 / "epoch-001").is_dir()
    with caplog.at_level("INFO", logger="ml.training.loop"):
        again = entities.fine_tune(snap, tmp_path / "b", config, after_epoch_1)
    assert "resuming from" in caplog.text and "(epoch 1, step" in caplog.text
    assert (after_epoch_1 / "epoch-002").is_dir(), "epoch 2 ran again, after the resume"
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("a", "b")]
    assert weights[0] == weights[1]
    assert again["validation"] == first["validation"]

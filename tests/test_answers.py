"""ml.tasks.answers: answer bank handling, quarantine, ranking metrics on hand-computed cases, and
real bi-encoder training (tiny BERT; MiniLM for a few steps) through build_dataset →
fine_tune → evaluate → predict, plus resume from a checkpoint."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ci import dataset

from ml.artifact.integrity import PICKLE_SUFFIXES, directory_sha256
from ml.config import default_base_model
from ml.tasks import answers
from ml.tasks.answers import (
    PROMOTION_METRIC,
    TASK,
    EmptyBankError,
    answer_id,
    build_bank,
    build_dataset,
    evaluate,
    fine_tune,
    group_keys,
    predict,
    question_template,
    ranking_metrics,
)

BITEXT = "bitext-customer-support/train.csv"  # under ../shared/datasets (tests/ci.py)
HEADER = ["instruction", "intent", "start_offset", "end_offset", "response"]

# Three intents, each with its own distinct reply family; questions are templates with ids.
TOPICS = {
    "track_order": ("where is my order {n}", "Your parcel {n} ships from our depot tomorrow."),
    "get_refund": ("i want my money back for {n}", "A refund for {n} reaches your card in days."),
    "reset_password": ("cannot log in account {n}", "Reset the password of {n} on the login page."),
}
PHRASES = ["", "please ", "hi, ", "urgent: ", "hello, ", "help "]
ENDINGS = ["", " now", " today", " asap", " thanks", " again", " quickly"]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pairs_csv(path: Path, per_intent: int = 40) -> Path:
    rows = []
    for intent, (question, reply) in TOPICS.items():
        for i in range(per_intent):
            # Up to 42 templates per intent (ids masked): enough groups for three splits.
            ending = ENDINGS[(i // len(PHRASES)) % len(ENDINGS)]
            q = PHRASES[i % len(PHRASES)] + question.format(n=1000 + i) + ending
            start = q.index(str(1000 + i))
            # Each reply differs (a variant number), like Bitext's one reply per request.
            rows.append(
                {
                    "instruction": q,
                    "intent": intent,
                    "start_offset": start,
                    "end_offset": start + 4,
                    "response": reply.format(n=1000 + i) + f"\r\nVariant {i % 7}.",
                }
            )
    return _write_csv(path, rows)


# --- bank and grouping ---------------------------------------------------------------------------


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
    source = _write_csv(
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


def test_validation_bank_keeps_every_gold_answer_and_a_fixed_sample() -> None:
    pairs = [{"answer_id": answer_id(f"r{i}"), "answer": f"r{i}", "intent": "x"} for i in range(50)]
    bank = build_bank(pairs)
    rows = {"answer_id": [answer_id("r3"), answer_id("r40"), answer_id("r3")]}
    small = answers.validation_bank(rows, bank, 10)
    ids = small["answer_id"].to_pylist()
    assert len(ids) == 10 and {answer_id("r3"), answer_id("r40")} <= set(ids)
    assert answers.validation_bank(rows, bank, 10).equals(small)  # same sample every epoch
    assert answers.validation_bank(rows, bank, None).num_rows == 50
    assert answers.validation_bank(rows, bank, 500).num_rows == 50


# --- build_dataset ---------------------------------------------------------------------------


def test_build_dataset_splits_by_group_and_quarantines_bad_records(tmp_path: Path) -> None:
    source = _pairs_csv(tmp_path / "pairs.csv")
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
    assert [(q["record_number"], q["rule"]) for q in quarantine] == [
        (121, "empty_question"),
        (122, "empty_answer"),
        (123, "malformed_csv"),
    ]
    assert all(q["file"] == str(source) and q["reason"] for q in quarantine)
    assert json.loads(quarantine[1]["raw"])["instruction"] == "where is it"

    splits = {s: pq.read_table(folder / f"{s}.parquet").to_pylist() for s in answers.SPLITS}
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
    result = build_dataset(str(_write_csv(tmp_path / "dup.csv", rows)), tmp_path / "snap")
    assert result["counts"]["answers"] == 1 and result["counts"]["duplicate_answers"] == 2
    bank = pq.read_table(Path(result["path"]) / "answers.parquet").to_pylist()
    assert bank == [
        {"answer_id": answer_id(reply), "answer": reply, "intents": ["contact"], "n_questions": 3}
    ]
    non_empty = [s for s in answers.SPLITS if result["counts"][s]]
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
    assert [(q["record_number"], q["rule"]) for q in quarantine] == [
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


# --- metrics -------------------------------------------------------------------------------------


def test_ranking_metrics_on_a_hand_computed_example() -> None:
    # Bank: 4 answers, intents x, x, y, z. Query 0: gold 0 ranked 1st. Query 1: gold 2 ranked
    # 3rd (answers 1 and 3 above). Query 2: gold 3 tied with answer 0 -> rank 2 (ties count
    # against). Query 3: gold not in the bank -> a miss (reciprocal rank 0).
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],
            [0.1, 0.8, 0.5, 0.7],
            [0.6, 0.1, 0.2, 0.6],
            [0.5, 0.4, 0.3, 0.2],
        ]
    )
    gold = [0, 2, 3, -1]
    got = ranking_metrics(
        scores, gold, ["x", "y", "z", "x"], [["x"], ["x"], ["y"], ["z"]], ks=(1, 2)
    )
    assert got["n"] == 4
    assert got["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 0) / 4)
    assert got["recall_at_1"] == pytest.approx(1 / 4)
    assert got["recall_at_2"] == pytest.approx(2 / 4)
    # Same intent: q0 answer 0 (x) 1st; q1 (y) answer 2 behind 1 and 3 -> 3rd; q2 (z) answer 3
    # tied with answer 0 -> 2nd; q3 (x) answer 0 first -> 1st.
    assert got["intent_mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)
    assert got["intent_recall_at_1"] == pytest.approx(2 / 4)
    assert got["per_class"]["x"] == {"mrr": 0.5, "recall_at_1": 0.5, "support": 2}
    assert got["per_class"]["y"]["mrr"] == pytest.approx(1 / 3)


def test_ranking_metrics_without_intents_and_on_nothing() -> None:
    got = ranking_metrics(np.array([[0.1, 0.2]]), [1])
    assert got == {"n": 1, "mrr": 1.0, "recall_at_1": 1.0, "recall_at_5": 1.0}
    empty = ranking_metrics(np.zeros((0, 3)), [])
    assert empty["n"] == 0 and empty["mrr"] == 0.0


def test_in_batch_loss_masks_duplicate_answers() -> None:
    import torch

    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=-1)
    a = q.clone()
    plain = answers.in_batch_loss(q, a, ["a", "b", "c"], 20.0)
    masked = answers.in_batch_loss(q, a, ["a", "a", "c"], 20.0)
    # Rows 0 and 1 are near-identical: as negatives of each other they cost a lot; as the same
    # answer they are masked and the loss nearly vanishes.
    assert masked < plain / 5
    logits = 20.0 * q @ a.T
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert plain == pytest.approx(expected.item())


# --- training end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_answers(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("answers")
    snapshot = build_dataset(str(_pairs_csv(root / "pairs.csv")), root / "snapshots")
    config = {
        "base_model": str(tiny_bert_dir),
        "epochs": 3,
        "learning_rate": 3e-3,
        "batch_size": 16,
        "warmup_ratio": 0.0,
        "num_threads": 1,
        "early_stopping_patience": None,
        "epochs_of_other_tasks": 9,  # ignored: DAG params are shared by task types
    }
    result = fine_tune(Path(snapshot["path"]), root / "model", config, root / "checkpoints")
    return {**result, "snapshot": snapshot, "config": config}


def test_fine_tune_writes_a_complete_answers_artifact(tiny_answers: dict[str, Any]) -> None:
    out = Path(tiny_answers["artifact_dir"])
    files = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "task.json",
        "answers.parquet",
        "answer_embeddings.safetensors",
        "train_config.json",
        "metrics.json",
        "README.md",
    } <= files
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert json.loads((out / "task.json").read_text())["task"] == TASK == "answers"
    assert tiny_answers["artifact_sha256"] == directory_sha256(out)
    assert tiny_answers["epochs_run"] == 3
    assert {"artifact_dir", "artifact_sha256", "base_model", "validation", "config"} <= set(
        tiny_answers
    )
    assert tiny_answers["config"]["epochs"] == 3
    validation = tiny_answers["validation"]
    assert validation["n"] == tiny_answers["snapshot"]["counts"]["validation"]
    assert PROMOTION_METRIC in validation
    assert tiny_answers["snapshot"]["hash"] in (out / "README.md").read_text()
    from safetensors.numpy import load_file

    vectors = load_file(str(out / "answer_embeddings.safetensors"))["embeddings"]
    assert vectors.shape[0] == pq.read_table(out / "answers.parquet").num_rows == 120
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_trained_tiny_model_learns_the_intents_and_evaluates(
    tiny_answers: dict[str, Any], tmp_path: Path
) -> None:
    out = Path(tiny_answers["artifact_dir"])
    test_split = Path(tiny_answers["snapshot"]["path"]) / "test.parquet"
    metrics = evaluate(out, test_split, tiny_answers["artifact_sha256"], tmp_path / "report")
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == metrics
    assert metrics["n"] == pq.read_table(test_split).num_rows > 0
    assert metrics["bank_size"] == 120 and metrics["gold_missing"] == 0
    assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p95"]
    assert 0 < metrics["latency_ms_p50_bank10k"] <= metrics["latency_ms_p95_bank10k"]
    # Storable by the registry as it is (numbers, and per_class of numbers): nothing lost.
    from ml.registry.metrics import flatten_metrics, nest_metrics

    assert nest_metrics(flatten_metrics({"test": metrics})) == {"test": metrics}
    assert set(metrics["per_class"]) <= set(TOPICS)
    assert sum(c["support"] for c in metrics["per_class"].values()) == metrics["n"]
    # Chance: 1/3 for the same-intent top answer. Three distinct reply families are easy.
    assert metrics["intent_recall_at_1"] > 0.9
    # Gold-answer MRR: far above the chance level of ~ln(120)/120.
    assert metrics[PROMOTION_METRIC] > 0.1
    json.dumps(metrics)


def test_predict_returns_ranked_answers_from_the_stored_bank(tiny_answers: dict[str, Any]) -> None:
    out = Path(tiny_answers["artifact_dir"])
    (got,) = predict(out, ["hello, where is my order 2024"], top_k=3)
    assert got["text"] == "hello, where is my order 2024"
    scores = [a["score"] for a in got["answers"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    bank = {r["answer_id"]: r for r in pq.read_table(out / "answers.parquet").to_pylist()}
    top = got["answers"][0]
    assert bank[top["answer_id"]]["answer"] == top["answer"]
    assert bank[top["answer_id"]]["intents"] == ["track_order"]
    assert predict(out, ["x"], top_k=500)[0]["answers"].__len__() == 120
    json.dumps(got)


def test_evaluate_takes_a_golden_csv_with_reply_texts(
    tiny_answers: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A golden file names replies by text; a reply the bank lacks is a counted miss."""
    out = Path(tiny_answers["artifact_dir"])
    bank = pq.read_table(out / "answers.parquet").to_pylist()
    golden = tmp_path / "golden.csv"
    with golden.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "answer"])
        writer.writerow(["where is my order 77", bank[0]["answer"].upper()])
        writer.writerow(["where is my order 78", "A reply nobody approved."])
    with caplog.at_level("INFO", logger="ml.progress"):
        metrics = evaluate(out, golden)
    assert "evaluate: 2/2 texts (100%)" in caplog.text  # ml.progress, as the CLI shows it
    assert metrics["n"] == 2 and metrics["gold_missing"] == 1
    # The first reply is found (case aside) at its rank in the whole bank; the second is a miss.
    (ranked,) = predict(out, ["where is my order 77"], top_k=len(bank))
    rank = 1 + [a["answer_id"] for a in ranked["answers"]].index(bank[0]["answer_id"])
    assert metrics["mrr"] == pytest.approx((1 / rank + 0) / 2)
    assert "per_class" not in metrics


def test_evaluate_and_predict_refuse_a_tampered_artifact(
    tiny_answers: dict[str, Any], tmp_path: Path
) -> None:
    """One reply of the stored bank changed after registration: its sha256 no longer matches."""
    import shutil

    from ml.artifact.integrity import ArtifactIntegrityError

    sha = tiny_answers["artifact_sha256"]
    copy = Path(shutil.copytree(tiny_answers["artifact_dir"], tmp_path / "copy"))
    assert predict(copy, ["hi"], expected_sha256=sha)[0]["answers"]  # intact: loads
    bank = pq.read_table(copy / "answers.parquet").to_pylist()
    bank[0]["answer"] = "Send your card number to this address."
    pq.write_table(pa.Table.from_pylist(bank), copy / "answers.parquet")
    test_split = Path(tiny_answers["snapshot"]["path"]) / "test.parquet"
    with pytest.raises(ArtifactIntegrityError, match=f"expected sha256 {sha}"):
        evaluate(copy, test_split, sha)
    with pytest.raises(ArtifactIntegrityError, match=f"expected sha256 {sha}"):
        predict(copy, ["hi"], expected_sha256=sha)


def test_resume_from_a_checkpoint_continues_to_the_same_model(
    tiny_answers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies in epoch 2 (after epoch 1's checkpoint) is retried: it resumes there
    and ends with the same weights and bank embeddings as the uninterrupted run."""
    snapshot = Path(tiny_answers["snapshot"]["path"])
    config = tiny_answers["config"]
    checkpoints = tmp_path / "checkpoints"
    validate = answers._validate
    calls = 0

    def dies_in_epoch_two(*args: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt("worker killed")
        return validate(*args)

    monkeypatch.setattr(answers, "_validate", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(snapshot, tmp_path / "model", config, checkpoints)
    assert [p.name for p in checkpoints.glob("epoch-*")] == ["epoch-001"]
    assert not (tmp_path / "model").exists()
    monkeypatch.setattr(answers, "_validate", validate)
    resumed = fine_tune(snapshot, tmp_path / "model", config, checkpoints)
    assert resumed["epochs_run"] == 3

    from safetensors.numpy import load_file

    full = Path(tiny_answers["artifact_dir"])
    for name in ("model.safetensors", "answer_embeddings.safetensors"):
        a, b = load_file(str(full / name)), load_file(str(tmp_path / "model" / name))
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")


def test_fine_tune_refuses_an_empty_bank(tiny_answers: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    snapshot = tmp_path / "snap"
    shutil.copytree(tiny_answers["snapshot"]["path"], snapshot)
    table = pq.read_table(snapshot / "answers.parquet")
    pq.write_table(table.slice(0, 0), snapshot / "answers.parquet")
    with pytest.raises(EmptyBankError, match="answers.parquet is empty"):
        fine_tune(snapshot, tmp_path / "model", tiny_answers["config"])


@pytest.mark.slow
def test_real_minilm_trains_end_to_end_in_a_few_steps(
    tiny_answers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packaged MiniLM-L6 trains a few steps end to end (< 60 s on 2 cores)."""
    snapshot = Path(tiny_answers["snapshot"]["path"])
    config = {"base_model": default_base_model(), "max_steps": 6, "epochs": 1, "num_threads": 2}
    config |= {"batch_size": 16, "answer_max_length": 32}
    result = fine_tune(snapshot, tmp_path / "minilm", config)
    monkeypatch.setattr(answers, "LATENCY_SAMPLES", 5)  # timing is bench's job, not this test's
    metrics = evaluate(Path(result["artifact_dir"]), snapshot / "test.parquet")
    # all-MiniLM-L6 is a sentence encoder: the intent of each reply family is obvious to it.
    assert metrics["intent_recall_at_1"] > 0.9
    assert not math.isnan(result["train_loss"]) and result["train_loss"] > 0

"""ml.tasks.answers' training and serving: the in-batch loss and validation bank, then real
bi-encoder training (tiny BERT; MiniLM for a few steps) through build_dataset → fine_tune →
evaluate → predict, a tampered artifact refused, and resume from a checkpoint."""

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
from answer_pairs import TOPICS, pairs_csv

from ml.artifact.integrity import PICKLE_SUFFIXES, directory_sha256
from ml.config import default_base_model
from ml.tasks.answers import (
    PROMOTION_METRIC,
    TASK,
    build_dataset,
    evaluate,
    fine_tune,
    predict,
)
from ml.tasks.answers import evaluation as answers_evaluation
from ml.tasks.answers import train as answers_train
from ml.tasks.answers.bank import EmptyBankError, answer_id, build_bank
from ml.tasks.answers.train import in_batch_loss, validation_bank


def test_in_batch_loss_masks_duplicate_answers() -> None:
    import torch

    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=-1)
    a = q.clone()
    plain = in_batch_loss(q, a, ["a", "b", "c"], 20.0)
    masked = in_batch_loss(q, a, ["a", "a", "c"], 20.0)
    # Rows 0 and 1 are near-identical: as negatives of each other they cost a lot; as the same
    # answer they are masked and the loss nearly vanishes.
    assert masked < plain / 5
    logits = 20.0 * q @ a.T
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert plain == pytest.approx(expected.item())


def test_validation_bank_keeps_every_gold_answer_and_a_fixed_sample() -> None:
    pairs = [{"answer_id": answer_id(f"r{i}"), "answer": f"r{i}", "intent": "x"} for i in range(50)]
    bank = build_bank(pairs)
    rows = {"answer_id": [answer_id("r3"), answer_id("r40"), answer_id("r3")]}
    small = validation_bank(rows, bank, 10)
    ids = small["answer_id"].to_pylist()
    assert len(ids) == 10 and {answer_id("r3"), answer_id("r40")} <= set(ids)
    assert validation_bank(rows, bank, 10).equals(small)  # same sample every epoch
    assert validation_bank(rows, bank, None).num_rows == 50
    assert validation_bank(rows, bank, 500).num_rows == 50


@pytest.fixture(scope="module")
def tiny_answers(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("answers")
    snapshot = build_dataset(str(pairs_csv(root / "pairs.csv")), root / "snapshots")
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
    card = (out / "README.md").read_text()
    assert tiny_answers["snapshot"]["hash"] in card
    from ml.artifact.card import card_results

    results = card_results(card)  # the model-index: validation and the test questions
    assert results["validation"]["mrr"] == validation["mrr"]
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert results["test"]["mrr"] == test["mrr"] and test["n"] > 0
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
    from ml.registry.store import flatten_metrics, nest_metrics

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
    validate = answers_train._validate
    calls = 0

    def dies_in_epoch_two(*args: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt("worker killed")
        return validate(*args)

    monkeypatch.setattr(answers_train, "_validate", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(snapshot, tmp_path / "model", config, checkpoints)
    [saved] = checkpoints.glob("checkpoint-*")
    assert json.loads((saved / "trainer_state.json").read_text())["epoch"] == 1
    assert not (tmp_path / "model").exists()
    monkeypatch.setattr(answers_train, "_validate", validate)
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
    monkeypatch.setattr(
        answers_evaluation, "LATENCY_SAMPLES", 5
    )  # timing is bench's job, not this test's
    metrics = evaluate(Path(result["artifact_dir"]), snapshot / "test.parquet")
    # all-MiniLM-L6 is a sentence encoder: the intent of each reply family is obvious to it.
    assert metrics["intent_recall_at_1"] > 0.9
    assert not math.isnan(result["train_loss"]) and result["train_loss"] > 0

import dataclasses
import hashlib
import json
import logging
import math
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from processes import read_until

from ml.artifact.integrity import PICKLE_SUFFIXES, directory_sha256
from ml.config import default_base_model
from ml.tasks.intent.model import Classifier
from ml.tasks.intent.train import TrainConfig, fine_tune

MakeSnapshot = Callable[..., Path]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_bert_trains_and_writes_a_complete_artifact(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=12)
    out = tmp_path / "artifacts" / "model"

    result = fine_tune(snapshot, out, tiny_train_config)

    files = {p.name for p in out.iterdir()}
    expected = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
    expected |= {"labels.json", "train_config.json", "metrics.json", "README.md"}
    assert expected <= files
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert not list(out.parent.glob(".*partial*")), "staging directory left behind"

    labels = ["lost_card", "password_reset", "refund_request"]
    assert json.loads((out / "labels.json").read_text()) == labels
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}

    snap = json.loads((snapshot / "snapshot.json").read_text())
    card = (out / "README.md").read_text()
    assert snap["hash"] in card
    assert "Date window: none (from a file)" in card  # lake windows: test_cli's lineage test
    assert all(label in card for label in labels)
    assert "truncated" in card
    # The model-index metadata carries validation and test metrics (the Hub's format).
    from ml.artifact.card import card_results

    results = card_results(card)
    assert results["validation"]["accuracy"] == result["validation"]["accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert results["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert metrics["test"]["n"] > 0

    train_config = json.loads((out / "train_config.json").read_text())
    assert train_config["snapshot_hash"] == snap["hash"]
    assert train_config["base_model"] == result["base_model"]
    assert train_config["num_threads"] == 1
    assert train_config["learning_rate"] == tiny_train_config.learning_rate

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"] == result["validation"]
    assert metrics["epochs_run"] == tiny_train_config.epochs
    assert len(metrics["history"]) == tiny_train_config.epochs
    assert metrics["train_loss"] > 0 and metrics["samples_per_second"] > 0

    assert result["artifact_dir"] == str(out)
    assert result["artifact_sha256"] == directory_sha256(out)
    assert result["labels"] == labels
    assert result["epochs_run"] == tiny_train_config.epochs
    assert result["samples_per_second"] > 0 and result["wall_seconds"] > 0
    assert set(result["validation"]) >= {"accuracy", "macro_f1", "weighted_f1", "n", "per_class"}


def test_tiny_bert_learns_and_tolerates_unseen_validation_labels(
    tiny_artifact: dict[str, Any],
) -> None:
    validation = tiny_artifact["validation"]
    # 4 intents in validation (one unknown to the model): chance is about 0.25.
    assert validation["accuracy"] > 0.5
    assert validation["per_class"]["other"]["support"] > 0
    assert validation["per_class"]["other"]["f1"] == 0.0


def test_same_seed_same_model(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=8)
    config = dataclasses.replace(tiny_train_config, epochs=2)
    a = fine_tune(snapshot, tmp_path / "a", config)
    b = fine_tune(snapshot, tmp_path / "b", config)
    fine_tune(snapshot, tmp_path / "c", dataclasses.replace(config, seed=7))

    assert a["validation"] == b["validation"]
    weights = [_sha(tmp_path / name / "model.safetensors") for name in "abc"]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]


def test_max_steps_stops_early(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    result = fine_tune(
        make_snapshot(n_per_label=16),  # 48 examples: 6 steps an epoch at batch 8
        tmp_path / "model",
        dataclasses.replace(tiny_train_config, epochs=10, max_steps=8),
    )
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["steps"] == 8
    assert result["epochs_run"] == 2


def test_single_label_is_refused(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(labels=["lost_card"])
    with pytest.raises(ValueError, match="at least 2"):
        fine_tune(snapshot, tmp_path / "model", tiny_train_config)
    assert not (tmp_path / "model").exists()


def test_empty_train_split_is_refused(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=0)
    with pytest.raises(ValueError, match="empty"):
        fine_tune(snapshot, tmp_path / "model", tiny_train_config)


@pytest.mark.parametrize("problem", ["missing", "not_a_checkpoint", "no_classifier"])
def test_bad_base_model_is_refused(
    problem: str, make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    if problem != "missing":
        base.mkdir()
    if problem == "no_classifier":
        # A real config for an architecture with no sequence-classification head.
        from transformers import CLIPVisionConfig

        CLIPVisionConfig().save_pretrained(base)
        (base / "model.safetensors").write_bytes(b"")
    config = dataclasses.replace(tiny_train_config, base_model=str(base))
    with pytest.raises(ValueError, match="base model"):
        fine_tune(make_snapshot(), tmp_path / "model", config)


def _add_train_rows(snapshot: Path, rows: list[dict[str, str]]) -> None:
    path = snapshot / "train.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)]), path)


def test_label_with_one_example_is_trained_with_a_warning(
    make_snapshot: MakeSnapshot,
    tiny_train_config: TrainConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = make_snapshot(n_per_label=8)
    _add_train_rows(
        snapshot, [{"conversation_id": "r1", "text": "close my account", "intent": "close"}]
    )
    with caplog.at_level(logging.WARNING, logger="ml.tasks.intent.train"):
        result = fine_tune(snapshot, tmp_path / "model", replace(tiny_train_config, max_steps=2))
    assert "close" in result["labels"]
    assert "fewer than 5 train examples {'close': 1}" in caplog.text
    assert "`close` (1)" in (tmp_path / "model" / "README.md").read_text()


def test_text_longer_than_the_model_maximum_is_truncated(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    # The tiny BERT has 128 positions; untruncated, these would fail in the embedding lookup.
    long_text = " ".join(["lost card please"] * 2000)
    snapshot = make_snapshot(n_per_label=8)
    _add_train_rows(snapshot, [{"conversation_id": "l1", "text": long_text, "intent": "lost_card"}])
    config = replace(tiny_train_config, max_length=4096, max_steps=2)
    result = fine_tune(snapshot, tmp_path / "model", config)
    assert result["config"]["max_length"] == 128  # capped at max_position_embeddings
    [prediction] = Classifier.load(tmp_path / "model").predict([long_text])
    assert prediction.label in result["labels"]


def test_non_empty_out_dir_is_refused(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    with pytest.raises(FileExistsError):
        fine_tune(make_snapshot(), out, tiny_train_config)

    (out / "old.txt").unlink()  # an existing empty directory is fine
    config = dataclasses.replace(tiny_train_config, max_steps=1)
    assert fine_tune(make_snapshot(), out, config)["artifact_dir"] == str(out)


@pytest.mark.slow
def test_minilm_fine_tunes_above_chance(make_snapshot: MakeSnapshot, tmp_path: Path) -> None:
    labels = ["lost_card", "refund_request", "password_reset", "delivery_delay"]
    snapshot = make_snapshot(labels=labels, n_per_label=40)
    config = TrainConfig(
        base_model=default_base_model(), batch_size=16, max_steps=10, learning_rate=1e-4
    )
    result = fine_tune(snapshot, tmp_path / "model", config)

    assert result["base_model"] == str(Path(default_base_model()).absolute())
    assert result["validation"]["accuracy"] > 1 / len(labels) + 0.2


# --- early stopping, accumulation, checkpoints ------------------------------------------------


def test_early_stopping_keeps_the_best_epoch(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    # A learning rate far below float32's resolution leaves the weights as they are, so epoch 2
    # never improves on epoch 1 and patience 1 stops there (0 itself is not a valid setting).
    config = replace(tiny_train_config, learning_rate=1e-30, early_stopping_patience=1)
    result = fine_tune(make_snapshot(n_per_label=8), tmp_path / "model", config)
    assert (result["epochs_run"], result["best_epoch"]) == (2, 1)


def test_a_validation_split_of_labels_the_model_lacks_keeps_the_last_epoch(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    # No validation row has a label from train: no loss to choose an epoch by.
    snapshot = make_snapshot(n_per_label=8)
    path = snapshot / "validation.parquet"
    table = pq.read_table(path)
    unknown = pa.array(["never_trained"] * table.num_rows, table.schema.field("intent").type)
    pq.write_table(
        table.set_column(table.schema.get_field_index("intent"), "intent", unknown), path
    )
    result = fine_tune(snapshot, tmp_path / "model", replace(tiny_train_config, epochs=3))
    assert (result["epochs_run"], result["best_epoch"]) == (3, 3)
    assert result["validation"]["loss"] is None and result["validation"]["accuracy"] == 0.0
    assert "the kept epoch's measure): n/a" in (tmp_path / "model" / "README.md").read_text()


def test_label_smoothing_reaches_the_trainers_loss_and_training(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    import torch
    from transformers.trainer_pt_utils import LabelSmoother

    from ml.training.loop import LoopTask, training_arguments

    # The Trainer's smoother, at the factor train_epochs sets from label_smoothing: a
    # confident, correct prediction over 3 labels gives ~0 loss with hard targets; smoothing
    # 0.3 targets (0.8, 0.1, 0.1), whose cross-entropy is 0.1 * 20 * 2 = 4 (+ ~0).
    task = LoopTask(collate=list, validate=dict, metric="accuracy")
    factor = training_arguments(
        replace(tiny_train_config, label_smoothing=0.3), tmp_path / "args", task, 8, False
    ).label_smoothing_factor
    logits, target = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])
    assert LabelSmoother(0.0)({"logits": logits}, target).item() < 1e-6
    assert LabelSmoother(factor)({"logits": logits}, target).item() == pytest.approx(4.0, abs=1e-3)
    # Same seed, same batches: only the targets differ, so the weights must too.
    snapshot = make_snapshot(n_per_label=8)
    hard = replace(tiny_train_config, label_smoothing=0.0, max_steps=2)
    fine_tune(snapshot, tmp_path / "hard", hard)
    soft = fine_tune(snapshot, tmp_path / "soft", replace(hard, label_smoothing=0.5))
    assert soft["config"]["label_smoothing"] == 0.5
    assert _sha(tmp_path / "hard" / "model.safetensors") != _sha(
        tmp_path / "soft" / "model.safetensors"
    )


def test_gradient_accumulation_takes_fewer_optimizer_steps(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=16)
    plain = replace(tiny_train_config, epochs=1)
    one = fine_tune(snapshot, tmp_path / "a", plain)
    two = fine_tune(snapshot, tmp_path / "b", replace(plain, gradient_accumulation_steps=2))
    steps = [
        json.loads(Path(r["artifact_dir"], "metrics.json").read_text())["steps"] for r in (one, two)
    ]
    assert steps[1] == math.ceil(steps[0] / 2)


RESUME_SCRIPT = """
import json, logging, sys
from pathlib import Path
from ml.tasks.intent.train import TrainConfig, fine_tune
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
config = TrainConfig(**json.loads(sys.argv[1]))
fine_tune(Path(sys.argv[2]), Path(sys.argv[3]), config, Path(sys.argv[4]))
"""


def test_killed_training_resumes_from_its_checkpoint_and_ends_with_the_same_model(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    """SIGKILL a real training process after its second checkpoint; the retry resumes there."""
    snapshot = make_snapshot(n_per_label=24)
    config = replace(tiny_train_config, epochs=8)
    args = json.dumps(dataclasses.asdict(config))

    def run(out: Path, checkpoints: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", RESUME_SCRIPT, args, str(snapshot), str(out), str(checkpoints)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    checkpoints = tmp_path / "ckpt"
    victim = run(tmp_path / "killed", checkpoints)
    # Killed once its second checkpoint is complete (logged after the checkpoint's rename).
    read_until(victim, "written (epoch-002)")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed").exists()  # no half-written artifact

    retry = run(tmp_path / "killed", checkpoints)
    out, _ = retry.communicate()
    assert retry.returncode == 0, out
    assert "resuming from" in out and "epoch 1/8" not in out.split("resuming from")[1]

    straight = run(tmp_path / "straight", tmp_path / "ckpt-straight")
    out_straight, _ = straight.communicate()
    assert straight.returncode == 0, out_straight
    # Same data, seed and restored RNG/optimizer state: the resumed run ends with the very
    # weights of an uninterrupted one.
    weights = [tmp_path / run / "model.safetensors" for run in ("killed", "straight")]
    assert _sha(weights[0]) == _sha(weights[1])


def test_trainer_args_reach_the_run_and_are_recorded(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=8)
    plain = replace(tiny_train_config, max_steps=3)
    fine_tune(snapshot, tmp_path / "plain", plain)
    extra = {"lr_scheduler_type": "constant", "adam_beta2": 0.9}
    fine_tune(snapshot, tmp_path / "extra", replace(plain, trainer_args=extra))
    recorded = json.loads((tmp_path / "extra" / "train_config.json").read_text())
    assert recorded["trainer_args"] == extra
    assert _sha(tmp_path / "plain" / "model.safetensors") != _sha(
        tmp_path / "extra" / "model.safetensors"
    )

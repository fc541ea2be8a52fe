"""The entities task's training: a real (tiny BERT) training through the CLI and the retrain
steps, resume from a checkpoint, and a config whose recorded settings are the applied ones."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ml.tasks import entities
from ml.tasks.entities.spans import ENTITY_TYPES


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
    assert set(test["per_class"]) <= set(ENTITY_TYPES) and test["n"] > 20
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
        assert span["type"] in ENTITY_TYPES
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
    """ml.training.loop's checkpoints serve token classification too: a retried training that
    finds epoch 1's checkpoint (killed in epoch 2) resumes there and ends with the same weights."""
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
    # A kill in epoch 2 leaves epoch 1's checkpoint: a copy of the folder as it was then.
    from ml.training import loop

    saved, after_epoch_1 = loop._Checkpointed.on_save, tmp_path / "after-epoch-1"

    def save_and_copy_the_first(self: Any, args: Any, state: Any, *rest: Any, **kw: Any) -> None:
        saved(self, args, state, *rest, **kw)
        if round(state.epoch) == 1:
            shutil.copytree(args.output_dir, after_epoch_1)

    monkeypatch.setattr(loop._Checkpointed, "on_save", save_and_copy_the_first)
    first = entities.fine_tune(snap, tmp_path / "a", config, tmp_path / "ckpt")
    assert first["epochs_run"] == 2 and after_epoch_1.is_dir()
    monkeypatch.setattr(loop._Checkpointed, "on_save", saved)
    with caplog.at_level("INFO", logger="ml.training.loop"):
        again = entities.fine_tune(snap, tmp_path / "b", config, after_epoch_1)
    assert "resuming from" in caplog.text and "(epoch 1, step" in caplog.text
    assert "written (epoch-002)" in caplog.text, "epoch 2 ran again, after the resume"
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("a", "b")]
    assert weights[0] == weights[1]
    assert again["validation"] == first["validation"]


def test_entities_config_takes_its_own_settings_and_ignores_others() -> None:
    from ml.tasks.entities.train import TrainConfig

    # Intent's label smoothing and the DAG's window are other settings: not entities'.
    params = {"label_smoothing": 0.3, "window_days": 7, "max_length": 64, "seed": None}
    assert TrainConfig.from_params(params) == TrainConfig(max_length=64)
    assert "label_smoothing" not in {f.name for f in fields(TrainConfig)}
    assert TrainConfig().epochs == 3  # the tagger's default, as the entities DAG's form


def test_a_recorded_setting_is_the_applied_one(
    tiny_bert_dir: Path, tmp_path: Path, write_bitext: Any
) -> None:
    """train_config.json records the entities config and nothing else; training again with the
    recorded settings gives the same model, and changing a recorded setting changes it."""
    from ml.tasks.entities.model import Tagger
    from ml.tasks.entities.train import TrainConfig

    source = tmp_path / "bitext.csv"
    write_bitext(source, 90, broken=False)
    snap = Path(entities.build_dataset(str(source), tmp_path / "snaps")["path"])
    config = {
        "base_model": str(tiny_bert_dir),
        "epochs": 1,
        "max_steps": 2,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "num_threads": 1,
    }

    def train(name: str, **changes: Any) -> tuple[dict[str, Any], bytes]:
        out = tmp_path / name
        entities.fine_tune(snap, out, {**config, **changes})
        recorded = json.loads((out / "train_config.json").read_text())
        return recorded, (out / "model.safetensors").read_bytes()

    recorded, weights = train("first")
    lineage = {"snapshot_hash", "versions"}  # what the artifact came from, not a setting
    assert set(recorded) - lineage == {f.name for f in fields(TrainConfig)}
    assert "label_smoothing" not in recorded
    card = (tmp_path / "first" / "README.md").read_text()
    assert "label_smoothing" not in card and f"- max_length: {recorded['max_length']}" in card

    again, same = train("again", **{k: recorded[k] for k in set(recorded) - lineage})
    assert (again, same) == (recorded, weights)
    for setting, value in (("seed", 7), ("max_length", 8), ("gradient_accumulation_steps", 2)):
        changed, other = train(setting, **{setting: value})
        assert changed[setting] == value and other != weights, setting
    assert Tagger.load(tmp_path / "max_length").max_length == 8

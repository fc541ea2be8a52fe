"""The optimised CPU form an artifact carries (ml.artifact.optimised): written by training inside
the folder the registry hashes, so the recorded sha256 covers it; optional, and never the cause
of a failed training."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml.artifact.integrity import ArtifactIntegrityError, directory_sha256
from ml.artifact.optimised import ONNX_FILE


@pytest.fixture
def train(
    tiny_train_config: Any, make_snapshot: Callable[..., Path], tmp_path: Path
) -> Callable[[str], dict[str, Any]]:
    """train(name) -> fine_tune's result for a one-epoch tiny intent model."""
    from ml.tasks.intent.train import fine_tune

    snapshot = make_snapshot(n_per_label=8)
    config = dataclasses.replace(tiny_train_config, epochs=1)

    def run(name: str) -> dict[str, Any]:
        return fine_tune(snapshot, tmp_path / name, config)

    return run


def test_training_writes_the_onnx_form_inside_the_hashed_artifact(
    train: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ml.serving.runtime import ONNX_INT8, OnnxModel, use_runtime
    from ml.tasks.intent import load, predict_loaded

    monkeypatch.setenv("INTENTFLOW_ONNX_EXPORT", "on")
    result = train("with-onnx")
    artifact = Path(result["artifact_dir"])
    assert (artifact / ONNX_FILE).is_file()
    # The hash fine_tune reports (what register records) is the folder's, ONNX file included.
    assert result["artifact_sha256"] == directory_sha256(artifact)
    loaded = load(artifact, result["artifact_sha256"])
    torch_answers = predict_loaded(loaded, ["lost card", "refund please"], 2)
    assert use_runtime(loaded, artifact, ONNX_INT8, 1) == ONNX_INT8
    assert isinstance(loaded.model, OnnxModel)
    onnx_answers = predict_loaded(loaded, ["lost card", "refund please"], 2)
    for a, b in zip(torch_answers, onnx_answers, strict=True):
        assert abs(a["probability"] - b["probability"]) < 0.05

    # Changed after registration: the artifact no longer loads against its recorded hash.
    tampered = tmp_path / "tampered"
    shutil.copytree(artifact, tampered)
    with (tampered / ONNX_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match its recorded hash"):
        load(tampered, result["artifact_sha256"])


def test_switched_off_the_artifact_has_none_and_is_served_by_torch(
    train: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.serving.runtime import ONNX_INT8, TORCH, use_runtime
    from ml.tasks.intent import load

    monkeypatch.setenv("INTENTFLOW_ONNX_EXPORT", "off")
    artifact = Path(train("without-onnx")["artifact_dir"])
    assert not (artifact / ONNX_FILE).exists()
    assert use_runtime(load(artifact), artifact, ONNX_INT8, 1) == TORCH


def test_a_failed_export_leaves_no_file_and_training_goes_on(
    train: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.artifact import optimised

    def broken(path: Path, *_: object) -> None:
        path.write_bytes(b"half a graph")
        raise RuntimeError("the exporter cannot trace this architecture")

    monkeypatch.setenv("INTENTFLOW_ONNX_EXPORT", "on")
    monkeypatch.setattr(optimised, "_export", broken)
    result = train("export-failed")
    assert not (Path(result["artifact_dir"]) / ONNX_FILE).exists()


def test_out_of_scope_scores_on_the_onnx_form_and_mahalanobis_keeps_torch(
    tiny_train_config: Any,
    make_snapshot: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The default out-of-scope score (energy) needs logits only: the ONNX graph gives them,
    close to torch's. Mahalanobis needs the encoder's hidden states, which the graph does not
    give: such an artifact is served by torch (ml.tasks.intent.out_of_scope)."""
    from ml.serving.runtime import ONNX_INT8, TORCH, use_runtime
    from ml.tasks.intent import load, predict_loaded
    from ml.tasks.intent.train import fine_tune

    monkeypatch.setenv("INTENTFLOW_ONNX_EXPORT", "on")
    snapshot = make_snapshot(n_per_label=8)
    config = dataclasses.replace(tiny_train_config, epochs=1)
    texts = ["lost card", "refund please"]

    energy = Path(fine_tune(snapshot, tmp_path / "energy", config)["artifact_dir"])
    loaded = load(energy)
    by_torch = predict_loaded(loaded, texts, 2)
    assert use_runtime(loaded, energy, ONNX_INT8, 1) == ONNX_INT8
    for a, b in zip(by_torch, predict_loaded(loaded, texts, 2), strict=True):
        assert abs(a["oos_score"] - b["oos_score"]) < 0.1
        assert a["oos_threshold"] == b["oos_threshold"]

    maha_config = dataclasses.replace(config, oos_method="mahalanobis")
    maha = Path(fine_tune(snapshot, tmp_path / "maha", maha_config)["artifact_dir"])
    assert (maha / ONNX_FILE).is_file()
    loaded = load(maha)
    assert use_runtime(loaded, maha, ONNX_INT8, 1) == TORCH
    assert all(p["oos_score"] is not None for p in predict_loaded(loaded, texts, 2))

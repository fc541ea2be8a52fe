"""Temperature scaling (ml.training.calibration) on synthetic logits with a known temperature, and the
temperature's path through a trained artifact: calibration.json, metrics.json, the model card,
Classifier, evaluate_model and the artifact hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.artifact.integrity import ArtifactIntegrityError, directory_sha256
from ml.tasks.intent.evaluation import evaluate_model, read_labeled
from ml.tasks.intent.model import Classifier
from ml.training.calibration import (
    CALIBRATION_FILE,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    calibration_record,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    read_temperature,
    softmax,
)


def _calibrated_data(n: int = 4000, k: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated at T = 1 by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, k))
    probs = softmax(logits).astype(np.float64)
    cumulative = probs.cumsum(axis=1)
    labels = (rng.random((n, 1)) > cumulative).sum(axis=1).clip(0, k - 1)
    return logits, labels


@pytest.mark.parametrize("scale", [0.3, 2.5])
def test_fit_recovers_a_known_temperature_and_reduces_nll_and_ece(scale: float) -> None:
    # A model whose logits are the true ones times `scale`: T = scale undoes it. 0.3 is the
    # issue's case (flat, under-confident: label smoothing, early epochs), 2.5 over-confident.
    true_logits, labels = _calibrated_data()
    logits = true_logits * scale

    fit = fit_temperature(logits, labels)

    assert fit["temperature"] == pytest.approx(scale, rel=0.08)
    assert fit["limited_by"] is None and fit["n"] == len(labels)
    t = fit["temperature"]
    assert negative_log_likelihood(logits, labels, t) < negative_log_likelihood(logits, labels, 1)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    assert before > 0.1 and after < 0.03
    # Scaling never changes a prediction.
    assert (softmax(logits, t).argmax(axis=1) == logits.argmax(axis=1)).all()


def test_no_validation_errors_stop_at_the_rule_of_succession_not_at_zero() -> None:
    # 30 rows, all right, flat logits: the NLL keeps falling as T -> 0.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=30)
    logits = rng.normal(0.0, 0.1, size=(30, 5))
    logits[np.arange(30), labels] += 1.0

    fit = fit_temperature(logits, labels)

    assert fit["limited_by"] == "confidence_cap"
    assert MIN_TEMPERATURE < fit["temperature"] < 1.0
    confidence = softmax(logits, fit["temperature"]).max(axis=1).mean()
    assert confidence == pytest.approx(31 / 32, abs=1e-6)


def test_hopeless_logits_hit_the_upper_bound() -> None:
    # Confident and always wrong: the fit flattens as far as it may.
    logits = np.tile([5.0, 0.0, 0.0], (20, 1))
    fit = fit_temperature(logits, np.ones(20, dtype=np.int64))
    assert fit == {"temperature": pytest.approx(MAX_TEMPERATURE), "n": 20, "limited_by": "bounds"}


def test_unknown_labels_are_left_out_of_the_fit_and_no_rows_mean_t_1() -> None:
    true_logits, labels = _calibrated_data(n=2000, seed=2)
    logits = true_logits * 0.5
    unknown = np.full(500, -1)
    noise = np.random.default_rng(3).normal(0, 10, size=(500, logits.shape[1]))
    with_unknown = fit_temperature(np.vstack([logits, noise]), np.concatenate([labels, unknown]))
    assert with_unknown == fit_temperature(logits, labels)
    assert fit_temperature(noise, unknown)["temperature"] == 1.0
    record = calibration_record(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    assert record["temperature"] == 1.0 and record["n"] == 0


def test_read_temperature_defaults_to_1_and_names_a_bad_file(tmp_path: Path) -> None:
    assert read_temperature(tmp_path) == 1.0  # an artifact made before calibration
    path = tmp_path / CALIBRATION_FILE
    path.write_text('{"temperature": 0.5}')
    assert read_temperature(tmp_path) == 0.5
    for bad in ('{"temperature": 0}', '{"temperature": "hot"}', '{"t": 1}', "{not json"):
        path.write_text(bad)
        with pytest.raises(ArtifactIntegrityError, match=f"{CALIBRATION_FILE}.*'temperature'"):
            read_temperature(tmp_path)


# --- through a trained artifact ------------------------------------------------------------------


def test_training_stores_the_temperature_in_the_artifact(tiny_artifact: dict[str, Any]) -> None:
    out = Path(tiny_artifact["artifact_dir"])
    stored = json.loads((out / CALIBRATION_FILE).read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["calibration"] == stored
    assert stored["fitted_on"] == "validation" and stored["n"] > 0
    assert MIN_TEMPERATURE <= stored["temperature"] <= MAX_TEMPERATURE
    assert stored["temperature"] != pytest.approx(1.0, abs=1e-3)  # label smoothing: not 1
    fit = stored["validation"]
    assert set(fit) == {"nll_uncalibrated", "nll", "ece_uncalibrated", "ece"}
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and f"T = {stored['temperature']:.4f}" in card
    assert f"{fit['ece']:.4f} calibrated" in card


def test_evaluate_and_predict_use_the_stored_temperature(tiny_artifact: dict[str, Any]) -> None:
    out = Path(tiny_artifact["artifact_dir"])
    t = read_temperature(out)
    classifier = Classifier.load(out, tiny_artifact["artifact_sha256"])
    texts, intents, _ = read_labeled(tiny_artifact["snapshot_dir"])
    logits = classifier.logits(texts)

    assert classifier.temperature == t
    np.testing.assert_allclose(classifier.predict_proba(texts), softmax(logits, t), atol=1e-6)
    assert not np.allclose(classifier.predict_proba(texts), softmax(logits), atol=1e-3)

    m = evaluate_model(out, tiny_artifact["snapshot_dir"], tiny_artifact["artifact_sha256"])
    index = {label: i for i, label in enumerate(classifier.labels)}
    true_ids = np.array([index.get(y, -1) for y in intents])
    assert m["temperature"] == t
    assert m["ece"] == pytest.approx(expected_calibration_error(softmax(logits, t), true_ids))
    assert m["ece_uncalibrated"] == pytest.approx(
        expected_calibration_error(softmax(logits), true_ids)
    )
    assert m["ece"] != pytest.approx(m["ece_uncalibrated"])


def test_the_hash_covers_the_temperature_and_old_artifacts_load_with_t_1(
    tiny_artifact: dict[str, Any], tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(tiny_artifact["artifact_dir"], tmp_path / "copy"))
    path = copy / CALIBRATION_FILE
    path.write_text(path.read_text().replace('"temperature": ', '"temperature": 1'))
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        Classifier.load(copy, tiny_artifact["artifact_sha256"])

    path.unlink()  # as written before calibration existed
    old = Classifier.load(copy, directory_sha256(copy))
    assert old.temperature == 1.0
    texts = ["lost card please", "refund today"]
    np.testing.assert_allclose(old.predict_proba(texts), softmax(old.logits(texts)), atol=1e-6)

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from ml.artifact.integrity import ArtifactIntegrityError
from ml.tasks.intent.evaluation import evaluate_model
from ml.tasks.intent.metrics import classification_metrics, confusion_matrix, top_k_accuracy
from ml.tasks.intent.model import Classifier, Prediction
from ml.tasks.intent.out_of_scope import OUT_OF_SCOPE
from ml.training.calibration import expected_calibration_error

# --- classification_metrics, by hand ---------------------------------------------------------


def test_metrics_hand_computed() -> None:
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "a", "c"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])

    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: tp 2, predicted 3, support 3 -> p 2/3, r 2/3, f1 2/3
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    # b: tp 1, predicted 2, support 2 -> p 1/2, r 1/2, f1 1/2
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(1.0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)


def test_metrics_label_unseen_in_training_and_class_never_predicted() -> None:
    # "z" is not among the model's labels; "c" is a label the model never predicts.
    y_true = ["a", "b", "c", "z"]
    y_pred = ["a", "b", "a", "b"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])

    assert list(m["per_class"]) == ["a", "b", "c", "z"]
    assert m["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["accuracy"] == pytest.approx(0.5)
    # a: p 1/2 r 1 f1 2/3; b: p 1/2 r 1 f1 2/3; c and z: 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 4)
    assert not any(np.isnan(v["precision"]) for v in m["per_class"].values())


def test_metrics_label_absent_from_test_set_is_left_out_of_macro() -> None:
    m = classification_metrics(["a", "b"], ["a", "b"], ["a", "b", "rare"])
    assert m["per_class"]["rare"]["support"] == 0
    assert m["macro_f1"] == 1.0


def test_metrics_empty_and_mismatched() -> None:
    m = classification_metrics([], [], ["a", "b"])
    assert m["n"] == 0 and m["accuracy"] == 0.0 and m["macro_f1"] == 0.0
    with pytest.raises(ValueError):
        classification_metrics(["a"], [], ["a"])


# --- the tiny trained model ------------------------------------------------------------------


def test_evaluate_model_on_snapshot_and_on_a_parquet_file(tiny_artifact: dict[str, Any]) -> None:
    artifact, snapshot = Path(tiny_artifact["artifact_dir"]), tiny_artifact["snapshot_dir"]
    n_test = pq.read_metadata(snapshot / "test.parquet").num_rows

    m = evaluate_model(artifact, snapshot, expected_sha256=tiny_artifact["artifact_sha256"])
    assert m["n"] == n_test
    # The figures are the test split's, scored by the classifier's own best in-scope intent
    # (accuracy is closed-set; the out-of-scope figures are oos_metrics', tested on their own).
    test = pq.read_table(snapshot / "test.parquet").to_pydict()
    predicted = [p.in_scope_label for p in Classifier.load(artifact).predict(test["text"])]
    hits = [p == t for p, t in zip(predicted, test["intent"], strict=True)]
    assert m["accuracy"] == pytest.approx(sum(hits) / n_test)
    by_hand = classification_metrics(test["intent"], predicted, tiny_artifact["labels"])
    assert m["macro_f1"] == pytest.approx(by_hand["macro_f1"])
    assert m["per_class"] == by_hand["per_class"]
    assert m["per_class"]["other"]["recall"] == 0.0  # never seen in training: always a miss
    # Each seen label's own words are in its texts: the tiny model learns them.
    seen = [h for h, t in zip(hits, test["intent"], strict=True) if t != "other"]
    assert sum(seen) / len(seen) > 0.9
    assert m["latency_ms_p50"] > 0

    same = evaluate_model(artifact, snapshot / "test.parquet")
    assert same["accuracy"] == m["accuracy"] and same["per_class"] == m["per_class"]


def test_classifier_predicts_probabilities(tiny_artifact: dict[str, Any]) -> None:
    clf = Classifier.load(Path(tiny_artifact["artifact_dir"]))
    assert clf.labels == tiny_artifact["labels"]

    texts = ["i lost my card", "refund please", "reset password " * 200, ""]
    probs = clf.predict_proba(texts, batch_size=3)
    assert probs.shape == (4, len(clf.labels))
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    predictions = clf.predict(texts, batch_size=3)
    # A label, or out_of_scope with its best in-scope label's probability beside it.
    answers = [*clf.labels, OUT_OF_SCOPE]
    assert all(isinstance(p, Prediction) and p.label in answers for p in predictions)
    assert [p.probability for p in predictions] == pytest.approx(probs.max(axis=1).tolist())
    # Batching and length-sorting must not change results.
    np.testing.assert_allclose(clf.predict_proba(texts[::-1], batch_size=1), probs[::-1], atol=1e-5)
    assert clf.predict_proba([]).shape == (0, len(clf.labels))


def test_load_with_wrong_sha_is_refused(tiny_artifact: dict[str, Any]) -> None:
    with pytest.raises(ArtifactIntegrityError, match="expected sha256"):
        Classifier.load(Path(tiny_artifact["artifact_dir"]), expected_sha256="f" * 64)


@pytest.fixture
def artifact_copy(tiny_artifact: dict[str, Any], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_artifact["artifact_dir"], tmp_path / "copy"))


def test_pickle_weights_are_refused(artifact_copy: Path) -> None:
    (artifact_copy / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ArtifactIntegrityError, match="pickle"):
        Classifier.load(artifact_copy)


def test_missing_safetensors_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "model.safetensors").unlink()
    with pytest.raises(ArtifactIntegrityError, match="model.safetensors"):
        Classifier.load(artifact_copy)


def test_labels_file_must_match_model_config(artifact_copy: Path) -> None:
    (artifact_copy / "labels.json").write_text('["x", "y", "z"]')
    with pytest.raises(ArtifactIntegrityError, match="labels.json"):
        Classifier.load(artifact_copy)


# --- ranking, calibration, confusion, report ---------------------------------------------------


def test_top_k_accuracy_and_ece_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    true_ids = np.array([0, 1, 1, -1])  # -1: a label the model does not know
    assert top_k_accuracy(probs, true_ids, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(probs, true_ids, 2) == pytest.approx(3 / 4)
    # One bin per example here: |acc - conf| = |1-.7|, |0-.6|, |0-.5|, |0-.5| -> mean 0.475
    assert expected_calibration_error(probs, true_ids, bins=10) == pytest.approx(
        (0.3 + 0.6 + 0.5 + 0.5) / 4
    )
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def test_confusion_matrix_counts_and_unknown_labels() -> None:
    c = confusion_matrix(["a", "a", "b", "z"], ["a", "b", "b", "a"], ["a", "b"])
    assert c["labels"] == ["a", "b", "z"]
    assert c["matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_evaluate_model_full_report(tiny_artifact: dict[str, Any], tmp_path: Path) -> None:
    m = evaluate_model(
        Path(tiny_artifact["artifact_dir"]),
        tiny_artifact["snapshot_dir"],
        tiny_artifact["artifact_sha256"],
        report_dir=tmp_path / "report",
    )
    assert m["top3_accuracy"] >= m["accuracy"]
    assert 0.0 <= m["ece"] <= 1.0
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"]
    assert m["throughput_per_s_batch64"] > 0
    saved = json.loads((tmp_path / "report" / "confusion_matrix.json").read_text())
    assert sum(map(sum, saved["matrix"])) == m["n"]
    assert (tmp_path / "report" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n"] == m["n"]

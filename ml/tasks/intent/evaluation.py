"""Score an intent artifact on labeled data: the metrics the registry stores and promotion
compares (ml.tasks.intent.metrics), calibration, latency (ml.tasks.latency), and the report
beside them: metrics.json and the confusion matrix as JSON and PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifact.files import METRICS_FILE, write_json
from ml.progress import Progress
from ml.quarantine import Refusals
from ml.tasks.intent.metrics import (
    classification_metrics,
    confusion_matrix,
    plot_confusion,
    top_k_accuracy,
)
from ml.tasks.intent.model import Classifier
from ml.tasks.intent.out_of_scope import oos_metrics
from ml.tasks.latency import per_message_ms, throughput_per_s
from ml.training.calibration import expected_calibration_error, softmax

CONFUSION_FILE = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"


def read_labeled(
    data: Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str], Refusals]:
    """(texts, intents, refused records) of a labeled file (ml.snapshots.labeled.read_labeled)
    or of a snapshot directory's test split. Every usable record is scored; the others
    (without text or label, malformed) are refused with their rule."""
    from ml.snapshots.labeled import read_labeled as read_file

    path = Path(data)
    if path.is_dir():
        path = path / "test.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no labeled data at {path}")
    table, refused = read_file(path, text_column, label_column)
    rows = table.to_pydict()
    return rows["text"], rows["intent"], refused


def latency(classifier: Classifier, texts: Sequence[str]) -> dict[str, float]:
    """Per-message latency at batch 1 (latency_ms_p50/p95, what a router pays per
    conversation) and throughput at batch 64 (throughput_per_s_batch64, what a backfill
    scoring job gets), on this process's device (ml.tasks.latency)."""
    if not texts:
        return {}
    return {
        **per_message_ms(lambda batch: classifier.predict(batch, batch_size=1), texts),
        "throughput_per_s_batch64": throughput_per_s(
            lambda batch: classifier.predict(batch, batch_size=64), texts
        ),
    }


def evaluate_model(
    artifact_dir: Path,
    data: Path,
    expected_sha256: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Score an artifact on labeled data.

    Returns accuracy, macro/weighted F1, per-class precision/recall/F1, top-3 accuracy,
    expected calibration error at the artifact's temperature (`ece`) and at T = 1
    (`ece_uncalibrated`), the `temperature`, the out-of-scope figures at the artifact's
    threshold (ml.tasks.intent.out_of_scope.oos_metrics; none for an artifact without a
    detector), latency (all numbers, ready for the registry), and
    `records_read`/`records_quarantined` (ml.quarantine.Refusals.counts). Accuracy, F1 and the
    rest score the head's own argmax over every row, as before out-of-scope detection: rows
    labelled out of scope count under the head's out-of-scope class if it has one, else as
    misses. With `report_dir`, also writes metrics.json, the confusion matrix as JSON and PNG,
    and the refused records' quarantine.parquet (where and why, no text) there. `data` is a
    labeled file (ml.snapshots.labeled.read_labeled), or a snapshot directory (its test split is
    used). Intents the model does not know count as misses.
    """
    classifier = Classifier.load(artifact_dir, expected_sha256)
    texts, y_true, refused = read_labeled(data, text_column, label_column)
    with Progress("evaluate", len(texts), "texts") as progress:
        logits, decisions = classifier.outputs(texts, progress=progress)
    probs = softmax(logits, classifier.temperature)
    y_pred = [classifier.labels[j] for j in probs.argmax(axis=1)] if len(texts) else []
    index = {label: i for i, label in enumerate(classifier.labels)}
    true_ids = np.array([index.get(y, -1) for y in y_true], dtype=np.int64)
    metrics = classification_metrics(y_true, y_pred, classifier.labels)
    metrics["top3_accuracy"] = top_k_accuracy(probs, true_ids, 3)
    metrics["ece"] = expected_calibration_error(probs, true_ids)
    metrics["ece_uncalibrated"] = expected_calibration_error(softmax(logits), true_ids)
    metrics["temperature"] = classifier.temperature
    if classifier.detector is not None and decisions is not None:
        metrics.update(oos_metrics(classifier.detector, decisions, y_true, classifier.labels))
    metrics.update(latency(classifier, texts))
    metrics.update(refused.counts(len(texts)))
    if report_dir is not None:
        write_report(metrics, confusion_matrix(y_true, y_pred, classifier.labels), report_dir)
        refused.write_report(report_dir)
    return metrics


def write_report(metrics: dict[str, Any], confusion: dict[str, Any], report_dir: Path) -> None:
    """metrics.json, the confusion matrix as JSON and its picture, in `report_dir`."""
    write_json(report_dir / METRICS_FILE, metrics)
    write_json(report_dir / CONFUSION_FILE, confusion)
    title = (
        f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, n={metrics['n']}"
    )
    plot_confusion(confusion, report_dir / CONFUSION_PNG, title)

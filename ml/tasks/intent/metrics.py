"""How good an intent model's predictions are: classification metrics (accuracy, macro and
weighted F1, per class), top-k accuracy and the confusion matrix, with its picture.

Computed with numpy from label strings, so validation during training (ml.tasks.intent.train)
and evaluation (ml.tasks.intent.evaluation) score the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.config import DEFAULT_PROMOTION_METRIC

# The test metric promotion compares intent models by (the epoch kept is the one with the
# lowest validation loss: ml.tasks.intent.train). ml.config holds the value: the promotion
# default is the default model's, an intent model's, and settings are read where nothing of
# numpy may load (DAG parsing).
PROMOTION_METRIC = DEFAULT_PROMOTION_METRIC  # macro_f1


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1 and per-class precision/recall/F1/support.

    `per_class` lists `labels` in order, then any other label seen in `y_true` or `y_pred`
    (e.g. a test intent the model was never trained on: recall 0, so F1 0). A class with no
    predictions gets precision 0, not NaN. `macro_f1` averages the classes that occur in
    `y_true` or `y_pred` (scikit-learn's default), so a trained label that is simply absent
    from a small test set neither helps nor hurts the score.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    known = list(dict.fromkeys(labels))
    extra = sorted((set(y_true) | set(y_pred)) - set(known))
    classes = known + extra
    index = {label: i for i, label in enumerate(classes)}
    true_ids = np.array([index[y] for y in y_true], dtype=np.int64)
    pred_ids = np.array([index[y] for y in y_pred], dtype=np.int64)

    k = len(classes)
    support = np.bincount(true_ids, minlength=k).astype(np.float64)
    predicted = np.bincount(pred_ids, minlength=k).astype(np.float64)
    correct = true_ids == pred_ids
    tp = np.bincount(true_ids[correct], minlength=k).astype(np.float64)

    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    n = len(true_ids)
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(correct.mean()) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "n": n,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(classes)
        },
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that yields 0 where the denominator is 0 (no NaN, no warning)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def top_k_accuracy(probs: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """Share of examples whose label is among the k most probable (-1 ids: never)."""
    if len(true_ids) == 0:
        return 0.0
    top = np.argsort(-probs, axis=1)[:, :k]
    return float((top == true_ids[:, None]).any(axis=1).mean())


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Counts[true][predicted] over `labels` plus any other label seen, as JSON-ready lists."""
    classes = list(dict.fromkeys(labels)) + sorted((set(y_true) | set(y_pred)) - set(labels))
    index = {label: i for i, label in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([index[y] for y in y_true], [index[y] for y in y_pred]), 1)
    return {"labels": classes, "matrix": matrix.tolist()}


def plot_confusion(confusion: dict[str, Any], path: Path, title: str) -> Path:
    """A PNG heat map, rows normalised by support so small classes stay readable."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], np.array(confusion["matrix"], dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(6.0, 0.32 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (r, c), n in np.ndenumerate(matrix):
        if n:
            ax.text(
                c,
                r,
                int(n),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if share[r, c] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Load a trained intent artifact, predict with it, and score predictions.

torch and transformers are imported inside the functions that need them: DAG files import
this module at parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.artifact.files import LABELS_FILE, TRAIN_CONFIG_FILE
from ml.artifact.integrity import ArtifactIntegrityError, checked_dir
from ml.progress import Progress
from ml.training.calibration import expected_calibration_error, read_temperature, softmax

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Used only when an artifact lacks train_config.json: the TrainConfig default.
FALLBACK_MAX_LENGTH = 128
# How many test texts to time one at a time: enough for a p95, cheap on CPU.
LATENCY_SAMPLES = 40
# How many texts to push through at batch 64 for the throughput figure.
THROUGHPUT_SAMPLES = 256


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


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


def batched_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[dict[str, list[int]]],
    batch_size: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Logits (n, num_labels) in fp32 for already-tokenized, unpadded examples (probabilities
    are ml.training.calibration.softmax of these at the artifact's temperature).

    Examples are run in order of length so each batch pads to a similar length (much less
    wasted compute on CPU), then put back in input order. `progress` advances per text.
    """
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    collate = DataCollatorWithPadding(tokenizer)
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([encoded[i] for i in idx])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            out[idx] = logits.float().cpu().numpy()
            if progress is not None:
                progress.advance(len(idx))
    return out


def _autocast(device: Any) -> Any:
    """bf16 autocast on CUDA; a no-op context on CPU, where bf16 is slower and less exact."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


class Classifier:
    """An intent model loaded from an artifact directory written by :func:`ml.tasks.intent.train.fine_tune`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        labels: list[str],
        max_length: int,
        temperature: float = 1.0,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        # Fitted on validation at training time (ml.training.calibration); 1.0 for older artifacts.
        self.temperature = temperature

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Classifier:
        """Load an artifact; with `expected_sha256`, verify the bytes before reading any of them.

        Raises ArtifactIntegrityError on a hash mismatch, on pickle-based weight files, when
        labels.json disagrees with the model config, or on an unusable calibration.json.
        """
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ml.training.device import torch_device  # ml.training.loop imports this module

        path = checked_dir(artifact_dir, expected_sha256)

        labels = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        device = torch_device()
        model = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True, dtype=torch.float32
        ).to(device)
        model.eval()
        config_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if config_labels != labels:
            raise ArtifactIntegrityError(
                f"artifact {path}: {LABELS_FILE} {labels} disagrees with config.json "
                f"id2label {config_labels}"
            )
        tokenizer = AutoTokenizer.from_pretrained(path)
        temperature = read_temperature(path)
        return cls(model, tokenizer, labels, _max_length(path, model.config), temperature)

    def logits(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Raw logits, shape (len(texts), len(self.labels)); columns follow `self.labels`."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        # Longer texts are truncated to the length the model was trained with.
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        examples = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(texts))]
        return batched_logits(self.model, self.tokenizer, examples, batch_size, progress)

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Calibrated probabilities (softmax at the artifact's temperature), shape
        (len(texts), len(self.labels)); columns follow `self.labels`."""
        return softmax(self.logits(texts, batch_size, progress), self.temperature)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        """The most probable label for each text, with its probability."""
        probs = self.predict_proba(texts, batch_size)
        best = probs.argmax(axis=1)
        return [Prediction(self.labels[j], float(probs[i, j])) for i, j in enumerate(best)]


def _max_length(path: Path, model_config: Any) -> int:
    """The truncation length used in training, so inference sees inputs the same way."""
    config_file = path / TRAIN_CONFIG_FILE
    if config_file.is_file():
        return int(json.loads(config_file.read_text(encoding="utf-8"))["max_length"])
    return min(FALLBACK_MAX_LENGTH, model_config.max_position_embeddings)


def read_labeled(
    data: Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """(texts, intents) from a labeled file (see ml.snapshots.labeled.load_labeled) or a snapshot
    directory's test split. Rows without a label cannot be scored and are skipped.
    """
    from ml.snapshots.labeled import load_labeled

    path = Path(data)
    if path.is_dir():
        path = path / "test.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no labeled data at {path}")
    table = load_labeled(path, text_column, label_column).to_pydict()
    return table["text"], table["intent"]


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


def latency(classifier: Classifier, texts: Sequence[str]) -> dict[str, float]:
    """Per-message latency at batch 1 (p50/p95, what a router pays per conversation) and
    throughput at batch 64 (what a backfill scoring job gets), on this process's device."""
    if not texts:
        return {}
    single = list(texts[:LATENCY_SAMPLES])
    classifier.predict(single[:1], batch_size=1)  # warm-up: first call pays lazy init
    timings = []
    for text in single:
        start = time.perf_counter()
        classifier.predict([text], batch_size=1)
        timings.append((time.perf_counter() - start) * 1000)
    bulk = (list(texts) * (THROUGHPUT_SAMPLES // len(texts) + 1))[:THROUGHPUT_SAMPLES]
    start = time.perf_counter()
    classifier.predict(bulk, batch_size=64)
    elapsed = time.perf_counter() - start
    return {
        "latency_ms_p50": round(float(np.percentile(timings, 50)), 3),
        "latency_ms_p95": round(float(np.percentile(timings, 95)), 3),
        "throughput_per_s_batch64": round(len(bulk) / elapsed, 1),
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
    (`ece_uncalibrated`), the `temperature`, and latency (all numbers, ready for the
    registry). With `report_dir`, also writes metrics.json and the confusion matrix as JSON and PNG there.
    `data` is a labeled .parquet/.csv/.jsonl file, or a snapshot directory (its test split is
    used). Intents the model does not know count as misses.
    """
    classifier = Classifier.load(artifact_dir, expected_sha256)
    texts, y_true = read_labeled(data, text_column, label_column)
    with Progress("evaluate", len(texts), "texts") as progress:
        logits = classifier.logits(texts, progress=progress)
    probs = softmax(logits, classifier.temperature)
    y_pred = [classifier.labels[j] for j in probs.argmax(axis=1)] if len(texts) else []
    index = {label: i for i, label in enumerate(classifier.labels)}
    true_ids = np.array([index.get(y, -1) for y in y_true], dtype=np.int64)
    metrics = classification_metrics(y_true, y_pred, classifier.labels)
    metrics["top3_accuracy"] = top_k_accuracy(probs, true_ids, 3)
    metrics["ece"] = expected_calibration_error(probs, true_ids)
    metrics["ece_uncalibrated"] = expected_calibration_error(softmax(logits), true_ids)
    metrics["temperature"] = classifier.temperature
    metrics.update(latency(classifier, texts))
    if report_dir is not None:
        write_report(metrics, confusion_matrix(y_true, y_pred, classifier.labels), report_dir)
    return metrics


def write_report(metrics: dict[str, Any], confusion: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (report_dir / "confusion_matrix.json").write_text(json.dumps(confusion) + "\n")
    title = (
        f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, n={metrics['n']}"
    )
    plot_confusion(confusion, report_dir / "confusion_matrix.png", title)

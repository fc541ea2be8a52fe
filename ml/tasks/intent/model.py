"""An intent model: loaded from its artifact, it gives logits, calibrated probabilities and the
most probable label for texts.

torch and transformers are imported inside the functions that need them: DAG files import
the task modules at parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.artifact.files import LABELS_FILE, TRAIN_CONFIG_FILE
from ml.artifact.integrity import ArtifactIntegrityError, checked_dir
from ml.progress import Progress
from ml.training.calibration import read_temperature, softmax
from ml.training.device import torch_device

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK = "intent"
# Used only when an artifact lacks train_config.json: the TrainConfig default.
FALLBACK_MAX_LENGTH = 128


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


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


def load(artifact_dir: Path, expected_sha256: str | None = None) -> Classifier:
    """The loaded model `predict_loaded` answers with (the service keeps it loaded)."""
    return Classifier.load(Path(artifact_dir), expected_sha256)


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """Label, probability and the top-k labels per text."""
    return predict_loaded(load(artifact_dir, expected_sha256), texts, top_k)


def predict_loaded(
    classifier: Classifier, texts: list[str], top_k: int = 5
) -> list[dict[str, Any]]:
    """`predict` with a model already loaded: one answer per text, in order."""
    probs = classifier.predict_proba(texts)
    out = []
    for text, row in zip(texts, probs, strict=True):
        order = row.argsort()[::-1][:top_k]
        best = int(order[0])
        out.append(
            {
                "text": text,
                "intent": classifier.labels[best],
                "probability": round(float(row[best]), 4),
                "top_k": [
                    {"intent": classifier.labels[i], "probability": round(float(row[i]), 4)}
                    for i in order
                ],
            }
        )
    return out

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
from ml.tasks.intent.out_of_scope import (
    OUT_OF_SCOPE,
    Decisions,
    Detector,
    answer_fields,
    read_detector,
)
from ml.training.calibration import read_temperature, softmax
from ml.training.device import torch_device

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK = "intent"
# Used only when an artifact lacks train_config.json: the TrainConfig default.
FALLBACK_MAX_LENGTH = 128


@dataclass(frozen=True)
class Prediction:
    label: str  # the answer: an intent, or `out_of_scope`
    probability: float  # of the best in-scope intent
    in_scope_label: str = ""  # the best in-scope intent, also beside an out_of_scope answer
    oos_score: float | None = None  # None: an artifact without an out-of-scope detector


def batched_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[dict[str, list[int]]],
    batch_size: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Logits (n, num_labels) in fp32 for already-tokenized, unpadded examples (probabilities
    are ml.training.calibration.softmax of these at the artifact's temperature)."""
    return batched_outputs(model, tokenizer, encoded, batch_size, progress)[0]


def batched_outputs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[dict[str, list[int]]],
    batch_size: int,
    progress: Progress | None = None,
    features: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (n, num_labels) in fp32 and, with `features`, the encoder's representation of
    each example (n, hidden): the last layer's first token ([CLS]), from the same pass
    (ml.tasks.intent.out_of_scope scores out-of-scope queries by it; on CLINC150 it separated
    them better than the pooled vector the head is given, bench/README.md).

    Examples are run in order of length so each batch pads to a similar length (much less
    wasted compute on CPU), then put back in input order. `progress` advances per text.
    """
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    collate = DataCollatorWithPadding(tokenizer)
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    feats = np.zeros((len(encoded), model.config.hidden_size), dtype=np.float32)
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([encoded[i] for i in idx])
            inputs = {k: v.to(device) for k, v in batch.items()}
            # Hidden states only when asked: a runtime that gives logits alone (the service's
            # ONNX graph, ml.serving.runtime) answers the rest.
            result = model(**inputs, output_hidden_states=True) if features else model(**inputs)
            out[idx] = result.logits.float().cpu().numpy()
            if features:
                if getattr(result, "hidden_states", None) is None:
                    raise ValueError(
                        "this runtime gives no hidden states: the mahalanobis out-of-scope "
                        "score needs the torch model"
                    )
                feats[idx] = result.hidden_states[-1][:, 0].float().cpu().numpy()
            if progress is not None:
                progress.advance(len(idx))
    return out, (feats if features else None)


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
        detector: Detector | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        # Fitted on validation at training time (ml.training.calibration); 1.0 for older artifacts.
        self.temperature = temperature
        # Calibrated at training time (ml.tasks.intent.out_of_scope); None for older artifacts.
        self.detector = detector

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Classifier:
        """Load an artifact; with `expected_sha256`, verify the bytes before reading any of them.

        Raises ArtifactIntegrityError on a hash mismatch, on pickle-based weight files, when
        labels.json disagrees with the model config, or on an unusable calibration.json or
        out-of-scope detector.
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
        detector = read_detector(path, labels, temperature)
        return cls(model, tokenizer, labels, _max_length(path, model.config), temperature, detector)

    def logits(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Raw logits, shape (len(texts), len(self.labels)); columns follow `self.labels`."""
        return self.outputs(texts, batch_size, progress)[0]

    def outputs(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> tuple[np.ndarray, Decisions | None]:
        """Raw logits (columns follow `self.labels`) and the out-of-scope decisions (None for
        an artifact without a detector), from one pass over the texts."""
        needs_features = self.detector is not None and self.detector.needs_features
        if not texts:
            logits = np.zeros((0, len(self.labels)), dtype=np.float32)
            features = np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        else:
            # Longer texts are truncated to the length the model was trained with.
            encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
            examples = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(texts))]
            logits, features = batched_outputs(
                self.model, self.tokenizer, examples, batch_size, progress, needs_features
            )
        if self.detector is None:
            return logits, None
        return logits, self.detector.decide(logits, features)

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Calibrated probabilities (softmax at the artifact's temperature), shape
        (len(texts), len(self.labels)); columns follow `self.labels`."""
        return softmax(self.logits(texts, batch_size, progress), self.temperature)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        """The answer for each text: `out_of_scope` where the detector says so, else the most
        probable in-scope label; that label's probability, itself, and the out-of-scope score
        beside it."""
        logits, decisions = self.outputs(texts, batch_size)
        probs = softmax(logits, self.temperature)
        if decisions is None:
            best = probs.argmax(axis=1)
            return [
                Prediction(self.labels[j], float(probs[i, j]), self.labels[j])
                for i, j in enumerate(best)
            ]
        return [
            Prediction(
                OUT_OF_SCOPE if decisions.out_of_scope[i] else self.labels[j],
                float(probs[i, j]),
                self.labels[j],
                float(decisions.scores[i]),
            )
            for i, j in enumerate(decisions.best)
        ]


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
    """Per text: the answer (`intent`: the best in-scope label, or `out_of_scope`), the best
    in-scope label's probability, the top-k in-scope labels, and the out-of-scope fields
    (ml.tasks.intent.out_of_scope.answer_fields): `out_of_scope`, `oos_score`,
    `oos_threshold`, with the best in-scope label beside them (`in_scope_intent`)."""
    return predict_loaded(load(artifact_dir, expected_sha256), texts, top_k)


def predict_loaded(
    classifier: Classifier, texts: list[str], top_k: int = 5
) -> list[dict[str, Any]]:
    """`predict` with a model already loaded: one answer per text, in order."""
    logits, decisions = classifier.outputs(texts)
    probs = softmax(logits, classifier.temperature)
    detector = classifier.detector
    # The head's own out-of-scope class (trained from labelled examples) is no intent to list.
    listed = detector.in_scope if detector is not None else np.arange(len(classifier.labels))
    out = []
    for row, (text, p) in enumerate(zip(texts, probs, strict=True)):
        order = listed[p[listed].argsort()[::-1][:top_k]]
        best = int(order[0])
        fields = answer_fields(detector, decisions, row)
        out.append(
            {
                "text": text,
                "intent": OUT_OF_SCOPE if fields["out_of_scope"] else classifier.labels[best],
                "probability": round(float(p[best]), 4),
                "in_scope_intent": classifier.labels[best],
                **fields,
                "top_k": [
                    {"intent": classifier.labels[i], "probability": round(float(p[i]), 4)}
                    for i in order
                ],
            }
        )
    return out

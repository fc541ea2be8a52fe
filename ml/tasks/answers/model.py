"""The answers model: a bi-encoder (one shared BERT encoder, mean pooling, L2-normalised
embeddings; score = cosine(question, answer)) and the Retriever that ranks an artifact's stored
answer bank for a question.

The bank's embeddings are computed once, at the end of training, and stored in the artifact,
so predict only encodes the query and takes one matrix product.

torch and transformers are imported inside functions (DAG parse time).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ml.artifact.files import TASK_FILE, read_json
from ml.artifact.integrity import checked_dir
from ml.progress import Progress
from ml.tasks.answers.bank import BANK_FILE, read_bank
from ml.training.device import amp_dtype, torch_device

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK = "answers"

EMBEDDINGS_FILE = "answer_embeddings.safetensors"


def embed(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the token states under the attention mask, L2-normalised."""
    import torch

    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def encode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Normalised float32 embeddings (len(texts), hidden), batched by length, input order;
    `progress` advances per text."""
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    hidden = model.config.hidden_size
    out = np.zeros((len(texts), hidden), dtype=np.float32)
    if not texts:
        return out
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    examples = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    order = np.argsort([len(e["input_ids"]) for e in examples], kind="stable")
    collate = DataCollatorWithPadding(tokenizer)
    amp = amp_dtype(device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None),
    ):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([examples[i] for i in idx])
            out[idx] = embed(model, {k: v.to(device) for k, v in batch.items()}).cpu().numpy()
            if progress is not None:
                progress.advance(len(idx))
    return out


class Retriever:
    """A loaded answers artifact: encoder, tokenizer, bank and its stored embeddings."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        bank: pa.Table,
        embeddings: np.ndarray,
        max_length: int,
    ) -> None:
        if embeddings.shape[0] != bank.num_rows:
            raise ValueError(
                f"the bank has {bank.num_rows} answers but {embeddings.shape[0]} embeddings"
            )
        self.model, self.tokenizer, self.bank = model, tokenizer, bank
        self.embeddings = embeddings
        self.max_length = max_length
        self.answer_ids = bank["answer_id"].to_pylist()
        self.answers = bank["answer"].to_pylist()

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Retriever:
        import torch
        from safetensors.numpy import load_file
        from transformers import AutoModel, AutoTokenizer

        path = checked_dir(artifact_dir, expected_sha256)
        task = read_json(path / TASK_FILE)
        if task.get("task") != TASK:
            raise ValueError(f"artifact {path} is a {task.get('task')!r} model, not {TASK!r}")
        bank = read_bank(path / BANK_FILE)
        embeddings = load_file(str(path / EMBEDDINGS_FILE))["embeddings"]
        device = torch_device()
        model = AutoModel.from_pretrained(
            path, use_safetensors=True, dtype=torch.float32, add_pooling_layer=False
        )
        model = model.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, bank, embeddings, int(task["max_length"]))

    def encode_queries(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return encode(self.model, self.tokenizer, texts, self.max_length, progress=progress)

    def scores(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Cosine similarity of each text to every bank answer (texts x bank)."""
        return self.encode_queries(texts, progress) @ self.embeddings.T

    def search(self, texts: Sequence[str], top_k: int = 5) -> list[dict[str, Any]]:
        scores = self.scores(texts)
        return [
            {"text": text, "answers": self._top(row, top_k)}
            for text, row in zip(texts, scores, strict=True)
        ]

    def _top(self, row: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        k = max(1, min(top_k, len(row)))
        best = np.argpartition(-row, k - 1)[:k]
        best = best[np.argsort(-row[best], kind="stable")]
        return [
            {"answer_id": self.answer_ids[i], "answer": self.answers[i], "score": float(row[i])}
            for i in best
        ]


def load(artifact_dir: Path, expected_sha256: str | None = None) -> Retriever:
    """The loaded model `predict_loaded` answers with (the service keeps it loaded)."""
    return Retriever.load(Path(artifact_dir), expected_sha256)


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """Per text: {"text", "answers": [{"answer_id", "answer", "score"}, ...]} best first."""
    return predict_loaded(load(artifact_dir, expected_sha256), texts, top_k)


def predict_loaded(retriever: Retriever, texts: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    """`predict` with a model already loaded."""
    return retriever.search(texts, top_k)

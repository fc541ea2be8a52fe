"""The entity tagger: a BERT token-classification head, loaded from an artifact, that turns texts
into word-piece tag probabilities and those into entity spans (ml.tasks.entities.spans.decode).

torch and transformers are imported inside functions: DAG files import the task modules at
parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.artifact.integrity import checked_dir
from ml.progress import Progress
from ml.tasks.entities.spans import Span, bio_tags, decode, tag_names

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK = "entities"
IGNORE = -100  # label id the loss skips (special tokens)


@dataclass
class TokenSplit:
    """Tokenized texts with per-token label ids (what the loop trains on) and the offsets that
    map tokens back to characters."""

    texts: list[str]
    spans: list[list[Span]]
    encoded: list[dict[str, Any]]
    offsets: list[list[tuple[int, int]]]
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [len(e["input_ids"]) for e in self.encoded]

    def examples(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        return [self.encoded[i] for i in ids]


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], spans: list[list[Span]], max_length: int
) -> TokenSplit:
    """Tokenize `texts` (truncated to `max_length` tokens) with the BIO label ids of `spans`."""
    label2id = {t: i for i, t in enumerate(tag_names())}
    enc = (
        tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
        if texts
        else {"input_ids": []}
    )
    examples, offsets = [], []
    for i in range(len(texts)):
        offs = [tuple(o) for o in enc["offset_mapping"][i]]
        tags = bio_tags(offs, spans[i])
        example = {k: enc[k][i] for k in enc if k != "offset_mapping"}
        example["labels"] = [IGNORE if t is None else label2id[t] for t in tags]
        examples.append(example)
        offsets.append(offs)
    return TokenSplit(texts, spans, examples, offsets)


def _tag_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[dict[str, Any]],
    batch_size: int,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Per-token tag probabilities (tokens, tags) for each example, in input order;
    `progress` advances per text."""
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    collate = DataCollatorWithPadding(tokenizer)
    out: list[np.ndarray] = [np.zeros((0, 0))] * len(encoded)
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([{k: v for k, v in encoded[i].items() if k != "labels"} for i in idx])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = probs[row, : len(encoded[i]["input_ids"])]
            if progress is not None:
                progress.advance(len(idx))
    return out


def predict_spans(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: TokenSplit,
    batch_size: int,
    progress: Progress | None = None,
) -> list[list[dict[str, Any]]]:
    """The spans of each text, from its most probable tags; a span's score is the mean
    probability of its pieces' tags."""
    id2label = model.config.id2label
    result = []
    for text, offs, probs in zip(
        split.texts,
        split.offsets,
        _tag_probabilities(model, tokenizer, split.encoded, batch_size, progress),
        strict=True,
    ):
        best = probs.argmax(axis=1)
        tags = [id2label[int(j)] for j in best]
        result.append(decode(text, offs, tags, probs[np.arange(len(best)), best]))
    return result


@dataclass
class Tagger:
    """An entities artifact loaded for inference, truncating texts at the max_length it was
    trained with (its train_config.json)."""

    model: Any
    tokenizer: Any
    max_length: int

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Tagger:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from ml.training.device import torch_device

        path = checked_dir(artifact_dir, expected_sha256)
        device = torch_device()
        model = AutoModelForTokenClassification.from_pretrained(
            path, use_safetensors=True, dtype=torch.float32
        ).to(device)
        model.eval()
        config = json.loads((path / "train_config.json").read_text(encoding="utf-8"))
        return cls(model, AutoTokenizer.from_pretrained(path), int(config["max_length"]))

    def spans(self, texts: Sequence[str], batch_size: int = 64) -> list[list[dict[str, Any]]]:
        split = encode(self.tokenizer, list(texts), [[] for _ in texts], self.max_length)
        return predict_spans(self.model, self.tokenizer, split, batch_size)


def load(artifact_dir: Path, expected_sha256: str | None = None) -> Tagger:
    """The loaded model `predict_loaded` answers with (the service keeps it loaded)."""
    return Tagger.load(Path(artifact_dir), expected_sha256)


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """{"text", "spans": [{"type", "text", "start", "end", "score"}]} per text."""
    return predict_loaded(load(artifact_dir, expected_sha256), texts, top_k)


def predict_loaded(tagger: Tagger, texts: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    """`predict` with a model already loaded (`top_k` is not used: every span is listed)."""
    return [{"text": t, "spans": s} for t, s in zip(texts, tagger.spans(texts), strict=True)]

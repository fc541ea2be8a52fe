"""Scoring an entity tagger: span metrics (ml.tasks.entities.metrics) of its predicted spans
against gold ones, and its per-message latency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.progress import Progress
from ml.tasks.entities.data import read_split
from ml.tasks.entities.metrics import span_metrics
from ml.tasks.entities.model import Tagger, TokenSplit, encode, predict_spans

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LATENCY_SAMPLES = 40


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: TokenSplit,
    batch_size: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """span_metrics of the model's spans against the split's gold spans."""
    predicted = predict_spans(model, tokenizer, split, batch_size, progress)
    gold = [[(s.type, s.start, s.end) for s in spans] for spans in split.spans]
    return span_metrics(
        gold, [[(p["type"], p["start"], p["end"]) for p in spans] for spans in predicted]
    )


def evaluate(
    artifact_dir: Path,
    data: Path,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Entity-level metrics on a split file (or a snapshot's test split), plus latency."""
    tagger = Tagger.load(Path(artifact_dir), expected_sha256)
    texts, gold = read_split(Path(data))
    split = encode(tagger.tokenizer, texts, gold, tagger.max_length)
    with Progress("evaluate", len(texts), "texts") as progress:
        metrics = score(tagger.model, tagger.tokenizer, split, 64, progress)
    metrics.update(_latency(tagger, texts))
    if report_dir is not None:
        from ml.artifact.files import METRICS_FILE, write_json

        write_json(Path(report_dir) / METRICS_FILE, metrics)
    return metrics


def _latency(tagger: Tagger, texts: Sequence[str]) -> dict[str, float]:
    """Per-message latency at batch 1 (p50/p95), what a live assistant pays per turn."""
    from ml.tasks.latency import per_message_ms

    return per_message_ms(lambda batch: tagger.spans(batch, batch_size=1), texts, LATENCY_SAMPLES)

"""Scoring an entity tagger: span metrics (ml.tasks.entities.metrics) of its predicted spans
against gold ones, and its per-message latency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.progress import Progress
from ml.snapshots.formats import DEFAULT_TEXT_COLUMN, data_file
from ml.tasks.entities.data import read_examples
from ml.tasks.entities.metrics import span_metrics
from ml.tasks.entities.model import Tagger, TokenSplit, encode, predict_spans
from ml.tasks.entities.spans import Span

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
    return _scored(model, tokenizer, split, batch_size, progress)[0]


def _scored(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: TokenSplit,
    batch_size: int,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], list[list[tuple[str, int, int]]], list[list[tuple[str, int, int]]]]:
    """(span_metrics, gold spans, predicted spans) of the split, spans as (type, start, end)."""
    found = predict_spans(model, tokenizer, split, batch_size, progress)
    gold = [[(s.type, s.start, s.end) for s in spans] for spans in split.spans]
    predicted = [[(p["type"], p["start"], p["end"]) for p in spans] for spans in found]
    return span_metrics(gold, predicted), gold, predicted


def evaluate(
    artifact_dir: Path,
    data: Path | str,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
    text_column: str = DEFAULT_TEXT_COLUMN,
    **_: Any,
) -> dict[str, Any]:
    """Entity-level metrics and latency on every usable record of a labeled span file (read
    as build_dataset reads one: ml.tasks.entities.data.read_examples), or of a snapshot
    directory's test split; `records_read`/`records_quarantined` count the records and the ones
    refused. With `report_dir`: metrics.json, the refused records' quarantine.parquet (where
    and why, no text) and examples.json (a few texts with their gold and predicted spans,
    redacted: ml.tasks.examples) there."""
    tagger = Tagger.load(Path(artifact_dir), expected_sha256)
    examples, refused, _ = read_examples(data_file(data), text_column)
    texts = [e["text"] for e in examples]
    gold = [[Span(s["start"], s["end"], s["type"]) for s in e["spans"]] for e in examples]
    split = encode(tagger.tokenizer, texts, gold, tagger.max_length)
    with Progress("evaluate", len(texts), "texts") as progress:
        metrics, gold_spans, predicted = _scored(
            tagger.model, tagger.tokenizer, split, 64, progress
        )
    metrics.update(_latency(tagger, texts))
    metrics.update(refused.counts(len(texts)))
    if report_dir is not None:
        from ml.artifact.files import METRICS_FILE, write_json
        from ml.tasks.examples import entity_examples, write_examples

        write_json(Path(report_dir) / METRICS_FILE, metrics)
        refused.write_report(Path(report_dir))
        write_examples(Path(report_dir), entity_examples(texts, gold_spans, predicted))
    return metrics


def _latency(tagger: Tagger, texts: Sequence[str]) -> dict[str, float]:
    """Per-message latency at batch 1 (p50/p95), what a live assistant pays per turn."""
    from ml.tasks.latency import per_message_ms

    return per_message_ms(lambda batch: tagger.spans(batch, batch_size=1), texts, LATENCY_SAMPLES)

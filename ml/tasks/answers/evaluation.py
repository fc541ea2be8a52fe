"""Evaluating an answers artifact: its stored bank ranked for a labeled set's questions, and
per-query latency against that bank and against one padded to 10,000 answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ml.artifact.files import METRICS_FILE, write_json
from ml.progress import Progress
from ml.snapshots.formats import DEFAULT_LABEL_COLUMN, DEFAULT_TEXT_COLUMN, data_file
from ml.tasks.answers.data import DEFAULT_ANSWER_COLUMN, read_pairs
from ml.tasks.answers.metrics import bank_ranking_metrics
from ml.tasks.answers.model import Retriever

LATENCY_SAMPLES = 40
# evaluate() also times queries against a bank of this size (the 10,000 answers).
LATENCY_BANK = 10_000


def query_latency(search: Any, texts: Sequence[str], samples: int | None = None) -> dict:
    """Per-query milliseconds at batch 1 (encode + score the bank + top-5): p50 and p95 over
    the first `samples` texts (default LATENCY_SAMPLES)."""
    from ml.tasks.latency import per_message_ms

    return per_message_ms(search, texts, samples or LATENCY_SAMPLES, prefix="")


def _padded(retriever: Retriever, size: int, seed: int = 0) -> Retriever:
    """The retriever with its bank padded to `size` by random unit vectors: a timing-only bank
    (the cost of a query does not depend on what the vectors hold; bench/answers.py ranks
    against a 10k bank of real-looking replies)."""
    extra = max(0, size - len(retriever.answer_ids))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((extra, retriever.embeddings.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    bank = pa.table(
        {
            "answer_id": retriever.answer_ids + [f"pad-{i}" for i in range(extra)],
            "answer": retriever.answers + [""] * extra,
        }
    )
    embeddings = np.concatenate([retriever.embeddings, noise])
    return Retriever(retriever.model, retriever.tokenizer, bank, embeddings, retriever.max_length)


def evaluate(
    artifact_dir: Path,
    data: Path | str,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
    columns: dict[str, str] | None = None,
    text_column: str = DEFAULT_TEXT_COLUMN,
    answer_column: str = DEFAULT_ANSWER_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
    **_: Any,
) -> dict[str, Any]:
    """Rank the questions of `data` against the artifact's stored bank.

    `data`: a labeled file read as build_dataset reads one (ml.tasks.answers.data.read_pairs,
    the same column options), whose gold reply is given by its text (or, as in a snapshot's
    splits, by its bank id), or a snapshot folder (its test split). Every usable record is
    scored; the others are refused with their rule (`records_read`, `records_quarantined`;
    with `report_dir`, quarantine.parquet: where and why, no text).

    Metrics: mrr (PROMOTION_METRIC), recall_at_1/5 of the gold reply; a question whose gold
    reply is not in the bank cannot be suggested, so it scores 0 there (a miss; counted in
    `gold_missing`). Beside them, the intent-level intent_mrr, intent_recall_at_1/5 of every
    question with an intent (`intent_n`), whether its own reply is in the bank or not: the
    rank of the best reply the bank holds for that intent (a question whose intent no reply
    serves is a miss, `intent_missing`); per_class by intent (mrr, recall_at_1, support).
    Also n, bank_size, and per-query latency_ms_p50/p95 against the bank and against a bank
    padded to 10,000 (…_bank10k). With `report_dir`, examples.json too: a few questions with
    their top 5 replies, redacted (ml.tasks.examples).
    """
    retriever = Retriever.load(artifact_dir, expected_sha256)
    pairs, refused, _ = read_pairs(
        data_file(data),
        columns,
        text_column=text_column,
        answer_column=answer_column,
        label_column=label_column,
        answer_ids=True,
    )
    rows = {key: [p[key] for p in pairs] for key in ("text", "answer_id", "intent")}
    with Progress("evaluate", len(rows["text"]), "texts") as progress:
        scores = retriever.scores(rows["text"], progress)
    metrics = bank_ranking_metrics(scores, rows, retriever.bank)
    metrics["bank_size"] = retriever.bank.num_rows
    known = set(retriever.answer_ids)
    metrics["gold_missing"] = sum(a not in known for a in rows["answer_id"])
    # Flat keys: the registry stores numbers (and per_class) only.
    for suffix, ranker in (("", retriever), ("_bank10k", _padded(retriever, LATENCY_BANK))):
        latency = query_latency(lambda t, r=ranker: r.search(t, 5), rows["text"])
        metrics.update({f"latency_{k}{suffix}": v for k, v in latency.items()})
    metrics.update(refused.counts(len(pairs)))
    if report_dir is not None:
        from ml.tasks.examples import ranking_examples, write_examples

        write_json(Path(report_dir) / METRICS_FILE, metrics)
        refused.write_report(Path(report_dir))
        examples = ranking_examples(
            rows["text"], rows["answer_id"], scores, retriever.answer_ids, retriever.answers
        )
        write_examples(Path(report_dir), examples)
    return metrics

"""Ranking metrics of the answers task.

A query's gold answer is the bank entry its pair maps to (``mrr``, ``recall_at_1``,
``recall_at_5``; ``mrr`` is PROMOTION_METRIC); a gold answer the bank does not hold is a miss
(the model cannot suggest it). Bitext writes a different reply for every request, ~130
paraphrases per intent, so a looser "same intent" variant (``intent_mrr``,
``intent_recall_at_k``: the first answer of the query's intent) is reported too, over the
queries that have an intent: it scores a query whose own reply is not in the bank by the
replies the bank holds for its intent. Ties count against the model (rank = 1 + answers
scoring >= the gold one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

PROMOTION_METRIC = "mrr"

RECALL_KS = (1, 5)


def ranking_metrics(
    scores: np.ndarray,
    gold: Sequence[int],
    query_intents: Sequence[str | None] | None = None,
    answer_intents: Sequence[Sequence[str]] | None = None,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, Any]:
    """MRR and recall@k of each query's gold answer (column index; -1: not in the bank, a
    miss) over the full ranking of `scores` (queries x bank). Ties count against the model.

    With intents, also the same-intent variant (the best answer serving the query's intent,
    whether or not its gold answer is in the bank) over the `intent_n` queries that have an
    intent (`intent_missing`: those whose intent no answer serves, misses), and per_class by
    query intent (mrr, recall@1, support).
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    n = len(gold)
    if scores.shape[0] != n:
        raise ValueError(f"scores has {scores.shape[0]} rows but there are {n} gold answers")
    ranks = np.full(n, np.inf)
    known = gold >= 0
    if known.any():
        rows = np.flatnonzero(known)
        gold_scores = scores[rows, gold[rows]]
        # Every other answer scoring at least as high ranks above the gold one.
        ranks[rows] = (scores[rows] >= gold_scores[:, None]).sum(axis=1)
    metrics: dict[str, Any] = {"n": n, **_rank_summary(ranks, ks, "")}
    if query_intents is None or answer_intents is None:
        return metrics
    relevant = _relevance(query_intents, answer_intents, scores.shape[1])
    best_relevant = np.where(relevant, scores, -np.inf).max(axis=1, initial=-np.inf)
    served = relevant.any(axis=1)
    intent_ranks = np.where(
        served,
        1 + (np.where(relevant, -np.inf, scores) >= best_relevant[:, None]).sum(axis=1),
        np.inf,
    )
    # Over the questions with an intent: one without is not an intent-level miss.
    labeled = np.array([q is not None for q in query_intents], dtype=bool)
    metrics.update(_rank_summary(intent_ranks[labeled], ks, "intent_"))
    metrics["intent_n"] = int(labeled.sum())
    metrics["intent_missing"] = int((labeled & ~served).sum())
    per_class: dict[str, dict[str, float]] = {}
    for intent in sorted({q for q in query_intents if q is not None}):
        mask = np.array([q == intent for q in query_intents])
        summary = _rank_summary(ranks[mask], (1,), "")
        per_class[intent] = {
            "mrr": summary["mrr"],
            "recall_at_1": summary["recall_at_1"],
            "support": int(mask.sum()),
        }
    metrics["per_class"] = per_class
    return metrics


def _relevance(
    query_intents: Sequence[str | None], answer_intents: Sequence[Sequence[str]], m: int
) -> np.ndarray:
    """(queries x bank) booleans: the answer serves the query's intent."""
    columns: dict[str, np.ndarray] = {}
    for j, intents in enumerate(answer_intents):
        for intent in intents or ():
            columns.setdefault(intent, np.zeros(m, dtype=bool))[j] = True
    empty = np.zeros(m, dtype=bool)
    rows = [columns.get(q, empty) if q is not None else empty for q in query_intents]
    return np.stack(rows) if rows else np.zeros((0, m), dtype=bool)


def _rank_summary(ranks: np.ndarray, ks: Sequence[int], prefix: str) -> dict[str, float]:
    if len(ranks) == 0:
        return {f"{prefix}mrr": 0.0, **{f"{prefix}recall_at_{k}": 0.0 for k in ks}}
    return {
        f"{prefix}mrr": float(np.mean(1.0 / ranks)),
        **{f"{prefix}recall_at_{k}": float(np.mean(ranks <= k)) for k in ks},
    }


def bank_ranking_metrics(
    scores: np.ndarray, rows: dict[str, list[Any]], bank: pa.Table
) -> dict[str, Any]:
    """ranking_metrics of `scores` (questions x `bank`) for `rows`' gold answer ids, with the
    same-intent variant and per_class when `rows` has intents."""
    index = {a: i for i, a in enumerate(bank["answer_id"].to_pylist())}
    gold = [index.get(a, -1) for a in rows["answer_id"]]
    intents = rows.get("intent")
    has_intents = intents is not None and any(intents)
    return ranking_metrics(
        scores,
        gold,
        intents if has_intents else None,
        bank["intents"].to_pylist() if has_intents else None,
    )

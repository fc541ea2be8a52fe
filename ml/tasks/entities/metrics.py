"""The entities task's metrics: entity-level, exact match of (type, start, end) between the gold
spans and the spans decoded from the predicted tags, per type and micro/macro averaged.

That is seqeval's default (CoNLL) definition, computed on character spans so that evaluate()
scores exactly what predict() returns. Implemented here (30 lines) rather than with `seqeval`:
that works on per-word tag lists, which would need a second alignment back to words, and adds
a dependency for a sum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ml.tasks.entities.spans import ENTITY_TYPES

# The test metric promotion compares for entity models.
PROMOTION_METRIC = "micro_f1"


def span_metrics(
    gold: Sequence[Iterable[tuple[str, int, int]]],
    predicted: Sequence[Iterable[tuple[str, int, int]]],
) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (exact type and offsets), per type and averaged.

    `gold` and `predicted` hold one collection of (type, start, end) per text. `per_class`
    supports count gold entities; `macro_f1` averages the types seen in gold or predictions.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold texts but {len(predicted)} predicted")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(map(tuple, g)), set(map(tuple, p))
        n_gold.update(t for t, _, _ in g)
        n_pred.update(t for t, _, _ in p)
        tp.update(t for t, _, _ in g & p)

    def prf(t: float, npred: float, ngold: float) -> tuple[float, float, float]:
        precision = t / npred if npred else 0.0
        recall = t / ngold if ngold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    types = [t for t in ENTITY_TYPES if n_gold[t] or n_pred[t]]
    types += sorted((set(n_gold) | set(n_pred)) - set(types))
    per_class = {}
    for t in types:
        precision, recall, f1 = prf(tp[t], n_pred[t], n_gold[t])
        per_class[t] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold[t]}
    precision, recall, f1 = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])) if per_class else 0.0,
        "n": len(gold),
        "entities": sum(n_gold.values()),
        "per_class": per_class,
    }

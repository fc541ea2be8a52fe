"""A task's prediction (its `predict_loaded` dict) as the API answers it, and as the prediction
log keeps it. The one place that knows the tasks' field names.

The API's intent fields are `label` and `confidence` (the task says `intent` and
`probability`), in the answer and in its `top_k`; every other field a task returns passes
through unchanged (entity `spans`, ranked `answers`, and whatever a task adds later, such as an
out-of-scope score). The text itself is not echoed: the caller sent it.
"""

from __future__ import annotations

import math
from typing import Any

# Task field -> API field, at the top level and inside ranked lists.
RENAMED = {"intent": "label", "probability": "confidence"}
# Ranked lists of a prediction that a request's top_k cuts.
RANKED = ("top_k", "answers")


def api_prediction(prediction: dict[str, Any], prediction_id: str, top_k: int) -> dict[str, Any]:
    """`prediction` as the API answers it: the prediction id first, renamed fields, ranked
    lists cut to `top_k` (a batch is scored with its largest top_k)."""
    item: dict[str, Any] = {"prediction_id": prediction_id}
    for key, value in prediction.items():
        if key == "text":
            continue
        if isinstance(value, list):
            value = [_renamed(v) if isinstance(v, dict) else v for v in value]
            if key in RANKED:
                value = value[:top_k]
        item[RENAMED.get(key, key)] = value
    return item


def _renamed(entry: dict[str, Any]) -> dict[str, Any]:
    return {RENAMED.get(k, k): v for k, v in entry.items()}


def log_fields(item: dict[str, Any]) -> dict[str, Any]:
    """What the prediction log keeps of an API prediction: `label` and `confidence` (intent:
    the label; answers: the best answer's id and score; entities: none), `top_k` as
    (label, confidence) pairs (intent labels, answer ids, entity types), and `scores`, the
    other numbers a task returns (e.g. an out-of-scope score). Never a span's or an answer's
    text: a span is a piece of the customer's message."""
    ranked = next((item[k] for k in ("top_k", "answers", "spans") if k in item), [])
    pairs = [
        {
            "label": str(r.get("label", r.get("answer_id", r.get("type", "")))),
            "confidence": _number(r.get("confidence", r.get("score"))),
        }
        for r in ranked
        if isinstance(r, dict)
    ]
    label, confidence = item.get("label"), _number(item.get("confidence"))
    if label is None and "answers" in item and pairs:
        label, confidence = pairs[0]["label"], pairs[0]["confidence"]
    scores = {
        k: float(v)
        for k, v in item.items()
        if k not in ("label", "confidence") and isinstance(v, bool | int | float)
    }
    return {
        "label": None if label is None else str(label),
        "confidence": confidence,
        "top_k": pairs,
        "scores": scores,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool | int | float) and math.isfinite(float(value)):
        return float(value)
    return None

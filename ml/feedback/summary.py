"""The corrections of a model per day, as the UI and the scenario read them."""

from __future__ import annotations

from typing import Any

from ml import delta
from ml.config import Settings
from ml.feedback.table import FeedbackTable


def feedback_by_day(cfg: Settings, model: str) -> list[dict[str, Any]]:
    """One dict per day (the day of the predictions corrected), oldest first:

    - corrections: rows (one per prediction and agent);
    - predictions_reviewed: distinct prediction ids;
    - agreed: rows whose label is the one the model predicted (the agent confirmed it);
    - agreement_rate: agreed / corrections (None on a day without rows: never listed);
    - new_labels: rows whose label is outside the known taxonomy (ml.taxonomy.known_intents).
    """
    from ml.taxonomy import known_intents

    rows = FeedbackTable(cfg.feedback).read(
        ["prediction_id", "label", "predicted_label", delta.PARTITION], model=model
    )
    known = known_intents()
    days: dict[str, dict[str, Any]] = {}
    ids: dict[str, set[str]] = {}
    for pid, label, predicted, day in zip(
        *(rows.column(c).to_pylist() for c in rows.column_names), strict=True
    ):
        one = days.setdefault(day, {"day": day, "corrections": 0, "agreed": 0, "new_labels": 0})
        one["corrections"] += 1
        one["agreed"] += int(label == predicted)
        one["new_labels"] += int(label not in known)
        ids.setdefault(day, set()).add(pid)
    out = []
    for day in sorted(days):
        one = days[day]
        out.append(
            {
                "day": day,
                "corrections": one["corrections"],
                "predictions_reviewed": len(ids[day]),
                "agreed": one["agreed"],
                "agreement_rate": one["agreed"] / one["corrections"],
                "new_labels": one["new_labels"],
            }
        )
    return out

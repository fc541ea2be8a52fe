"""Which test metrics a registered version's views show: `intentflow registry list`, `report`,
`evaluate` and the registry page in the Airflow UI all ask here, so they agree.

Each task type records its own metric names (ml.tasks.intent.metrics, ml.tasks.entities.metrics,
ml.tasks.answers.metrics). A view leads with the model's primary metric (its configured
promotion metric, ml.retrain.specs, else its task's PROMOTION_METRIC), then the task's other headline
metrics below; per class it shows the task's per-class metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Per task type: the test metrics a person reads first (after the primary one), and the metric
# shown per class (intent label, entity type, or the query's intent for answers).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    # Then out-of-scope detection (ml.tasks.intent.out_of_scope), where measured.
    "intent": ("macro_f1", "accuracy", "in_scope_accuracy", "oos_recall", "oos_auroc"),
    "entities": ("micro_f1", "macro_f1"),
    "answers": ("mrr", "recall_at_1", "recall_at_5", "intent_recall_at_1"),
}
CLASS_METRIC: dict[str, str] = {"intent": "f1", "entities": "f1", "answers": "mrr"}
# Whether a text report lists every class: a few entity types, or the intents answers are
# grouped by; an intent model's tens of labels would bury the headline.
LISTS_CLASSES: dict[str, bool] = {"intent": False, "entities": True, "answers": True}


@dataclass(frozen=True)
class MetricView:
    """What the views show of one registered model's versions."""

    metrics: tuple[str, ...]  # headline test metrics, the primary one first
    class_metric: str  # the per-class metric
    lists_classes: bool  # whether a text report lists every class's metrics

    @property
    def primary(self) -> str | None:
        return self.metrics[0] if self.metrics else None

    def headline(self, test: dict[str, Any]) -> dict[str, float]:
        """The headline metrics `test` (a split's metrics) has, in order; absent ones left out."""
        return {k: test[k] for k in self.metrics if isinstance(test.get(k), int | float)}


def task_view(task: str, primary: str | None) -> MetricView:
    """The view of task type `task` led by `primary` (None: the task's headline metrics)."""
    names = [primary] if primary else []
    return MetricView(
        tuple(dict.fromkeys([*names, *TASK_METRICS.get(task, ())])),
        CLASS_METRIC.get(task, "f1"),
        LISTS_CLASSES.get(task, True),
    )

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


# What kind of number each metric is, so every view prints it the same way: counts as whole
# numbers, latencies in milliseconds, throughputs per second, shares of examples (accuracy, F1,
# recall, ...) as percentages, the rest (MRR, AUROC, temperature) as plain scores.
COUNT, MS, PER_S, RATE, SCORE = "count", "ms", "per_s", "rate", "score"
_COUNTS = frozenset(
    {"n", "support", "entities", "bank_size", "gold_missing", "intent_missing", "intent_n"}
)
_RATE_WORDS = ("accuracy", "f1", "precision", "recall", "_kept", "ece", "fpr")
# Lower is better for these (latency, calibration error, false positives, records refused).
_LOWER_WORDS = ("latency", "ece", "fpr", "quarantined", "missing", "loss", "nll")


def metric_kind(name: str) -> str:
    """COUNT, MS, PER_S, RATE or SCORE for a metric name any task records."""
    if name in _COUNTS or name.endswith("_n") or name.startswith("records_"):
        return COUNT
    if "_ms" in name:
        return MS
    if "per_s" in name:
        return PER_S
    if any(word in name for word in _RATE_WORDS) and "auroc" not in name:
        return RATE
    return SCORE


def higher_is_better(name: str) -> bool | None:
    """Whether a rise of `name` is an improvement; None where neither is (counts, settings)."""
    if metric_kind(name) == COUNT and not name.startswith("records_quarantined"):
        return None
    if name in ("temperature",):
        return None
    return not any(word in name for word in _LOWER_WORDS)

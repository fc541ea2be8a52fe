"""Two versions of one model side by side: what the compare view shows (no web, no Airflow).

The numbers are the registry's (ml.registry.store.diff_versions, what `intentflow registry
diff` prints); the confusions come from each version's evaluation report
(confusion_matrix.json beside the PNG, written by ml.tasks.intent.evaluation)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intentflow_ui import fmt
from ml.registry.store import VersionInfo, diff_versions
from ml.registry.views import MetricView

CONFUSION_JSON = Path("challenger") / "test" / "confusion_matrix.json"
# The per-class figures each task type shows beside its class metric (ml.registry.views).
CLASS_COLUMNS = {
    "intent": ("f1", "precision", "recall"),
    "entities": ("f1", "precision", "recall"),
    "answers": ("mrr", "recall_at_1"),
}
HEATMAP_SIZES = (15, 30, 0)  # 0: every class
HEAT_STEPS = 10  # colour classes .heat-0 .. .heat-10 (no inline styles under the CSP)


@dataclass
class MetricDiff:
    name: str
    a: float | None
    b: float | None

    @property
    def a_text(self) -> str:
        return fmt.value(self.name, self.a)

    @property
    def b_text(self) -> str:
        return fmt.value(self.name, self.b)

    @property
    def delta(self) -> fmt.Delta | None:
        return fmt.delta(self.name, self.a, self.b)


@dataclass
class ClassDiff:
    label: str
    a: dict[str, float]  # the class's figures in version a (CLASS_COLUMNS), may be empty
    b: dict[str, float]
    support: int | None
    metric: str  # the task's class metric, what `change` is of

    @property
    def change(self) -> float | None:
        x, y = self.a.get(self.metric), self.b.get(self.metric)
        return None if x is None or y is None else y - x


@dataclass
class Confusion:
    labels: list[str]
    matrix: list[list[int]]

    def top(self, k: int = 10) -> list[tuple[str, str, int]]:
        """The k largest off-diagonal counts: (true, predicted, count), largest first."""
        cells = [
            (self.labels[i], self.labels[j], n)
            for i, row in enumerate(self.matrix)
            for j, n in enumerate(row)
            if i != j and n > 0
        ]
        return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:k]

    def errors(self) -> dict[str, int]:
        """Per class: its examples predicted as another class plus others predicted as it."""
        n = len(self.labels)
        return {
            self.labels[i]: sum(self.matrix[i])
            + sum(r[i] for r in self.matrix)
            - 2 * self.matrix[i][i]
            for i in range(n)
        }

    def worst(self, k: int, errors: dict[str, int] | None = None) -> list[int]:
        """Indexes of the k classes with the most errors (by `errors`, default this matrix's
        own), in the matrix's order; k 0: every class."""
        n = len(self.labels)
        if k <= 0 or k >= n and errors is None:
            return list(range(n))
        errors = errors if errors is not None else self.errors()
        names = sorted(errors, key=lambda label: (-errors[label], label))[:k]
        chosen = set(names)
        return [i for i, label in enumerate(self.labels) if label in chosen]


@dataclass
class HeatCell:
    count: int
    share: float  # of the true class's examples
    heat: int  # 0..HEAT_STEPS: the colour class
    diagonal: bool


@dataclass
class Heatmap:
    labels: list[str]
    rows: list[list[HeatCell]]
    size: int  # classes shown
    total: int  # classes in the matrix
    k: int  # what was asked (0: all)


def heatmap(confusion: Confusion, k: int, keep: list[int] | None = None) -> Heatmap:
    """The confusion matrix restricted to the k classes with most errors (or to the indexes
    `keep`), shares by true class, each cell given one of HEAT_STEPS + 1 colour classes."""
    keep = confusion.worst(k) if keep is None else keep
    rows = []
    for i in keep:
        total = sum(confusion.matrix[i]) or 1
        row = []
        for j in keep:
            n = confusion.matrix[i][j]
            share = n / total
            heat = 0 if n == 0 else max(1, round(share * HEAT_STEPS))
            row.append(HeatCell(n, share, heat, i == j))
        rows.append(row)
    return Heatmap([confusion.labels[i] for i in keep], rows, len(keep), len(confusion.labels), k)


def read_confusion(info: VersionInfo) -> Confusion | None:
    """The version's test confusion matrix from its evaluation report, if it has one."""
    reports = info.lineage.get("evaluation_reports")
    if not isinstance(reports, str) or not reports:
        return None
    try:
        data = json.loads((Path(reports) / CONFUSION_JSON).read_text(encoding="utf-8"))
        labels, matrix = [str(x) for x in data["labels"]], data["matrix"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(matrix) != len(labels) or any(len(r) != len(labels) for r in matrix):
        return None
    return Confusion(labels, [[int(n) for n in row] for row in matrix])


@dataclass
class Comparison:
    a: VersionInfo
    b: VersionInfo
    metrics: list[MetricDiff]  # test split, headline metrics first
    golden: dict[str, list[MetricDiff]]  # golden set -> its metrics
    classes: list[ClassDiff]  # sorted by change of the class metric, largest drop first
    class_metric: str
    class_columns: tuple[str, ...]
    params: dict[str, list[Any]]  # training parameters that differ
    confusion_a: Confusion | None = None
    confusion_b: Confusion | None = None
    heatmap_a: Heatmap | None = None
    heatmap_b: Heatmap | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def largest_change(self) -> float:
        """The largest class-metric change in either direction (the bars' scale)."""
        return max((abs(c.change) for c in self.classes if c.change is not None), default=0.0)


def compare(a: VersionInfo, b: VersionInfo, view: MetricView, k: int = 15) -> Comparison:
    """Version `a` (the baseline, usually the champion) against `b`: every test metric with
    its delta b − a, the classes sorted by the change of the task's class metric (worst
    first), the training parameters that differ and, for intent, both confusion matrices."""
    diff = diff_versions(a, b)
    rows = [r for r in diff["metrics"] if r["class"] is None]
    by_split: dict[str, dict[str, MetricDiff]] = {}
    for r in rows:
        by_split.setdefault(r["split"], {})[r["name"]] = MetricDiff(r["name"], r["a"], r["b"])
    test = by_split.get("test", {})
    first = [m for m in view.metrics if m in test]
    metrics = [test[m] for m in first] + [test[m] for m in sorted(test) if m not in first]
    golden = {
        split: [values[m] for m in sorted(values)]
        for split, values in sorted(by_split.items())
        if split.startswith("golden:")
    }
    task = b.task_type
    columns = CLASS_COLUMNS.get(task, (view.class_metric,))
    ours = a.metrics.get("test", {}).get("per_class", {})
    theirs = b.metrics.get("test", {}).get("per_class", {})
    classes = [
        ClassDiff(
            label,
            {m: ours[label][m] for m in columns if m in ours.get(label, {})},
            {m: theirs[label][m] for m in columns if m in theirs.get(label, {})},
            theirs.get(label, {}).get("support", ours.get(label, {}).get("support")),
            view.class_metric,
        )
        for label in set(ours) | set(theirs)
    ]
    # Worst change first; classes one side lacks after the rest, then by name.
    classes.sort(key=lambda c: (c.change is None, c.change or 0.0, c.label))
    out = Comparison(a, b, metrics, golden, classes, view.class_metric, columns, diff["params"])
    if task == "intent":
        out.confusion_a, out.confusion_b = read_confusion(a), read_confusion(b)
        ca, cb = out.confusion_a, out.confusion_b
        if ca and cb:  # the same classes side by side: those with most errors in both
            both = Counter(ca.errors()) + Counter(cb.errors())
            names = {label: both.get(label, 0) for label in [*ca.labels, *cb.labels]}
            out.heatmap_a = heatmap(ca, k, ca.worst(k, names))
            out.heatmap_b = heatmap(cb, k, cb.worst(k, names))
        else:
            out.heatmap_a = heatmap(ca, k) if ca else None
            out.heatmap_b = heatmap(cb, k) if cb else None
        for info, found in ((a, out.confusion_a), (b, out.confusion_b)):
            if found is None:
                out.notes.append(f"v{info.version} has no confusion matrix (evaluation report).")
    if a.metrics.get("test") is None or b.metrics.get("test") is None:
        out.notes.append("One of the versions has no test metrics.")
    return out

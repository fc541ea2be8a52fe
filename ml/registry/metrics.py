"""A version's metrics as the registry stores them: nested dicts in, one row per number.

Callers hand over `{split: {name: number, "per_class": {label: {name: number}}}}` (what every
task's evaluate returns); the `metrics` table holds `(split, name, class_label, value)` rows,
class_label None for a scalar metric (see ml.registry.schema).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ml.registry.errors import RegistryError

PER_CLASS = "per_class"

MetricRow = tuple[str, str, str | None, float]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RegistryError(f"metric {where} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        # SQLite would store NaN as NULL; refuse rather than lose it silently.
        raise RegistryError(f"metric {where} is {number}: only finite numbers are stored")
    return number


def flatten_metrics(metrics: Mapping[str, Any]) -> list[MetricRow]:
    """Nested metrics -> (split, name, class_label, value) rows; class_label None for scalars."""
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"metrics must be a dict of split -> metrics, got {metrics!r}")
    rows: list[MetricRow] = []
    for split, values in metrics.items():
        if not isinstance(values, Mapping):
            raise RegistryError(f"metrics[{split!r}] must be a dict, got {values!r}")
        for name, value in values.items():
            if name != PER_CLASS:
                rows.append((split, name, None, _number(value, f"{split}/{name}")))
                continue
            if not isinstance(value, Mapping):
                raise RegistryError(f"metrics[{split!r}]['per_class'] must be a dict")
            for label, per in value.items():
                if not isinstance(per, Mapping) or str(label) == "":
                    raise RegistryError(
                        f"metrics[{split!r}]['per_class'][{label!r}] must be a dict of "
                        "metric -> number under a non-empty label"
                    )
                for m, x in per.items():
                    rows.append((split, m, str(label), _number(x, f"{split}/{label}/{m}")))
    return rows


def nest_metrics(rows: list[MetricRow]) -> dict:
    """Inverse of flatten_metrics; support counts come back as ints."""
    out: dict[str, dict[str, Any]] = {}
    for split, name, label, value in rows:
        values = out.setdefault(split, {})
        if label is None:
            values[name] = value
            continue
        if name == "support" and value.is_integer():
            value = int(value)
        values.setdefault(PER_CLASS, {}).setdefault(label, {})[name] = value
    return out

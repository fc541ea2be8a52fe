"""Recording corrections: the checks every entry point shares (the HTTP route, `intentflow
feedback import`, the scenario's Python call) and the one-commit write.

A correction names a prediction (it must exist: ml.feedback.lookup), the correct label (in
the model's taxonomy unless new intents are allowed), the agent, and an optional note. Each
item gets an outcome:

- `created`: a new (prediction, agent) row; `replaced`: the agent had given another label for
  this prediction, the new one replaces it; `unchanged`: the same label again (a retry, a
  rerun of an import): nothing written;
- `duplicate`: the same (prediction, agent) appears again later in the same call: the later
  item counts;
- `rejected`: with `field`, `reason` and `code` (404: no such prediction for this model;
  422: a field breaks the contract or the label is outside the taxonomy). Messages name ids
  and labels, never the customer's text or the note.

Two agents giving different labels are two rows: both kept; the retrain resolves them
(ml.feedback.training).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ml import delta
from ml.config import Settings
from ml.feedback.lookup import DEFAULT_DAYS, Predicted, PredictionIndex
from ml.feedback.table import SCHEMA, FeedbackTable

FIELDS = ("prediction_id", "label", "agent_id", "note")
MAX_ID_CHARS = 128
MAX_NOTE_CHARS = 2000
# A new intent's name (when new labels are allowed): a short identifier, as the taxonomy's.
NEW_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# INTENTFLOW_FEEDBACK_NEW_LABELS: may a correction introduce a label outside the taxonomy?
NEW_LABELS_ENV = "INTENTFLOW_FEEDBACK_NEW_LABELS"
LOOKUP_DAYS_ENV = "INTENTFLOW_FEEDBACK_LOOKUP_DAYS"


@dataclass
class Outcome:
    index: int  # the item's position in the call (an import: its line)
    prediction_id: str | None
    agent_id: str | None
    status: str = "accepted"  # created | replaced | unchanged | duplicate | rejected
    field: str | None = None
    reason: str | None = None
    code: int | None = None  # a rejection's HTTP status: 404 or 422

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FeedbackResult:
    outcomes: list[Outcome]
    written: int = 0  # rows the commit inserted or replaced
    table_version: int | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    def summary(self) -> dict[str, int]:
        statuses = ("created", "replaced", "unchanged", "duplicate", "rejected")
        return {s: self.count(s) for s in statuses}


@dataclass
class Checked:
    """One call's items after the checks: outcomes, and the rows of those that passed."""

    outcomes: list[Outcome]
    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Outcome] = field(default_factory=list)  # the outcome of each row


def allow_new_labels() -> bool:
    """INTENTFLOW_FEEDBACK_NEW_LABELS (default off): a correction may name a label outside
    the model's taxonomy (a new intent the next retrain learns); off, such a label is 422."""
    from ml.config import _flag

    return _flag(NEW_LABELS_ENV)


def lookup_days() -> int:
    """INTENTFLOW_FEEDBACK_LOOKUP_DAYS (default 30): how many days back a prediction can be
    corrected."""
    from ml.config import _positive

    return _positive(LOOKUP_DAYS_ENV, DEFAULT_DAYS)


def taxonomy(cfg: Settings, extra: Iterable[str] = ()) -> frozenset[str]:
    """The labels any correction may name: ml.taxonomy.known_intents, the out-of-scope label,
    and `extra` (the champion's labels)."""
    from ml.taxonomy import known_intents

    return known_intents() | {cfg.oos_label} | frozenset(extra)


def check(
    cfg: Settings,
    model: str,
    items: list[Mapping[str, Any]],
    index: PredictionIndex,
    *,
    labels: Iterable[str] = (),
    new_labels: bool = False,
    pending: Callable[[set[str]], dict[str, Predicted]] | None = None,
    first_index: int = 0,
    now: datetime | None = None,
) -> Checked:
    """Check `items` (dicts of FIELDS) against the contract, the predictions and the taxonomy;
    the rows to write for those that pass (note redacted)."""
    from ml.ingest.redact import identifiers, redact
    from ml.subjects import pii_key, subject_key

    now = now or datetime.now(UTC)
    out = Checked([])
    parsed: list[tuple[Outcome, dict[str, Any]]] = []
    for i, item in enumerate(items):
        outcome, values = _parse(item, first_index + i)
        out.outcomes.append(outcome)
        if outcome.status != "rejected":
            parsed.append((outcome, values))
    if not parsed:
        return out
    found = index.find({v["prediction_id"] for _, v in parsed}, pending)
    allowed = taxonomy(cfg, labels)
    key: bytes | None = None
    for outcome, values in parsed:
        predicted = found.get(values["prediction_id"])
        if predicted is None or predicted.model != model:
            _reject(
                outcome,
                "prediction_id",
                f"no prediction {values['prediction_id']!r} of model {model!r} in the last "
                f"{index.days} days",
                404,
            )
            continue
        label = values["label"]
        if label not in allowed and label not in predicted.labels:
            if not new_labels:
                _reject(
                    outcome,
                    "label",
                    f"label {label!r} is not in model {model!r}'s taxonomy ({NEW_LABELS_ENV}"
                    " allows new intents)",
                    422,
                )
                continue
            if not NEW_LABEL.match(label):
                _reject(
                    outcome,
                    "label",
                    "a new label must be 1-64 letters, digits, '_', '.' or '-', starting with a"
                    " letter or digit",
                    422,
                )
                continue
        note, keys = values.get("note"), []
        if note:
            if key is None:
                key = pii_key(cfg)
            keys = sorted({subject_key(kind, v, key) for kind, v in identifiers(note)})
            note = redact(note)
        out.rows.append(
            {
                "prediction_id": values["prediction_id"],
                "model": model,
                "agent_id": values["agent_id"],
                "label": label,
                "note": note or None,
                "ts": now,
                "predicted_label": predicted.label,
                "version": predicted.version,
                "subject_keys": keys,
                delta.PARTITION: predicted.day,
            }
        )
        out.sources.append(outcome)
    return out


def _reject(outcome: Outcome, name: str, reason: str, code: int) -> None:
    outcome.status, outcome.field, outcome.reason, outcome.code = "rejected", name, reason, code


def _parse(item: Any, index: int) -> tuple[Outcome, dict[str, Any]]:
    """An item's fields, stripped; the outcome says which field is wrong, if one is."""
    outcome = Outcome(index, None, None)
    if not isinstance(item, Mapping):
        _reject(outcome, "-", "a correction is an object of " + ", ".join(FIELDS), 422)
        return outcome, {}
    unknown = sorted(str(k) for k in item if k not in FIELDS)
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = item.get(name)
        if isinstance(value, str):
            value = value.strip()
        values[name] = value if value not in ("", None) else None
    pid, agent = values["prediction_id"], values["agent_id"]
    outcome.prediction_id = pid if isinstance(pid, str) else None
    outcome.agent_id = agent if isinstance(agent, str) else None
    if unknown:
        _reject(outcome, unknown[0], f"unknown field (expected {', '.join(FIELDS)})", 422)
        return outcome, values
    for name, limit in (("prediction_id", MAX_ID_CHARS), ("agent_id", MAX_ID_CHARS)):
        if not isinstance(values[name], str):
            _reject(outcome, name, "required: a non-empty string", 422)
            return outcome, values
        if len(values[name]) > limit:
            _reject(outcome, name, f"at most {limit} characters", 422)
            return outcome, values
    if not isinstance(values["label"], str):
        _reject(outcome, "label", "required: a non-empty string", 422)
        return outcome, values
    note = values["note"]
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        _reject(outcome, "note", f"a string of at most {MAX_NOTE_CHARS} characters", 422)
        return outcome, values
    return outcome, values


def write(table: FeedbackTable, calls: list[Checked]) -> int:
    """Write the rows of several checked calls in one commit (the group commit); each row's
    outcome becomes created, replaced, unchanged or duplicate. Returns the rows changed."""
    latest: dict[tuple[str, str], tuple[dict[str, Any], Outcome]] = {}
    for call in calls:
        for row, outcome in zip(call.rows, call.sources, strict=True):
            key = (row["prediction_id"], row["agent_id"])
            if key in latest:
                latest[key][1].status = "duplicate"
            latest[key] = (row, outcome)
    if not latest:
        return 0
    days = sorted({row[delta.PARTITION] for row, _ in latest.values()})
    existing = table.read(["prediction_id", "agent_id", "label", "model"], days=days)
    columns = [existing.column(c).to_pylist() for c in existing.column_names]
    before = {(p, a): (lbl, m) for p, a, lbl, m in zip(*columns, strict=True)}
    changed = []
    for key, (row, outcome) in latest.items():
        old = before.get(key)
        if old is None:
            outcome.status = "created"
        elif old[0] == row["label"]:
            outcome.status = "unchanged"
            continue
        else:
            outcome.status = "replaced"
        changed.append(row)
    if not changed:
        return 0
    columns = {name: [r[name] for r in changed] for name in [*SCHEMA.names, delta.PARTITION]}
    return table.upsert(
        pa.table(columns, schema=SCHEMA.append(pa.field(delta.PARTITION, pa.string())))
    )


def record_feedback(
    cfg: Settings,
    model: str,
    items: list[Mapping[str, Any]],
    *,
    new_labels: bool | None = None,
    labels: Iterable[str] | None = None,
    index: PredictionIndex | None = None,
    atomic: bool = False,
) -> FeedbackResult:
    """Check and write `items` ({prediction_id, label, agent_id, note?}) for `model`: the valid
    ones in one commit (all or none when `atomic`). `new_labels` None: the setting
    (:func:`allow_new_labels`); `labels` None: the champion's labels in the registry."""
    index = index or PredictionIndex(cfg.predictions, lookup_days())
    if labels is None:
        labels = champion_labels(cfg, model)
    allow = allow_new_labels() if new_labels is None else new_labels
    checked = check(cfg, model, list(items), index, labels=labels, new_labels=allow)
    result = FeedbackResult(checked.outcomes)
    if atomic and result.rejected:
        return result
    table = FeedbackTable(cfg.feedback)
    result.written = write(table, [checked])
    result.table_version = table.version()
    return result


def champion_labels(cfg: Settings, model: str) -> frozenset[str]:
    """The labels the registry's champion of `model` was scored on (its per-class metrics):
    the taxonomy it learned, new intents included. Empty when there is no champion."""
    from ml.registry.errors import RegistryError
    from ml.registry.store import Registry

    try:
        with Registry(cfg.registry_url) as registry:
            version = registry.get(model, alias="champion")
    except RegistryError:
        return frozenset()
    labels: set[str] = set()
    for split in ("test", "validation"):
        labels.update((version.metrics.get(split) or {}).get("per_class") or {})
    return frozenset(labels)

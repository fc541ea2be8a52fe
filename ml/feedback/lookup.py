"""Finding the predictions a correction names: in the `predictions` table, cheaply.

Feedback must name a prediction that exists. The table is read per data file and each file's
few columns are cached: data files never change once written (a flush adds a new file, a
rewrite replaces one under a new name), so a lookup reads only the files added since the last
one. Only the last `days` days of predictions are searched (INTENTFLOW_FEEDBACK_LOOKUP_DAYS,
default 30): older predictions cannot be corrected, which also bounds the cache (about 60
bytes a prediction).

The service also passes its prediction log's buffer (`pending`): a prediction answered a
moment ago, not yet flushed, can be corrected at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml import delta, storage
from ml.storage import Location

DEFAULT_DAYS = 30
COLUMNS = ["prediction_id", "model", "label", "version"]


@dataclass(frozen=True)
class Predicted:
    """What a correction needs of the prediction it corrects."""

    model: str
    label: str | None
    version: int
    day: str  # YYYY-MM-DD: the feedback row's partition
    labels: frozenset[str]  # the labels the predicting version could answer


@dataclass
class _File:
    day: str
    rows: pa.Table  # COLUMNS
    labels: frozenset[str]


class PredictionIndex:
    """Predictions by id, from the table at `root` (thread-safe: one lookup reads at a time)."""

    def __init__(self, root: Location, days: int = DEFAULT_DAYS) -> None:
        self.root, self.days = root, days
        self._files: dict[str, _File] = {}
        self._version: int | None = None
        self._lock = threading.Lock()
        self.files_read = 0  # for tests and metrics: files read from storage so far

    def find(
        self,
        ids: Iterable[str],
        pending: Callable[[set[str]], dict[str, Predicted]] | None = None,
    ) -> dict[str, Predicted]:
        """The predictions among `ids` (unflushed ones through `pending` first)."""
        wanted = set(ids)
        found = dict(pending(wanted)) if pending is not None else {}
        rest = wanted - found.keys()
        if not rest:
            return found
        with self._lock:
            self._refresh()
            value_set = pa.array(sorted(rest), pa.string())
            for file in self._files.values():
                hit = file.rows.filter(pc.is_in(file.rows.column("prediction_id"), value_set))
                for pid, model, label, version in zip(
                    *(hit.column(c).to_pylist() for c in COLUMNS), strict=True
                ):
                    found[pid] = Predicted(model, label, int(version), file.day, file.labels)
        return found

    def _refresh(self) -> None:
        table = delta.open_table(self.root)
        if table is None:
            self._files.clear()
            return
        if table.version() == self._version:
            return
        first = (datetime.now(UTC).date() - timedelta(days=self.days)).isoformat()
        actions = pa.table(table.get_add_actions(flatten=True))
        listed: dict[str, str] = {}
        if actions.num_rows and f"partition.{delta.PARTITION}" in actions.column_names:
            for path, day in zip(
                actions.column("path").to_pylist(),
                actions.column(f"partition.{delta.PARTITION}").to_pylist(),
                strict=True,
            ):
                if day >= first:
                    listed[path] = day
        for gone in self._files.keys() - listed.keys():
            del self._files[gone]
        for path, day in listed.items():
            if path not in self._files:
                self._files[path] = _read(self.root, path, day)
                self.files_read += 1
        self._version = table.version()


def _read(root: Location, path: str, day: str) -> _File:
    """One data file's ids, labels and versions, and every label its rows answered or ranked
    (`top_k`): labels the predicting versions know."""
    rows = storage.read_parquet(storage.join(root, *path.split("/")), [*COLUMNS, "top_k"])
    labels: set[str] = set()
    if "top_k" in rows.column_names and rows.num_rows:
        ranked = pc.struct_field(pc.list_flatten(rows.column("top_k")), "label")
        labels = {k for k in pc.unique(ranked).to_pylist() if k is not None}
    labels.update(v for v in pc.unique(rows.column("label")).to_pylist() if v is not None)
    return _File(day, rows.select(COLUMNS), frozenset(labels))


def day_of(ts: datetime | date) -> str:
    return (ts.astimezone(UTC).date() if isinstance(ts, datetime) else ts).isoformat()


def from_logged(rows: Iterable[Any]) -> dict[str, Predicted]:
    """ml.serving.prediction_log.Logged rows (the buffer) as Predicted, by id."""
    out = {}
    for row in rows:
        ranked = {p["label"] for p in row.fields.get("top_k") or []}
        labels = frozenset(ranked) | ({row.fields["label"]} if row.fields.get("label") else set())
        out[row.prediction_id] = Predicted(
            row.model, row.fields.get("label"), row.version, day_of(row.ts), labels
        )
    return out

"""The prediction log: every prediction the service answers, appended to the lake's
`predictions` table (Settings.predictions, partitioned by day), for monitoring and feedback.

A row holds the message redacted by ingest's redactor (ml.ingest.redact), never the raw text,
and the keyed hashes of the e-mails and phone numbers it held (`subject_keys`, ml.subjects), so
`intentflow erase` finds a person's predictions as it finds their transcripts.

Requests only append to a buffer in memory; a background thread redacts and writes it every
`flush_s` seconds (or at `max_rows` rows), and `close()` writes what is left, which the
service calls on shutdown (SIGTERM included). A write that fails keeps its rows for the next
flush, up to DROP_AFTER flushes' worth, so a storage outage neither loses a few seconds of
predictions nor grows memory without bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml.storage import Location

log = logging.getLogger(__name__)

# The `predictions` table's columns. `ts` is when the request arrived (UTC); `dt`, its day,
# is the table's partition column, added on append.
SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("runtime", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # redacted
        pa.field("label", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field(
            "top_k",
            pa.list_(pa.struct([("label", pa.string()), ("confidence", pa.float64())])),
            nullable=False,
        ),
        pa.field("scores", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("subject_keys", pa.list_(pa.string()), nullable=False),
    ]
)
# Rows kept while writes fail: this many flushes' worth (max_rows each), then the oldest go.
DROP_AFTER = 20


@dataclass(frozen=True)
class Logged:
    """One answered prediction, as the request handler hands it over (raw text: it is
    redacted by the flush, off the request path)."""

    prediction_id: str
    ts: datetime
    model: str
    version: int
    task: str
    runtime: str
    text: str
    fields: dict[str, Any]  # ml.serving.responses.log_fields
    latency_ms: float


class PredictionTable:
    """The lake's `predictions` Delta table (ml.delta), partitioned by the request's day (`dt`):
    each flush is one append commit, on a local folder or object storage. Spark, DuckDB or
    Polars read it from its path, as the transcripts."""

    def __init__(self, root: Location) -> None:
        self.root = root

    def append(self, table: pa.Table) -> int:
        """Append `table`'s rows in one commit; the table's version after it."""
        from ml import delta

        day = pc.strftime(table["ts"].cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%d")
        rows = table.append_column(delta.PARTITION, day.cast(pa.string()))
        delta.commit(lambda: delta.write(self.root, rows, mode="append"))
        version = delta.open_table(self.root)
        return version.version() if version is not None else 0

    def days(self) -> list[str]:
        from ml import delta

        table = delta.open_table(self.root)
        return [] if table is None else delta.days(table)

    def read_day(self, day: str, columns: list[str] | None = None) -> pa.Table:
        from ml import delta

        table = delta.open_table(self.root)
        if table is None:
            return SCHEMA.empty_table()
        return delta.read_day(table, day, columns)

    def rewrite_day(self, day: str, keep: Callable[[pa.Table], pa.Table]) -> bool:
        """Replace the day's rows by `keep(rows)` in one commit; a flush meanwhile makes it
        read and filter again, so no prediction is lost (ml.delta.rewrite_day)."""
        from ml import delta

        def change(rows: pa.Table, manifest: dict | None) -> tuple[pa.Table, None] | None:
            kept = keep(rows)
            return None if kept.num_rows == rows.num_rows else (kept, None)

        return delta.rewrite_day(self.root, day, change)


class PredictionLog:
    """The buffer between requests and the table; `on_written(rows)`, `on_failed()` and
    `on_dropped(rows)` report to metrics."""

    def __init__(
        self,
        table: PredictionTable,
        pii_key: bytes,
        *,
        flush_s: float,
        max_rows: int,
        on_written: Callable[[int], None] = lambda n: None,
        on_failed: Callable[[], None] = lambda: None,
        on_dropped: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.table, self._key = table, pii_key
        self.flush_s, self.max_rows = flush_s, max_rows
        self._on_written, self._on_failed, self._on_dropped = on_written, on_failed, on_dropped
        self._rows: list[Logged] = []
        self._writing_rows: list[Logged] = []  # the flush in progress (for :meth:`pending`)
        self._lock = threading.Lock()  # guards _rows and _writing_rows
        self._writing = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, rows: list[Logged]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_rows
        if full:
            self._wake.set()

    def pending(self, ids: set[str]) -> list[Logged]:
        """The rows among `ids` not in the table yet (buffered, or being written): feedback
        on a prediction answered a moment ago finds it here."""
        with self._lock:
            return [r for r in (*self._writing_rows, *self._rows) if r.prediction_id in ids]

    def close(self) -> None:
        """Stop the thread and write every row still buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> int:
        """Write the buffered rows; the number written (0 when a write failed: they stay)."""
        with self._writing:
            with self._lock:
                rows, self._rows = self._rows, []
                self._writing_rows = rows
            if not rows:
                return 0
            try:
                self.table.append(self._to_table(rows))
            except Exception as exc:  # storage down, disk full: keep the rows, say so
                log.error(
                    "prediction log: writing %d rows failed: %s", len(rows), type(exc).__name__
                )
                self._on_failed()
                self._keep(rows)
                return 0
            finally:
                with self._lock:
                    self._writing_rows = []
            self._on_written(len(rows))
            return len(rows)

    def _keep(self, rows: list[Logged]) -> None:
        with self._lock:
            self._rows[:0] = rows
            excess = len(self._rows) - self.max_rows * DROP_AFTER
            if excess > 0:
                del self._rows[:excess]
                self._on_dropped(excess)
                log.error("prediction log: %d unwritten rows dropped", excess)

    def _to_table(self, rows: list[Logged]) -> pa.Table:
        """Rows as the table's columns: text redacted, identifiers as subject keys."""
        from ml.ingest.redact import identifiers, redact
        from ml.subjects import subject_key

        columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
        for row in rows:
            keys = {subject_key(kind, value, self._key) for kind, value in identifiers(row.text)}
            values = {
                "prediction_id": row.prediction_id,
                "ts": row.ts,
                "model": row.model,
                "version": row.version,
                "task": row.task,
                "runtime": row.runtime,
                "text": redact(row.text),
                "label": row.fields["label"],
                "confidence": row.fields["confidence"],
                "top_k": row.fields["top_k"],
                "scores": list(row.fields["scores"].items()),
                "latency_ms": row.latency_ms,
                "subject_keys": sorted(keys),
            }
            for name, value in values.items():
                columns[name].append(value)
        return pa.table(columns, schema=SCHEMA)

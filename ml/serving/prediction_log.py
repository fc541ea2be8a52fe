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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ml import storage
from ml.storage import Location

log = logging.getLogger(__name__)

# The `predictions` table's columns. `ts` is when the request arrived (UTC); `dt`, its day,
# names the partition folder and is not a column.
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
    """Where the log's rows go: one Parquet file per day and flush,
    `ROOT/dt=YYYY-MM-DD/part-<time>-<id>.parquet`, written atomically (ml.storage.write_parquet:
    a reader never sees half a file), on a local folder or an fsspec URL. The lake's move to a
    Delta table changes this class only."""

    def __init__(self, root: Location) -> None:
        self.root = root

    def append(self, table: pa.Table) -> list[Location]:
        written = []
        days = table["ts"].cast(pa.timestamp("us", tz="UTC")).to_pylist()
        by_day: dict[str, list[int]] = {}
        for i, ts in enumerate(days):
            by_day.setdefault(ts.date().isoformat(), []).append(i)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        for day, rows in sorted(by_day.items()):
            folder = storage.join(self.root, f"dt={day}")
            if not storage.is_remote(folder):
                storage.private_folder(Path(self.root))  # redacted, still customers' messages
                storage.private_folder(Path(folder))
            name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
            written.append(
                storage.write_parquet(table.take(rows), storage.join(folder, name), private=True)
            )
        return written

    def files(self) -> list[Location]:
        """Every part file, oldest day first (erasure reads them one by one)."""
        if storage.is_remote(self.root):
            fs, path = storage.filesystem(str(self.root))
            fs.invalidate_cache(path)
            return [
                f"{fs.unstrip_protocol(p)}" for p in sorted(fs.glob(f"{path}/dt=*/part-*.parquet"))
            ]
        return sorted(Path(self.root).glob("dt=*/part-*.parquet"))

    def replace(self, path: Location, table: pa.Table) -> None:
        """Rewrite one part file with `table` (atomically), or delete it when `table` is empty."""
        if table.num_rows:
            storage.write_parquet(table, path, private=True)
        elif storage.is_remote(path):
            fs, key = storage.filesystem(str(path))
            fs.rm(key)
        else:
            Path(path).unlink()


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
        self._lock = threading.Lock()  # guards _rows
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

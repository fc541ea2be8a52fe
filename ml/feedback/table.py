"""The lake's `feedback` Delta table (Settings.feedback): one row per correction, partitioned
by `dt`, the day the corrected prediction was made, so a day's predictions and their
corrections go together (erasure and retention treat them alike).

Idempotent on (prediction_id, agent_id): an agent has one correction per prediction. Writing
the same label again changes nothing (no commit when nothing changes); another label from the
same agent replaces the earlier row (its `ts`, `note` too). Two agents are two rows: the
retrain resolves them (ml.feedback.training). Every write is one MERGE commit, however many
corrections and days it holds (the service's group commit relies on it).

No customer text here: the corrected message is joined from the `predictions` table (already
redacted) when a retrain needs it. The agent's note is redacted (ml.ingest.redact) and the
identifiers removed from it are kept as keyed hashes (`subject_keys`, ml.subjects), so
`intentflow erase` finds them as it finds transcripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml import delta
from ml.storage import Location

SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("agent_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # the correct label, per the agent
        pa.field("note", pa.string()),  # redacted
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),  # received
        pa.field("predicted_label", pa.string()),  # what the model answered
        pa.field("version", pa.int32(), nullable=False),  # the version that predicted
        pa.field("subject_keys", pa.list_(pa.string()), nullable=False),  # of the note
    ]
)
KEY = ("prediction_id", "agent_id")


class FeedbackTable:
    """The `feedback` table at `root` (local folder or object storage, as the other tables)."""

    def __init__(self, root: Location) -> None:
        self.root = root

    def version(self) -> int | None:
        table = delta.open_table(self.root)
        return None if table is None else table.version()

    def days(self) -> list[str]:
        table = delta.open_table(self.root)
        return [] if table is None else delta.days(table)

    def read(
        self,
        columns: list[str] | None = None,
        model: str | None = None,
        days: list[str] | None = None,
        as_of: int | None = None,
    ) -> pa.Table:
        """Rows (with `dt`), of one model and some days when given; empty (with the schema)
        when there is no table yet."""
        import pyarrow.dataset as ds

        wanted = [*SCHEMA.names, delta.PARTITION] if columns is None else columns
        table = delta.open_table(self.root, as_of)
        if table is None:
            empty = SCHEMA.append(pa.field(delta.PARTITION, pa.string()))
            return empty.empty_table().select(wanted)
        flt = None
        if model is not None:
            flt = ds.field("model") == model
        if days is not None:
            in_days = ds.field(delta.PARTITION).isin(days)
            flt = in_days if flt is None else flt & in_days
        return table.to_pyarrow_dataset().to_table(columns=wanted, filter=flt)

    def upsert(self, rows: pa.Table) -> int:
        """Write `rows` (SCHEMA plus `dt`, one per key) in one commit: new keys inserted, keys
        whose label changed replaced, the rest left as they are. Returns the rows that changed
        the table (0: no commit)."""
        if rows.num_rows == 0:
            return 0
        rows = rows.select([*SCHEMA.names, delta.PARTITION]).cast(
            SCHEMA.append(pa.field(delta.PARTITION, pa.string()))
        )

        def merge() -> int:
            table = _table(self.root)
            days = sorted(set(rows.column(delta.PARTITION).to_pylist()))
            for day in days:
                delta.day_predicate(day)  # an ISO date, never free text, goes in the SQL
            listed = ", ".join(f"'{day}'" for day in days)
            # The day in the predicate lets the merge read only the days it touches.
            predicate = (
                f"t.{delta.PARTITION} IN ({listed}) AND t.{delta.PARTITION} = s.{delta.PARTITION}"
                " AND t.prediction_id = s.prediction_id AND t.agent_id = s.agent_id"
            )
            with delta.private(self.root):
                done = (
                    table.merge(
                        rows,
                        predicate,
                        source_alias="s",
                        target_alias="t",
                        writer_properties=delta.writer_properties(),
                        streamed_exec=False,
                    )
                    .when_matched_update_all(predicate="t.label <> s.label")
                    .when_not_matched_insert_all()
                    .execute()
                )
            return int(done.get("num_target_rows_inserted", 0)) + int(
                done.get("num_target_rows_updated", 0)
            )

        return delta.commit(merge)

    def delete(self, day: str, hit: Callable[[pa.Table], pa.Array]) -> int:
        """Remove the day's rows `hit(rows)` marks, in one commit that a concurrent write makes
        read again (erasure). Returns the rows removed."""
        removed = [0]

        def change(rows: pa.Table, manifest: dict | None) -> tuple[pa.Table, None] | None:
            kept = rows.filter(pc.invert(pc.fill_null(hit(rows), False)))
            removed[0] = rows.num_rows - kept.num_rows
            return None if removed[0] == 0 else (kept, None)

        delta.rewrite_day(self.root, day, change)
        return removed[0]


def _table(root: Location) -> Any:
    return delta._table_for(root, SCHEMA)  # created empty the first time

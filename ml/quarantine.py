"""The quarantine: every record that is not used, with where it came from, why, and as read.

One schema for ingest (the lake's per-day quarantine) and for labeled sources (a snapshot's
quarantine.parquet), so a person reads every quarantine the same way: records in = records
used + records quarantined, always.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

QUARANTINE_FILE = "quarantine.parquet"

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("record", pa.int64(), nullable=False),  # 1-based line or record number
        pa.field("rule", pa.string(), nullable=False),  # machine-readable rule id
        pa.field("reason", pa.string(), nullable=False),  # what a person reads
        pa.field("conversation_id", pa.string(), nullable=True),
        pa.field("raw", pa.string(), nullable=False),  # the record as read, never altered
    ]
)


def quarantine_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Quarantine rows (dicts with the schema's fields; conversation_id may be left out)."""
    return pa.Table.from_pylist(
        [{"conversation_id": None, **row} for row in rows], schema=QUARANTINE_SCHEMA
    )


def rule_counts(table: pa.Table) -> dict[str, int]:
    """How many records broke each rule, most frequent first."""
    return dict(Counter(table.column("rule").to_pylist()).most_common())

"""The quarantine: every record that is not used, with where it came from, why, and as read.

One schema for ingest (the lake's per-day quarantine) and for labeled sources (a snapshot's
quarantine.parquet), so a person reads every quarantine the same way: records in = records
used + records quarantined, always.

Ingest's quarantine holds customer records, so :func:`redacted_table` builds it: the raw
record and the reason go through the redactor, a personal conversation id becomes its
pseudonym, and `subject_keys` keeps the keyed hashes of the e-mails and phone numbers removed
(ml.subjects), so erasure still finds a person's quarantined records. Labeled sources keep
the record as read in their snapshot: they are configured training data, read as they are.
An evaluation's report keeps where and why only (:class:`Refusals`): reports never hold
customer text, and the record stays in the file it was read from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ml.ingest.parse import clean_text
from ml.ingest.redact import identifiers, redact, redact_array
from ml.subjects import pseudonym, subject_key

QUARANTINE_FILE = "quarantine.parquet"

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("record", pa.int64(), nullable=False),  # 1-based line or record number
        pa.field("rule", pa.string(), nullable=False),  # machine-readable rule id
        pa.field("reason", pa.string(), nullable=False),  # what a person reads
        pa.field("conversation_id", pa.string(), nullable=True),
        pa.field("raw", pa.string(), nullable=False),  # the record as read (ingest: redacted)
        # Sorted keyed hashes of the e-mails and phones redacted from the record (ml.subjects).
        pa.field("subject_keys", pa.list_(pa.string()), nullable=False),
    ]
)


def quarantine_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Quarantine rows (dicts with the schema's fields; conversation_id and subject_keys may be
    left out)."""
    return pa.Table.from_pylist(
        [{"conversation_id": None, "subject_keys": [], **row} for row in rows],
        schema=QUARANTINE_SCHEMA,
    )


def redacted_table(rows: Iterable[Mapping[str, Any]], key: Callable[[], bytes]) -> pa.Table:
    """Ingest's quarantine rows with no PII the redactor finds: see the module's docstring.

    `key`: the PII key (ml.subjects.pii_key), asked for only when a record holds an e-mail,
    a phone number or a personal id.
    """
    # Cleaned as ingest cleans a turn (NFKC, no invisible characters) before redaction: a
    # full-width `＠` or a zero-width space inside an e-mail must not hide it here either.
    rows = [
        {
            "conversation_id": None,
            **row,
            "raw": clean_text(row["raw"]),
            "reason": clean_text(row["reason"]),
        }
        for row in rows
    ]
    if not rows:
        return quarantine_table([])

    def redacted(column: str) -> list[str]:  # vectorised: a file delivered twice is all repeats
        return redact_array(pa.array([r[column] for r in rows], pa.string())).to_pylist()

    reasons, raws = redacted("reason"), redacted("raw")
    out = []
    for row, reason, raw in zip(rows, reasons, raws, strict=True):
        found: list[tuple[str, str]] = []
        if "\\" in row["raw"] and (decoded := _redacted_json(row["raw"], found)) is not None:
            raw = decoded
        elif raw != row["raw"]:
            found = identifiers(row["raw"])
        cid = row["conversation_id"]
        if cid is not None and redact(cid) != cid:
            cid = pseudonym(cid, key())
        keys = sorted({subject_key(kind, value, key()) for kind, value in found})
        out.append(
            {**row, "reason": reason, "raw": raw, "conversation_id": cid, "subject_keys": keys}
        )
    return quarantine_table(out)


def _redacted_json(raw: str, found: list[tuple[str, str]]) -> str | None:
    """A JSON record redacted string by string, decoded, re-encoded as ASCII JSON (None: not
    JSON). Escapes hide PII from the redactor in the raw text: `\\u0040` for an e-mail's `@`,
    or `\\n` before a phone number (a letter, so no word boundary)."""
    try:
        # Pairs, not dicts: a record with a repeated key is quarantined for it, keep both.
        value = json.loads(raw, object_pairs_hook=_Pairs)
    except ValueError:
        return None
    except RecursionError:
        return _redacted_in_place(raw, found)

    def encode(v: Any) -> str:
        if isinstance(v, _Pairs):
            return "{" + ", ".join(f"{_redacted_string(k, found)}: {encode(x)}" for k, x in v) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(encode(x) for x in v) + "]"
        return _redacted_string(v, found) if isinstance(v, str) else json.dumps(v)

    try:
        return encode(value)
    except RecursionError:
        return _redacted_in_place(raw, found)


# A JSON string literal, escapes included.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def _redacted_in_place(raw: str, found: list[tuple[str, str]]) -> str:
    """A record nested deeper than Python decodes: each string literal redacted where it
    stands, the rest as written."""
    return _STRING_LITERAL.sub(lambda m: _redacted_literal(m.group(0), found), raw)


def _redacted_string(s: str, found: list[tuple[str, str]]) -> str:
    """One decoded JSON string, redacted, as an ASCII JSON literal (a lone surrogate stays its
    \\u escape); the identifiers it held appended to `found`."""
    s = clean_text(s)  # escapes may spell invisible or full-width characters
    clean = redact(s)
    if clean != s:
        found.extend(identifiers(s))
    return json.dumps(clean)


def _redacted_literal(literal: str, found: list[tuple[str, str]]) -> str:
    """A JSON string literal as written, redacted decoded (an undecodable one: as written)."""
    try:
        return _redacted_string(json.loads(literal), found)
    except ValueError:
        found.extend(identifiers(literal))
        return redact(literal)


class _Pairs(list):
    """A JSON object's (key, value) pairs, in order, repeats kept."""


def rule_counts(table: pa.Table) -> dict[str, int]:
    """How many records broke each rule, most frequent first."""
    return dict(Counter(table.column("rule").to_pylist()).most_common())


@dataclass
class Refusals:
    """The records of a labeled file (or source) that are not used, one quarantine row each:
    the file, the 1-based record number, the rule and a reason that names the field, never its
    value, and the record as read. Records read = records used + len(refusals), always."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, source_file: str, record: int, rule: str, reason: str, raw: str) -> None:
        self.rows.append(
            {
                "source_file": source_file,
                "record": record,
                "rule": rule,
                "reason": reason,
                "raw": raw,
            }
        )

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> pa.Table:
        """As a snapshot keeps them (quarantine.parquet beside the splits): with the records."""
        return quarantine_table(self.rows)

    def report_table(self) -> pa.Table:
        """As an evaluation report keeps them: file, record number, rule and reason; no record
        and no id (a report never holds customer text), a password in a file URL masked."""
        from ml.credentials import hide_credentials

        return quarantine_table(
            {**row, "source_file": hide_credentials(row["source_file"]), "raw": ""}
            for row in self.rows
        )

    def counts(self, used: int) -> dict[str, int]:
        """An evaluation's record counts, numbers as the registry stores them: `used` records
        scored (the metrics' `n`) of `records_read`, `records_quarantined` not."""
        return {"records_read": used + len(self.rows), "records_quarantined": len(self.rows)}

    def write_report(self, report_dir: Path) -> Path:
        """:meth:`report_table` as `report_dir`/quarantine.parquet (written even when empty, so
        every report says how many records it left out)."""
        import pyarrow.parquet as pq

        path = Path(report_dir) / QUARANTINE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.report_table(), path)
        return path

    def summary(self, limit: int = 3) -> str:
        """`N record(s) quarantined (rule: count, ...)`, then the first `limit` as
        `file: record K: reason`: what a log line or an error may say (no value is quoted)."""
        rules = ", ".join(f"{k}: {v}" for k, v in rule_counts(self.report_table()).items())
        first = "; ".join(
            f"{row['source_file']}: record {row['record']}: {row['reason']}"
            for row in self.report_table().to_pylist()[:limit]
        )
        more = "; ..." if len(self.rows) > limit else ""
        return f"{len(self.rows)} record(s) quarantined ({rules}): {first}{more}"

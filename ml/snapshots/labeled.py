"""Labeled files (CSV, JSONL, CLINC150/ABCD JSON, Parquet) read as intent rows and frozen
into snapshots split like the lake's, with ingestion's adapters (ml.ingest.sources, through
ml.snapshots.formats). The records that cannot be used are quarantined, for training and for
scoring alike (ml.quarantine.Refusals)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from ml import storage
from ml.quarantine import Refusals
from ml.snapshots.formats import (
    DEFAULT_LABEL_COLUMN,
    DEFAULT_TEXT_COLUMN,
    LABEL_COLUMNS,
    TEXT_COLUMNS,
    columns_of,
    items,
    pick,
)
from ml.snapshots.lake_window import COLUMNS, freeze_intents
from ml.snapshots.writer import EmptySnapshotError
from ml.storage import Location

log = logging.getLogger(__name__)


def snapshot_from_file(
    path: Path,
    out_root: Location,
    text_column: str = DEFAULT_TEXT_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
    test_fraction: float | None = 0.1,
    test_data: Path | None = None,
) -> dict[str, Any]:
    """A snapshot of one labeled file (see :func:`read_labeled`), split like the lake's, with
    the records it could not use in its quarantine.parquet. A record whose id was seen before
    is a duplicate: the first one is kept (`counts.duplicates`).

    The file's rows split into train, a 10% validation carve-out (early stopping, calibration)
    and `test_fraction` of test (0.1 as the lake's; None or 0: no test, the rest trains). With
    `test_data`, that file (read with the same columns) is the test split instead."""
    read, refused = read_labeled(path, text_column, label_column)
    table = _dedupe_first(read)
    if table.num_rows == 0:
        detail = f": {refused.summary()}" if len(refused) else ""
        raise EmptySnapshotError(f"{path} holds no labeled rows{detail}")
    share = 0 if test_data is not None else round(100 * (test_fraction or 0))
    if not 0 <= share <= 80:
        raise ValueError(f"test_fraction={test_fraction} must be between 0 and 0.8")
    file_hash = storage.file_sha256(path)
    source = [{"file": str(Path(path).absolute()), "sha256": file_hash}]
    identity: dict[str, Any] = {"file": file_hash, "columns": [text_column, label_column]}
    counts = {"records": read.num_rows + len(refused), "duplicates": read.num_rows - table.num_rows}
    test = None
    if test_data is not None:
        test_read, test_refused = read_labeled(test_data, text_column, label_column)
        test = _dedupe_first(test_read)
        refused.rows.extend(test_refused.rows)
        test_hash = storage.file_sha256(test_data)
        source.append({"file": str(Path(test_data).absolute()), "sha256": test_hash})
        identity["test_file"] = test_hash
        counts["records"] += test_read.num_rows + len(test_refused)
    info = {"window": None, "partitions": source, "counts": counts}
    return freeze_intents(table, out_root, identity, info, refused.table(), test, share)


def _dedupe_first(table: pa.Table) -> pa.Table:
    ids = table.column("conversation_id").to_pylist()
    seen: set[str] = set()
    keep = [i for i, cid in enumerate(ids) if not (cid in seen or seen.add(cid))]
    return table.take(pa.array(keep, type=pa.int64()))


def read_labeled(
    path: Path, text_column: str = DEFAULT_TEXT_COLUMN, label_column: str = DEFAULT_LABEL_COLUMN
) -> tuple[pa.Table, Refusals]:
    """A labeled file as (conversation_id, text, intent) rows, read by ingestion's adapters,
    and the records it could not use.

    Formats, by content: JSONL transcripts (text = the customer's turns, label `intent`), flat
    JSONL records (DSTC11's `utterance`/`intent`, or the named columns), CSV with a text and a
    label column (see ml.snapshots.formats.TEXT_COLUMNS/LABEL_COLUMNS for how defaults are
    picked), CLINC150 JSON (every part in the file), ABCD JSON, and Parquet (a snapshot split,
    a golden set). Ids are the record's own (`conversation_id`, DSTC11's `utterance_id`) or
    `<file name>:<record number>`.

    A record that is malformed (its rule from the adapter, or `invalid_field` naming the
    field), without text (`missing_text`) or without a label (`missing_label`) cannot be
    trained on or scored: it is refused, with the file, its number and the field. A file that
    cannot be read as labeled data at all (no such column, not JSON) raises ValueError.
    """
    from ml.ingest.sources import RecordError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labeled file at {path}")
    spec, fields = _labeled_spec(path, text_column, label_column)
    rows, refused = [], Refusals()
    for item in items(spec, str(path)):
        try:
            rows.append(_labeled_row(path, item, fields))
        except RecordError as exc:
            refused.add(str(path), item.number, exc.rule, str(exc), item.raw)
    if refused:
        log.warning("%s: %s", path, refused.summary())
    return pa.Table.from_pylist(
        rows, schema=pa.schema([(c, pa.string()) for c in COLUMNS])
    ), refused


def _labeled_spec(path: Path, text_column: str, label_column: str) -> tuple[Any, dict[str, str]]:
    """The ingestion source spec that reads `path`, and the source fields for text and label."""
    from ml.ingest.sources import SourceSpec

    name = path.stem
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        fmt = suffix[1:]
        header = columns_of(str(path), fmt)
        fields = {
            "text": pick(str(path), header, text_column, TEXT_COLUMNS),
            "intent": pick(str(path), header, label_column, LABEL_COLUMNS),
        }
        if "conversation_id" in header:
            fields["conversation_id"] = "conversation_id"
        return SourceSpec(str(path), fmt, layout="static", name=name, columns=fields), fields
    whole, first = _first_json_value(path)
    if whole and isinstance(first, list):  # one JSON document: ABCD conversations
        fields = {"turns": "original", "intent": "scenario.subflow", "conversation_id": "convo_id"}
        return SourceSpec(str(path), "abcd", name=name), fields
    if whole and isinstance(first, dict) and all(isinstance(v, list) for v in first.values()):
        fields = {"text": "[0]", "intent": "[1]", "conversation_id": "part and index"}
        return SourceSpec(str(path), "clinc150", name=name), fields
    if not isinstance(first, dict):
        raise ValueError(f"{path}: record 1 is not a JSON object")
    if "turns" in first and text_column not in first:  # ingest-format transcripts
        fields = {"turns": "turns", "intent": "intent", "conversation_id": "conversation_id"}
        return SourceSpec(str(path), "jsonl", name=name), fields
    fields = {
        "text": pick(str(path), list(first), text_column, TEXT_COLUMNS),
        "intent": pick(str(path), list(first), label_column, LABEL_COLUMNS),
    }
    for id_field in ("conversation_id", "utterance_id"):  # DSTC11 has stable utterance ids
        if id_field in first:
            fields["conversation_id"] = id_field
            break
    return SourceSpec(str(path), "jsonl", name=name, columns=fields), fields


def _first_json_value(path: Path) -> tuple[bool, Any]:
    """(True, the document) when the file is one JSON document (CLINC150, ABCD), else (False,
    its first JSON line)."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        pass
    line = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return False, json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: record 1 is not JSON ({exc.msg})") from None


def _labeled_row(path: Path, item: Any, fields: dict[str, str]) -> dict[str, str]:
    """One adapter Item as a (conversation_id, text, intent) row, or the RecordError naming
    its rule and field."""
    from ml.ingest.sources import RecordError
    from ml.transcript import model_text

    record = item.record
    if isinstance(record, RecordError):
        raise record
    if not isinstance(record, dict):
        raise RecordError("invalid_record", f"a JSON {type(record).__name__}, not an object")
    turns = record.get("turns")
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("speaker"), str) for t in turns
    ):
        field = fields.get("turns", "turns")
        raise RecordError(
            "invalid_field", f"field {field!r} must be a list of {{speaker, text}} objects"
        )
    text_field = fields.get("text") or f"{fields.get('turns', 'turns')}[].text"
    for turn in turns:
        if turn.get("text") is not None and not isinstance(turn["text"], str):
            raise RecordError("invalid_field", f"field {text_field!r} must be a string")
    intent = record.get("intent")
    if intent is not None and not isinstance(intent, str):
        raise RecordError("invalid_field", f"field {fields['intent']!r} must be a string")
    text = model_text({"speaker": t["speaker"], "text": t.get("text") or ""} for t in turns)
    if not text:
        raise RecordError("missing_text", f"field {text_field!r} is empty or missing")
    if not (isinstance(intent, str) and intent.strip()):
        raise RecordError("missing_label", f"field {fields['intent']!r} is empty or missing")
    # The record's own id where it has one (an id column, transcripts, CLINC150/ABCD adapters).
    cid = record.get("conversation_id") if "conversation_id" in fields else None
    return {
        "conversation_id": str(cid) if cid else f"{path.name}:{item.number}",
        "text": text,
        "intent": intent.strip(),
    }

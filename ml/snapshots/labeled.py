"""Labeled files (CSV, JSONL, CLINC150/ABCD JSON, Parquet) read as intent rows and frozen
into snapshots split like the lake's, with ingestion's adapters (ml.ingest.sources)."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import storage
from ml.snapshots.lake_window import COLUMNS, freeze_intents
from ml.snapshots.writer import EmptySnapshotError
from ml.storage import Location

log = logging.getLogger(__name__)

# When the named column is the default and the file lacks it, the first of these it has is used:
# Banking77 (`text,category`), Bitext (`instruction,...,intent,...,category`), DSTC11 JSONL
# (`utterance`, `intent`). `intent` comes before `category`: Bitext's category is a coarser label.
TEXT_COLUMNS = ("text", "utterance", "instruction")
LABEL_COLUMNS = ("label", "intent", "category")
DEFAULT_TEXT_COLUMN, DEFAULT_LABEL_COLUMN = TEXT_COLUMNS[0], LABEL_COLUMNS[0]


def snapshot_from_file(
    path: Path,
    out_root: Location,
    text_column: str = DEFAULT_TEXT_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
) -> dict[str, Any]:
    """A snapshot of one labeled file (see :func:`load_labeled`), split like the lake's."""
    table = _dedupe_first(load_labeled(path, text_column, label_column))
    if table.num_rows == 0:
        raise EmptySnapshotError(f"{path} holds no labeled rows")
    file_hash = storage.file_sha256(path)
    source = [{"file": str(path.absolute()), "sha256": file_hash}]
    identity = {"file": file_hash, "columns": [text_column, label_column]}
    return freeze_intents(table, out_root, identity, {"window": None, "partitions": source})


def _dedupe_first(table: pa.Table) -> pa.Table:
    ids = table.column("conversation_id").to_pylist()
    seen: set[str] = set()
    keep = [i for i, cid in enumerate(ids) if not (cid in seen or seen.add(cid))]
    return table.take(pa.array(keep, type=pa.int64()))


def load_labeled(
    path: Path, text_column: str = DEFAULT_TEXT_COLUMN, label_column: str = DEFAULT_LABEL_COLUMN
) -> pa.Table:
    """A labeled file as (conversation_id, text, intent) rows, read by ingestion's adapters.

    Formats, by content: JSONL transcripts (text = the customer's turns, label `intent`), flat
    JSONL records (DSTC11's `utterance`/`intent`, or the named columns), CSV with a text and a
    label column (see TEXT_COLUMNS/LABEL_COLUMNS for how defaults are picked), CLINC150 JSON
    (every part in the file), ABCD JSON, and Parquet (a snapshot split). Ids are the record's own
    (`conversation_id`, DSTC11's `utterance_id`) or `<file name>:<record number>`.

    A malformed record raises ValueError naming the file, the record and the field; records
    without a label or without text cannot be trained or scored: skipped, with a warning that
    counts them and names the first.
    """
    from ml.ingest import sources

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labeled file at {path}")
    if path.suffix.lower() == ".parquet":
        return _labeled_parquet(path, text_column, label_column)
    spec, fields = _labeled_spec(path, text_column, label_column)
    rows, skipped = [], []
    for item in sources.read_items(spec, str(path), date.min):
        row = _labeled_row(path, item, fields)
        if row["text"] and row["intent"]:
            rows.append(row)
        else:
            skipped.append(item.number)
    if skipped:
        log.warning(
            "%s: %d record(s) without a label or text skipped (records %s%s)",
            path,
            len(skipped),
            ", ".join(map(str, skipped[:10])),
            ", ..." if len(skipped) > 10 else "",
        )
    return pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in COLUMNS]))


def _pick(path: Path, found: list[str], named: str, candidates: tuple[str, ...]) -> str:
    """The column to read: `named` if present; for the default name, the first candidate present."""
    if named in found:
        return named
    if named == candidates[0]:
        for candidate in candidates[1:]:
            if candidate in found:
                log.info("%s: no column %r, using %r", path, named, candidate)
                return candidate
    raise ValueError(f"{path}: no column {named!r} (columns: {', '.join(found) or 'none'})")


def _labeled_spec(path: Path, text_column: str, label_column: str) -> tuple[Any, dict[str, str]]:
    """The ingestion source spec that reads `path`, and the source fields for text and label."""
    import csv

    from ml.ingest.sources import SourceSpec

    name = path.stem
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
        fields = {
            "text": _pick(path, header, text_column, TEXT_COLUMNS),
            "intent": _pick(path, header, label_column, LABEL_COLUMNS),
        }
        if "conversation_id" in header:
            fields["conversation_id"] = "conversation_id"
        return SourceSpec(str(path), "csv", name=name, columns=fields), fields
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
        "text": _pick(path, list(first), text_column, TEXT_COLUMNS),
        "intent": _pick(path, list(first), label_column, LABEL_COLUMNS),
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


def _labeled_row(path: Path, item: Any, fields: dict[str, str]) -> dict[str, str | None]:
    """One adapter Item as a (conversation_id, text, intent) row, or a ValueError naming it."""
    from ml.ingest.sources import RecordError
    from ml.transcript import model_text

    where = f"{path}: record {item.number}"
    record = item.record
    if isinstance(record, RecordError):
        raise ValueError(f"{where}: {record}")
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a JSON {type(record).__name__}, not an object")
    turns = record.get("turns")
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("speaker"), str) for t in turns
    ):
        field = fields.get("turns", "turns")
        raise ValueError(f"{where}: field {field!r} must be a list of {{speaker, text}} objects")
    for turn in turns:
        if turn.get("text") is not None and not isinstance(turn["text"], str):
            field = fields.get("text") or f"{fields['turns']}[].text"
            raise ValueError(f"{where}: field {field!r} must be a string")
    intent = record.get("intent")
    if intent is not None and not isinstance(intent, str):
        raise ValueError(f"{where}: field {fields.get('intent', 'intent')!r} must be a string")
    # The record's own id where it has one (an id column, transcripts, CLINC150/ABCD adapters).
    cid = record.get("conversation_id") if "conversation_id" in fields else None
    text = model_text({"speaker": t["speaker"], "text": t.get("text") or ""} for t in turns)
    return {
        "conversation_id": str(cid) if cid else f"{path.name}:{item.number}",
        "text": text,
        "intent": intent.strip() if isinstance(intent, str) and intent.strip() else None,
    }


def _labeled_parquet(path: Path, text_column: str, label_column: str) -> pa.Table:
    """A Parquet file (a snapshot split or a golden set) with a text and a label column."""
    table = pq.read_table(path)
    text = _pick(path, table.column_names, text_column, TEXT_COLUMNS)
    label = _pick(path, table.column_names, label_column, LABEL_COLUMNS)
    ids = (
        table.column("conversation_id").cast(pa.string())
        if "conversation_id" in table.column_names
        else pa.array([f"{path.name}:{i + 1}" for i in range(table.num_rows)])
    )
    out = pa.table(
        {
            "conversation_id": ids,
            "text": pc.utf8_trim_whitespace(table.column(text).cast(pa.string())),
            "intent": table.column(label).cast(pa.string()),
        }
    )
    has_text = pc.fill_null(pc.greater(pc.utf8_length(out.column("text")), 0), False)
    return out.filter(pc.and_(pc.is_valid(out.column("intent")), has_text))

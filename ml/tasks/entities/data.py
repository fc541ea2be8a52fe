"""The entities task's training data: labeled sources read into a content-hashed snapshot.

The lake's transcripts are PII-redacted before they are stored (ml.ingest.redact): order ids,
names and the like are already replaced there, so a tagger cannot learn them from the lake.
Entity training data therefore comes from the model's configured *labeled* source, never the
lake: Bitext's customer requests with their entity spans (character offsets into
`instruction`), or any CSV/JSONL/Parquet file with a text and a `spans` column, plus,
optionally, ABCD conversations whose scenario values (customer name, order id, city) appear
verbatim in the customer's turns (weak labels: a value the scenario does not list stays
unlabeled). All are read with ml.ingest.sources' adapters (ml.snapshots.formats), and a file
given to evaluate is read exactly as one given to build_dataset (read_examples).

Bad spans (outside the text, overlapping, empty, cutting a word in two, of an unknown type;
ml.tasks.entities.spans.check_spans) send their record to quarantine with the rule and the
reason; they are never trained on, nor scored.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from ml import storage
from ml.credentials import hide_credentials
from ml.quarantine import Refusals
from ml.snapshots.formats import (
    DEFAULT_TEXT_COLUMN,
    TEXT_COLUMNS,
    columns_of,
    file_format,
    flat_spec,
    items,
    pick,
)
from ml.snapshots.writer import content_hash, existing, freeze, split_rows
from ml.storage import Location
from ml.tasks.entities.model import TASK
from ml.tasks.entities.spans import ENTITY_TYPES, Span, SpanError, check_spans

log = logging.getLogger(__name__)

# Bitext's entity_type -> ours.
BITEXT_TYPES = {
    "order_id": "order_id",
    "invoice_id": "invoice_id",
    "account_type": "account_type",
    "person_name": "person_name",
    "delivery_city": "city",
    "delivery_country": "country",
    "refund_amount": "amount",
}
# ABCD scenario values that name one of our types: (section, key) -> type.
ABCD_VALUES = {
    ("personal", "customer_name"): "person_name",
    ("order", "order_id"): "order_id",
    ("order", "city"): "city",
}
SPLIT_RULE = (
    "sha256(template) mod 100: train<80, validation<90, test (template: text with spans typed)"
)
# Bitext's span columns: at most one span a record, by character offsets into the text.
BITEXT_SPAN_COLUMNS = ("entity_type", "start_offset", "end_offset")
# Or a column of spans, each {start, end, type} (a snapshot's splits; JSON text in a CSV).
SPANS_COLUMN = "spans"


def read_examples(
    source: str, text_column: str = DEFAULT_TEXT_COLUMN
) -> tuple[list[dict[str, Any]], Refusals, dict[str, str]]:
    """(examples, refused records, the file's sha256 entry) of a labeled span file, read
    through ml.snapshots.formats (CSV, JSON lines or Parquet by suffix; a local path or an
    fsspec URL): the same reading for build_dataset and evaluate.

    Text: `text_column` (default: text, utterance, then instruction, as Bitext names it).
    Spans: a `spans` column (a list of {start, end, type}, JSON text in a CSV), else Bitext's
    entity_type/start_offset/end_offset (types mapped by BITEXT_TYPES; an empty type: no
    entity). An example is {id, text, spans, source}. A record that is malformed, without text,
    or whose spans fail ml.tasks.entities.spans.check_spans is refused with its rule.
    """
    from ml.ingest.sources import RecordError

    fmt = file_format(source)
    found = columns_of(source, fmt)
    text_field = pick(source, found, text_column, TEXT_COLUMNS)
    if SPANS_COLUMN in found:
        kind = "spans"
    elif set(BITEXT_SPAN_COLUMNS) <= set(found):
        kind = "bitext"
    else:
        raise ValueError(
            f"{source}: no span columns: {SPANS_COLUMN!r}, or Bitext's "
            f"{', '.join(BITEXT_SPAN_COLUMNS)} (columns: {', '.join(found) or 'none'})"
        )
    examples: list[dict[str, Any]] = []
    refused = Refusals()
    for item in items(flat_spec(source), source):
        try:
            record = item.record
            if isinstance(record, RecordError):
                raise record
            if not isinstance(record, dict):
                raise RecordError("invalid_record", "record is not an object")
            text = record.get(text_field)
            if text is not None and not isinstance(text, str):
                raise RecordError("invalid_field", f"field {text_field!r} must be a string")
            if not text or not text.strip():
                raise RecordError("missing_text", f"field {text_field!r} is empty or missing")
            spans = _spans(record) if kind == "spans" else _bitext_spans(record)
            ordered = check_spans(text, spans)
        except (RecordError, SpanError) as exc:
            refused.add(source, item.number, exc.rule, str(exc), item.raw)
            continue
        rid = record.get("id") if kind == "spans" else None
        examples.append(
            {
                "id": str(rid) if rid else f"{kind}-{item.number}",
                "text": text,
                "spans": [asdict(s) for s in ordered],
                "source": str(record.get("source") or kind) if kind == "spans" else kind,
            }
        )
    if refused:
        log.warning("%s: %s", hide_credentials(source), refused.summary())
    return examples, refused, {"file": source, "sha256": storage.file_sha256(source)}


def _bitext_spans(record: dict[str, Any]) -> list[Span]:
    """Bitext's one span (none when entity_type is empty); RecordError for bad offsets."""
    from ml.ingest.sources import RecordError

    kind = str(record.get("entity_type") or "").strip()
    if not kind:
        return []
    try:
        start, end = int(record["start_offset"]), int(record["end_offset"])
    except (KeyError, TypeError, ValueError):
        raise RecordError("invalid_field", "start_offset/end_offset are not integers") from None
    return [Span(start, end, BITEXT_TYPES.get(kind, kind))]


def _spans(record: dict[str, Any]) -> list[Span]:
    """The `spans` column's spans; RecordError when it is not a list of {start, end, type}."""
    from ml.ingest.sources import RecordError

    value = record.get(SPANS_COLUMN)
    if value is None or value == "":
        return []
    try:
        if isinstance(value, str):
            value = json.loads(value)
        return [
            Span(int(s["start"]), int(s["end"]), BITEXT_TYPES.get(s["type"], s["type"]))
            for s in value
        ]
    except (TypeError, ValueError, KeyError):
        raise RecordError(
            "invalid_field", f"field {SPANS_COLUMN!r} must be a list of {{start, end, type}}"
        ) from None


def _find_value(text: str, value: str) -> list[tuple[int, int]]:
    """Case-insensitive whole-word occurrences of `value` in `text`."""
    pattern = r"(?<!\w)" + re.escape(value.strip()) + r"(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def _abcd(url: str, examples: list[dict[str, Any]], refused: Refusals) -> None:
    """ABCD conversations via ml.ingest.sources' ABCD adapter; weak labels from scenario values."""
    from ml.ingest.sources import RecordError, SourceSpec, read_items

    spec = SourceSpec(url=url, format="abcd", layout="static", name="abcd")
    for item in read_items(spec, url, date.today()):
        record = item.record
        if isinstance(record, RecordError) or not isinstance(record, dict):
            refused.add(url, item.number, "invalid_record", "not an ABCD conversation", item.raw)
            continue
        scenario = json.loads(item.raw).get("scenario") or {}
        values = [
            (str(scenario.get(section, {}).get(key)), kind)
            for (section, key), kind in ABCD_VALUES.items()
            if scenario.get(section, {}).get(key)
        ]
        for t, turn in enumerate(record.get("turns") or []):
            if not isinstance(turn, dict) or turn.get("speaker") != "customer":
                continue
            text = turn.get("text") or ""
            spans = [
                Span(s, e, kind) for value, kind in values for s, e in _find_value(text, value)
            ]
            if spans:  # turns without a known value would be unlabeled, not entity-free
                try:
                    ordered = check_spans(text, spans)
                except SpanError as exc:
                    refused.add(url, item.number, exc.rule, str(exc), item.raw)
                    continue
                rid = f"{record['conversation_id']}-{t}"
                examples.append(
                    {
                        "id": rid,
                        "text": text,
                        "spans": [asdict(s) for s in ordered],
                        "source": "abcd",
                    }
                )


def template(row: dict[str, Any]) -> str:
    """The text with each span replaced by its type: near-duplicates share a template."""
    text, parts, pos = row["text"], [], 0
    for s in row["spans"]:
        parts += [text[pos : s["start"]], f"<{s['type']}>"]
        pos = s["end"]
    parts.append(text[pos:])
    return " ".join("".join(parts).lower().split())


def build_dataset(
    source: str,
    out_root: Location,
    abcd: str | None = None,
    text_column: str = DEFAULT_TEXT_COLUMN,
    **_: Any,
) -> dict[str, Any]:
    """Freeze a span file (`source`, read by :func:`read_examples`) and optional ABCD weak
    labels (`abcd`, a JSON file) into a content-hashed snapshot: train/validation/test.parquet
    (id, text, spans, source), quarantine.parquet (ml.quarantine's schema) and snapshot.json.

    Split by the text's template (spans replaced by their type), so "cancel order 123" and
    "cancel order 456" land in the same split and the test set measures new phrasings.
    """
    import pyarrow as pa

    examples, refused, read = read_examples(source, text_column)
    files = [read]
    if abcd:
        _abcd(abcd, examples, refused)
        files.append({"file": abcd, "sha256": storage.file_sha256(abcd)})
    if not examples:
        raise ValueError(f"{source}: no usable entity examples ({len(refused)} quarantined)")
    rows = sorted(examples, key=lambda r: r["id"])
    digest = content_hash({"rows": rows, "split": SPLIT_RULE, "types": ENTITY_TYPES})
    found = existing(out_root, digest)
    if found is not None:
        return found
    span_type = pa.list_(
        pa.struct([("start", pa.int32()), ("end", pa.int32()), ("type", pa.string())])
    )
    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("spans", span_type), ("source", pa.string())]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    info = {
        "task": TASK,
        "window": None,
        "partitions": files,
        "source": source,
        "labels": list(ENTITY_TYPES),
        "entities": dict(Counter(s["type"] for r in rows for s in r["spans"])),
        "split_rule": SPLIT_RULE,
    }
    splits = split_rows(table, [template(r) for r in rows])
    return freeze(out_root, digest, splits, info, refused.table())


def read_split(path: Path) -> tuple[list[str], list[list[Span]]]:
    """(texts, spans) of a split file, or of a snapshot directory's test split."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / "test.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no entity data at {path}")
    table = pq.read_table(path)
    for column in ("text", "spans"):
        if column not in table.column_names:
            raise ValueError(
                f"{path}: no column {column!r} (columns: {', '.join(table.column_names)})"
            )
    data = table.select(["text", "spans"]).to_pydict()
    spans = [[Span(s["start"], s["end"], s["type"]) for s in row or []] for row in data["spans"]]
    return [t or "" for t in data["text"]], spans

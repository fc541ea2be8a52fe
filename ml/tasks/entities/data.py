"""The entities task's training data: labeled sources read into a content-hashed snapshot.

The lake's transcripts are PII-redacted before they are stored (ml.ingest.redact): order ids,
names and the like are already replaced there, so a tagger cannot learn them from the lake.
Entity training data therefore comes from the model's configured *labeled* source, never the
lake: Bitext's customer requests with their entity spans (character offsets into
`instruction`), plus, optionally, ABCD conversations whose scenario values (customer name, order
id, city) appear verbatim in the customer's turns (weak labels: a value the scenario does not
list stays unlabeled). Both are read with ml.ingest.sources' adapters.

Bad spans (outside the text, overlapping, empty, cutting a word in two, of an unknown type;
ml.tasks.entities.spans.check_spans) send their record to quarantine with the rule and the
reason; they are never trained on.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ml import storage
from ml.quarantine import quarantine_table
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


@dataclass
class _Collected:
    """The rows read so far, and the quarantined records (file, record, rule, reason, raw)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    def quarantine(self, file: str, number: int, rule: str, reason: str, raw: str) -> None:
        self.quarantined.append(
            {"source_file": file, "record": number, "rule": rule, "reason": reason, "raw": raw}
        )

    def add(
        self, rid: str, text: str, spans: list[Span], source: str, raw: str, file: str, number: int
    ) -> None:
        try:
            ordered = check_spans(text, spans)
        except SpanError as exc:
            self.quarantine(file, number, exc.rule, str(exc), raw)
            return
        self.rows.append(
            {
                "id": rid,
                "text": text,
                "spans": [asdict(s) for s in ordered],
                "source": source,
            }
        )


def _bitext(url: str, out: _Collected) -> None:
    """Bitext's CSV via ml.ingest.sources' CSV adapter: `instruction` with at most one span."""
    from ml.ingest.sources import RecordError, SourceSpec, read_items

    spec = SourceSpec(url=url, format="csv", layout="static")
    for item in read_items(spec, url, date.today()):
        record = item.record
        if isinstance(record, RecordError):
            out.quarantine(url, item.number, record.rule, str(record), item.raw)
            continue
        text = record.get("instruction") or ""
        if not text.strip():
            out.quarantine(url, item.number, "missing_text", "field instruction is empty", item.raw)
            continue
        spans: list[Span] = []
        kind = (record.get("entity_type") or "").strip()
        if kind:
            try:
                start, end = int(record["start_offset"]), int(record["end_offset"])
            except (KeyError, TypeError, ValueError):
                out.quarantine(
                    url,
                    item.number,
                    "invalid_field",
                    "start_offset/end_offset are not integers",
                    item.raw,
                )
                continue
            spans.append(Span(start, end, BITEXT_TYPES.get(kind, kind)))
        out.add(f"bitext-{item.number}", text, spans, "bitext", item.raw, url, item.number)


def _find_value(text: str, value: str) -> list[tuple[int, int]]:
    """Case-insensitive whole-word occurrences of `value` in `text`."""
    pattern = r"(?<!\w)" + re.escape(value.strip()) + r"(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def _abcd(url: str, out: _Collected) -> None:
    """ABCD conversations via ml.ingest.sources' ABCD adapter; weak labels from scenario values."""
    from ml.ingest.sources import RecordError, SourceSpec, read_items

    spec = SourceSpec(url=url, format="abcd", layout="static", name="abcd")
    for item in read_items(spec, url, date.today()):
        record = item.record
        if isinstance(record, RecordError) or not isinstance(record, dict):
            out.quarantine(url, item.number, "invalid_record", "not an ABCD conversation", item.raw)
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
                rid = f"{record['conversation_id']}-{t}"
                out.add(rid, text, spans, "abcd", item.raw, url, item.number)


def template(row: dict[str, Any]) -> str:
    """The text with each span replaced by its type: near-duplicates share a template."""
    text, parts, pos = row["text"], [], 0
    for s in row["spans"]:
        parts += [text[pos : s["start"]], f"<{s['type']}>"]
        pos = s["end"]
    parts.append(text[pos:])
    return " ".join("".join(parts).lower().split())


def build_dataset(
    source: str, out_root: Location, abcd: str | None = None, **_: Any
) -> dict[str, Any]:
    """Freeze Bitext-style spans (`source`, a CSV) and optional ABCD weak labels (`abcd`, a JSON
    file) into a content-hashed snapshot: train/validation/test.parquet (id, text, spans,
    source), quarantine.parquet (ml.quarantine's schema) and snapshot.json.

    Split by the text's template (spans replaced by their type), so "cancel order 123" and
    "cancel order 456" land in the same split and the test set measures new phrasings.
    """
    import pyarrow as pa

    collected = _Collected()
    _bitext(source, collected)
    if abcd:
        _abcd(abcd, collected)
    if not collected.rows:
        raise ValueError(
            f"{source}: no usable entity examples ({len(collected.quarantined)} quarantined)"
        )
    rows = sorted(collected.rows, key=lambda r: r["id"])
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
        "partitions": [
            {"file": str(f), "sha256": storage.file_sha256(f)} for f in (source, abcd) if f
        ],
        "source": source,
        "labels": list(ENTITY_TYPES),
        "entities": dict(Counter(s["type"] for r in rows for s in r["spans"])),
        "split_rule": SPLIT_RULE,
    }
    splits = split_rows(table, [template(r) for r in rows])
    return freeze(out_root, digest, splits, info, quarantine_table(collected.quarantined))


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

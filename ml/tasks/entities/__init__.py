"""The `entities` task type: BIO tagging of order ids, invoice ids, account types, person names,
cities, countries and amounts in customer turns, on a BERT token-classification head.

Data. The lake's transcripts are PII-redacted before they are stored (ml.ingest.redact): order ids,
names and the like are already replaced there, so a tagger cannot learn them from the lake.
Entity training data therefore comes from the model's configured *labeled* source, never the
lake: Bitext's customer requests with their entity spans (character offsets into
`instruction`), plus, optionally, ABCD conversations whose scenario values (customer name, order
id, city) appear verbatim in the customer's turns (weak labels: a value the scenario does not
list stays unlabeled). Both are read with ml.ingest.sources' adapters.

Bad spans (outside the text, overlapping, empty, cutting a word in two, of an unknown type)
send their record to quarantine with the rule and the reason; they are never trained on.

Labels. The fast tokenizer's offset mapping aligns character spans to word pieces: the first
piece of an entity gets B-<type>, its other pieces I-<type>, everything else O, special
tokens -100 (ignored by the loss). Spans never cut a word (checked above), and BERT's
pre-tokenizer splits on whitespace and punctuation, so no piece straddles a span boundary.

Metrics. Entity-level, exact match of (type, start, end) between the gold spans and the spans
decoded from the predicted tags, per type and micro/macro averaged: seqeval's default (CoNLL)
definition, computed on character spans so evaluate() scores exactly what predict() returns.
Implemented here (30 lines) rather than with `seqeval`: that works on per-word tag lists,
which would need a second alignment back to words, and adds a dependency for a sum.

Training reuses ml.training.loop's loop (optimizer, schedule, seeds, checkpoints and resume, progress
logging, early stopping) through ml.training.loop.LoopTask, with ml.tasks.intent.train's TrainConfig.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.artifact.integrity import checked_dir, file_sha256
from ml.progress import Progress

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TASK = "entities"
PROMOTION_METRIC = "micro_f1"
ENTITY_TYPES = (
    "order_id",
    "invoice_id",
    "account_type",
    "person_name",
    "city",
    "country",
    "amount",
)
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
IGNORE = -100  # label id the loss skips (special tokens)
SPLIT_RULE = (
    "sha256(template) mod 100: train<80, validation<90, test (template: text with spans typed)"
)
LATENCY_SAMPLES = 40


# --- spans and their checks --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Span:
    start: int  # character offsets into the text, end exclusive
    end: int
    type: str


class SpanError(ValueError):
    """A span that cannot be trained on; `rule` names the check it broke."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


def _is_word_char(c: str) -> bool:
    return c.isalnum()


def check_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """The spans sorted, or SpanError for the first bad one."""
    ordered = sorted(spans)
    for s in ordered:
        where = f"span [{s.start}, {s.end}) {s.type!r}"
        if s.type not in ENTITY_TYPES:
            raise SpanError("unknown_entity_type", f"{where}: type not in {ENTITY_TYPES}")
        if not (0 <= s.start < s.end <= len(text)):
            raise SpanError(
                "span_out_of_range", f"{where} is outside the text (length {len(text)})"
            )
        if not text[s.start : s.end].strip():
            raise SpanError("span_empty", f"{where} covers only whitespace")
        if s.start > 0 and _is_word_char(text[s.start - 1]) and _is_word_char(text[s.start]):
            raise SpanError("span_splits_word", f"{where} starts inside a word")
        if s.end < len(text) and _is_word_char(text[s.end - 1]) and _is_word_char(text[s.end]):
            raise SpanError("span_splits_word", f"{where} ends inside a word")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end:
            raise SpanError(
                "span_overlap", f"spans [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap"
            )
    return ordered


def bio_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str | None]:
    """One tag per token: B-/I-<type>, O, or None for special tokens (offset (0, 0))."""
    tags: list[str | None] = []
    for start, end in offsets:
        if start == end:
            tags.append(None)
            continue
        tag = "O"
        for s in spans:
            if s.start <= start and end <= s.end:
                # A piece that starts where the entity starts opens it; later pieces continue it.
                tag = f"{'B' if start == s.start else 'I'}-{s.type}"
                break
        tags.append(tag)
    return tags


def tag_names() -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")]


def decode(
    text: str,
    offsets: Sequence[tuple[int, int]],
    tags: Sequence[str],
    scores: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Spans from per-token tags (special tokens: offset (0, 0), skipped).

    An I- tag that does not continue an entity of its type starts one (seqeval's lenient
    reading); the span runs from its first piece's start to its last piece's end.
    """
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for i, ((start, end), tag) in enumerate(zip(offsets, tags, strict=True)):
        if start == end:
            continue
        prefix, _, kind = tag.partition("-")
        score = float(scores[i]) if scores is not None else 1.0
        if prefix == "I" and current is not None and current["type"] == kind:
            current["end"] = end
            current["_scores"].append(score)
            continue
        current = None
        if prefix in ("B", "I"):
            current = {"type": kind, "start": start, "end": end, "_scores": [score]}
            spans.append(current)
    for s in spans:
        s["text"] = text[s["start"] : s["end"]]
        s["score"] = round(float(np.mean(s.pop("_scores"))), 4)
    return [{k: s[k] for k in ("type", "text", "start", "end", "score")} for s in spans]


def span_metrics(
    gold: Sequence[Iterable[tuple[str, int, int]]],
    predicted: Sequence[Iterable[tuple[str, int, int]]],
) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (exact type and offsets), per type and averaged.

    `gold` and `predicted` hold one collection of (type, start, end) per text. `per_class`
    supports count gold entities; `macro_f1` averages the types seen in gold or predictions.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold texts but {len(predicted)} predicted")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(map(tuple, g)), set(map(tuple, p))
        n_gold.update(t for t, _, _ in g)
        n_pred.update(t for t, _, _ in p)
        tp.update(t for t, _, _ in g & p)

    def prf(t: float, npred: float, ngold: float) -> tuple[float, float, float]:
        precision = t / npred if npred else 0.0
        recall = t / ngold if ngold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    types = [t for t in ENTITY_TYPES if n_gold[t] or n_pred[t]]
    types += sorted((set(n_gold) | set(n_pred)) - set(types))
    per_class = {}
    for t in types:
        precision, recall, f1 = prf(tp[t], n_pred[t], n_gold[t])
        per_class[t] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold[t]}
    precision, recall, f1 = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])) if per_class else 0.0,
        "n": len(gold),
        "entities": sum(n_gold.values()),
        "per_class": per_class,
    }


# --- dataset -----------------------------------------------------------------------------------


@dataclass
class _Collected:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, rid: str, text: str, spans: list[Span], source: str, raw: str, file: str, number: int
    ) -> None:
        try:
            ordered = check_spans(text, spans)
        except SpanError as exc:
            self.quarantined.append(
                {"file": file, "record": number, "rule": exc.rule, "reason": str(exc), "raw": raw}
            )
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
            out.quarantined.append(
                {
                    "file": url,
                    "record": item.number,
                    "rule": record.rule,
                    "reason": str(record),
                    "raw": item.raw,
                }
            )
            continue
        text = record.get("instruction") or ""
        if not text.strip():
            out.quarantined.append(
                {
                    "file": url,
                    "record": item.number,
                    "rule": "missing_text",
                    "reason": "field instruction is empty",
                    "raw": item.raw,
                }
            )
            continue
        spans: list[Span] = []
        kind = (record.get("entity_type") or "").strip()
        if kind:
            try:
                start, end = int(record["start_offset"]), int(record["end_offset"])
            except (KeyError, TypeError, ValueError):
                out.quarantined.append(
                    {
                        "file": url,
                        "record": item.number,
                        "rule": "invalid_field",
                        "reason": "start_offset/end_offset are not integers",
                        "raw": item.raw,
                    }
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
            out.quarantined.append(
                {
                    "file": url,
                    "record": item.number,
                    "rule": "invalid_record",
                    "reason": "not an ABCD conversation",
                    "raw": item.raw,
                }
            )
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


def _template(row: dict[str, Any]) -> str:
    """The text with each span replaced by its type: near-duplicates share a template."""
    text, parts, pos = row["text"], [], 0
    for s in row["spans"]:
        parts += [text[pos : s["start"]], f"<{s['type']}>"]
        pos = s["end"]
    parts.append(text[pos:])
    return " ".join("".join(parts).lower().split())


def build_dataset(source: str, out_root: Path, abcd: str | None = None, **_: Any) -> dict[str, Any]:
    """Freeze Bitext-style spans (`source`, a CSV) and optional ABCD weak labels (`abcd`, a JSON
    file) into a content-hashed snapshot: train/validation/test.parquet (id, text, spans,
    source), quarantine.parquet (file, record, rule, reason, raw) and snapshot.json.

    Split by the text's template (spans replaced by their type), so "cancel order 123" and
    "cancel order 456" land in the same split and the test set measures new phrasings.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.snapshots.build import SPLITS, split_of

    collected = _Collected()
    _bitext(source, collected)
    if abcd:
        _abcd(abcd, collected)
    if not collected.rows:
        raise ValueError(
            f"{source}: no usable entity examples ({len(collected.quarantined)} quarantined)"
        )
    rows = sorted(collected.rows, key=lambda r: r["id"])
    digest = hashlib.sha256(
        json.dumps(
            {"rows": rows, "split": SPLIT_RULE, "types": ENTITY_TYPES}, sort_keys=True
        ).encode()
    ).hexdigest()
    out_root = Path(out_root)
    folder = out_root / digest[:16]
    if (folder / "snapshot.json").exists():
        log.info("snapshot %s exists: reused", folder)
        return json.loads((folder / "snapshot.json").read_text()) | {"path": str(folder)}

    span_type = pa.list_(
        pa.struct([("start", pa.int32()), ("end", pa.int32()), ("type", pa.string())])
    )
    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("spans", span_type), ("source", pa.string())]
    )
    splits = [split_of(_template(r)) for r in rows]
    tmp = out_root / f".{digest[:16]}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    counts: dict[str, int] = {}
    for name in SPLITS:
        part = [r for r, s in zip(rows, splits, strict=True) if s == name]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), tmp / f"{name}.parquet")
        counts[name] = len(part)
    counts["quarantined"] = len(collected.quarantined)
    quarantine_schema = pa.schema(
        [
            ("file", pa.string()),
            ("record", pa.int64()),
            ("rule", pa.string()),
            ("reason", pa.string()),
            ("raw", pa.string()),
        ]
    )
    pq.write_table(
        pa.Table.from_pylist(collected.quarantined, schema=quarantine_schema),
        tmp / "quarantine.parquet",
    )
    sources = [{"file": str(f), "sha256": file_sha256(f)} for f in (source, abcd) if f]
    info = {
        "task": TASK,
        "hash": digest,
        "window": None,
        "partitions": sources,
        "source": source,
        "labels": list(ENTITY_TYPES),
        "counts": counts,
        "quarantine_rules": dict(Counter(q["rule"] for q in collected.quarantined)),
        "entities": dict(Counter(s["type"] for r in rows for s in r["spans"])),
        "split_rule": SPLIT_RULE,
    }
    (tmp / "snapshot.json").write_text(json.dumps(info, indent=2) + "\n")
    try:
        os.rename(tmp, folder)
    except OSError:  # another run wrote the same snapshot first: same content, keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "entity snapshot %s: %s, quarantined %s", digest[:16], counts, info["quarantine_rules"]
    )
    return info | {"path": str(folder)}


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


# --- training ----------------------------------------------------------------------------------


@dataclass
class _TokenSplit:
    """Tokenized texts with per-token label ids (what the loop trains on)."""

    texts: list[str]
    spans: list[list[Span]]
    encoded: list[dict[str, Any]]
    offsets: list[list[tuple[int, int]]]
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [len(e["input_ids"]) for e in self.encoded]

    def examples(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        return [self.encoded[i] for i in ids]


def _encode(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], spans: list[list[Span]], max_length: int
) -> _TokenSplit:
    label2id = {t: i for i, t in enumerate(tag_names())}
    enc = (
        tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
        if texts
        else {"input_ids": []}
    )
    examples, offsets = [], []
    for i in range(len(texts)):
        offs = [tuple(o) for o in enc["offset_mapping"][i]]
        tags = bio_tags(offs, spans[i])
        example = {k: enc[k][i] for k in enc if k != "offset_mapping"}
        example["labels"] = [IGNORE if t is None else label2id[t] for t in tags]
        examples.append(example)
        offsets.append(offs)
    return _TokenSplit(texts, spans, examples, offsets)


def _tag_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[dict[str, Any]],
    batch_size: int,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Per-token tag probabilities (tokens, tags) for each example, in input order;
    `progress` advances per text."""
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    collate = DataCollatorWithPadding(tokenizer)
    out: list[np.ndarray] = [np.zeros((0, 0))] * len(encoded)
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([{k: v for k, v in encoded[i].items() if k != "labels"} for i in idx])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = probs[row, : len(encoded[i]["input_ids"])]
            if progress is not None:
                progress.advance(len(idx))
    return out


def _predict_spans(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: _TokenSplit,
    batch_size: int,
    progress: Progress | None = None,
) -> list[list[dict[str, Any]]]:
    id2label = model.config.id2label
    result = []
    for text, offs, probs in zip(
        split.texts,
        split.offsets,
        _tag_probabilities(model, tokenizer, split.encoded, batch_size, progress),
        strict=True,
    ):
        best = probs.argmax(axis=1)
        tags = [id2label[int(j)] for j in best]
        result.append(decode(text, offs, tags, probs[np.arange(len(best)), best]))
    return result


def _score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: _TokenSplit,
    batch_size: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    predicted = _predict_spans(model, tokenizer, split, batch_size, progress)
    gold = [[(s.type, s.start, s.end) for s in spans] for spans in split.spans]
    return span_metrics(
        gold, [[(p["type"], p["start"], p["end"]) for p in spans] for spans in predicted]
    )


def fine_tune(
    snapshot_dir: Path, out_dir: Path, config: dict[str, Any], checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Train a token-classification head on the snapshot's train split (ml.training.loop's loop)."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
    )

    from ml.artifact import files as files
    from ml.artifact.files import LABELS_FILE
    from ml.tasks.intent.train import TrainConfig, artifact_summary
    from ml.training import loop
    from ml.training.prepare import prepare

    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    settings = TrainConfig.from_params(config)
    tags = tag_names()
    with prepare(snapshot_dir, out_dir, settings, head="token-classification") as run:
        train_texts, train_spans = read_split(snapshot_dir / "train.parquet")
        val_texts, val_spans = read_split(snapshot_dir / "validation.parquet")
        if not train_texts:
            raise ValueError(
                f"the train split of snapshot {snapshot_dir} is empty: nothing to learn"
            )
        tokenizer = AutoTokenizer.from_pretrained(run.base_model)
        if not tokenizer.is_fast:
            raise ValueError(
                f"base model {run.base_model} has no fast tokenizer: offsets are needed to align spans"
            )
        model = AutoModelForTokenClassification.from_pretrained(
            run.base_model,
            num_labels=len(tags),
            id2label=dict(enumerate(tags)),
            label2id={t: i for i, t in enumerate(tags)},
            ignore_mismatched_sizes=True,
            dtype=torch.float32,
            use_safetensors=True,
        ).to(loop.torch_device())
        resolved = run.resolve(settings, model.config.max_position_embeddings)
        train = _encode(tokenizer, train_texts, train_spans, resolved.max_length)
        validation = _encode(tokenizer, val_texts, val_spans, resolved.max_length)
        log.info(
            "fine-tuning %s for entities on %d train / %d validation texts, %d threads, %s",
            run.base_model,
            len(train_texts),
            len(val_texts),
            run.threads,
            loop.torch_device().type,
        )
        task = loop.LoopTask(
            collate=DataCollatorForTokenClassification(tokenizer),
            validate=lambda m: _score(m, tokenizer, validation, resolved.batch_size * 2),
            metric=PROMOTION_METRIC,
        )
        outcome = loop.train_epochs(model, train, resolved, task, checkpoint_dir)
    wall_seconds = run.wall_seconds()
    support = Counter(s.type for spans in train_spans for s in spans)

    def fill(staging: Path) -> None:
        files.save_model_files(staging, model, tokenizer, TASK)
        files.write_json(staging / LABELS_FILE, tags)
        files.write_training_record(staging, resolved, run.snapshot, outcome.record(wall_seconds))
        (staging / files.MODEL_CARD_FILE).write_text(
            _model_card(resolved, run.snapshot, support, len(train_texts), outcome),
            encoding="utf-8",
        )

    files.write_staged(out_dir, fill)
    log.info("wrote artifact %s", out_dir)
    return artifact_summary(out_dir)


def _model_card(
    config: Any, snapshot: dict[str, Any], support: Counter[str], n: int, outcome: Any
) -> str:
    val = outcome.validation
    rows = "\n".join(
        f"| `{t}` | {support.get(t, 0)} | {val.get('per_class', {}).get(t, {}).get('f1', 0.0):.3f} |"
        for t in ENTITY_TYPES
    )
    settings = "\n".join(f"- {k}: {v}" for k, v in asdict(config).items())
    return f"""# Entity tagger (BIO, token classification)

Fine-tuned from `{config.base_model}` by Intentflow (`ml.tasks.entities.fine_tune`).

## Training data

- Data snapshot: `{snapshot.get("hash")}` from {", ".join(p["file"] for p in snapshot.get("partitions", []))}
- Train texts: {n}; validation texts: {val.get("n", 0)}; quarantined records: {snapshot.get("counts", {}).get("quarantined", 0)}

| type | train entities | validation F1 (exact span) |
|---|---|---|
{rows}

## Validation metrics (epoch {outcome.best_epoch} of {outcome.epochs_run} kept)

- micro F1: {val.get("micro_f1", 0.0):.4f} (precision {val.get("micro_precision", 0.0):.4f}, recall {val.get("micro_recall", 0.0):.4f})
- macro F1: {val.get("macro_f1", 0.0):.4f}

## Training

{settings}

## Intended use and limitations

Finds order ids, invoice ids, account types, person names, cities, countries and amounts in a
customer's message (unredacted text: the lake's redacted transcripts are not training data).
Trained on Bitext's generated requests (and ABCD weak labels where configured): real customers
phrase and misspell things differently; types with little training support are unreliable.
Texts longer than {config.max_length} tokens are truncated.
"""


# --- loading, predicting, evaluating -----------------------------------------------------------


@dataclass
class Tagger:
    model: Any
    tokenizer: Any
    max_length: int

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Tagger:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from ml.training import loop

        path = checked_dir(artifact_dir, expected_sha256)
        device = loop.torch_device()
        model = AutoModelForTokenClassification.from_pretrained(
            path, use_safetensors=True, dtype=torch.float32
        ).to(device)
        model.eval()
        config = json.loads((path / "train_config.json").read_text(encoding="utf-8"))
        return cls(model, AutoTokenizer.from_pretrained(path), int(config["max_length"]))

    def spans(self, texts: Sequence[str], batch_size: int = 64) -> list[list[dict[str, Any]]]:
        split = _encode(self.tokenizer, list(texts), [[] for _ in texts], self.max_length)
        return _predict_spans(self.model, self.tokenizer, split, batch_size)


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """{"text", "spans": [{"type", "text", "start", "end", "score"}]} per text."""
    tagger = Tagger.load(Path(artifact_dir), expected_sha256)
    return [{"text": t, "spans": s} for t, s in zip(texts, tagger.spans(texts), strict=True)]


def evaluate(
    artifact_dir: Path,
    data: Path,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Entity-level metrics on a split file (or a snapshot's test split), plus latency."""
    tagger = Tagger.load(Path(artifact_dir), expected_sha256)
    texts, gold = read_split(Path(data))
    split = _encode(tagger.tokenizer, texts, gold, tagger.max_length)
    with Progress("evaluate", len(texts), "texts") as progress:
        metrics = _score(tagger.model, tagger.tokenizer, split, 64, progress)
    metrics.update(_latency(tagger, texts))
    if report_dir is not None:
        from ml.artifact.files import METRICS_FILE, write_json

        write_json(Path(report_dir) / METRICS_FILE, metrics)
    return metrics


def _latency(tagger: Tagger, texts: Sequence[str]) -> dict[str, float]:
    """Per-message latency at batch 1 (p50/p95), what a live assistant pays per turn."""
    from ml.tasks.latency import per_message_ms

    return per_message_ms(lambda batch: tagger.spans(batch, batch_size=1), texts, LATENCY_SAMPLES)

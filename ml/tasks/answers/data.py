"""The answers data set: question → answer pairs of a source frozen as a snapshot.

Pairs are read through ml.ingest.sources' adapters (e.g. Bitext's `instruction` → `response`);
their answers are deduplicated into the bank (ml.tasks.answers.bank). The split is by *group*,
not by raw text: questions whose templates match once ids, numbers and the labelled entity
span are masked, and questions sharing an answer, are one group (union-find), and the group's
key picks train/validation/test with the same hash rule as ml.snapshots.writer. Records with an
empty question or answer (or that a source adapter rejects) go to ``quarantine.parquet`` with
file, record number, rule, reason and the raw record; records in = pairs kept + quarantined.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml import storage
from ml.quarantine import QUARANTINE_FILE, quarantine_table
from ml.snapshots.writer import SPLITS, content_hash, existing, freeze, split_rows
from ml.storage import Location
from ml.tasks.answers.bank import (
    BANK_FILE,
    EmptyBankError,
    answer_id,
    build_bank,
    clean_answer,
)
from ml.tasks.answers.model import TASK

logger = logging.getLogger(__name__)

SPLIT_COLUMNS = ["conversation_id", "text", "answer_id", "intent", "group"]
GROUP_RULE = (
    "union-find over question templates (lower case, entity span and digit runs as <e>, "
    "punctuation dropped) and answer ids; split = ml.snapshots.writer.split_of(min template of group)"
)
# Bitext's columns; other sources name theirs in build_dataset's options.
DEFAULT_COLUMNS = {"text": "instruction", "agent_text": "response", "intent": "intent"}
DEFAULT_SPAN = ("start_offset", "end_offset")

_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z<>]+")
_REPEATED_ENTITY = re.compile(r"<e>(?: <e>)+")


def question_template(text: str, span: tuple[int, int] | None = None) -> str:
    """What near-duplicate questions share: `cancel purchase 00123842` → `cancel purchase <e>`.

    The labelled entity span and every digit run become the same `<e>` token, so a row whose
    id was not labelled still matches its labelled twin.
    """
    if span is not None:
        start, end = span
        text = f"{text[:start]} <e> {text[end:]}"
    text = _NON_WORD.sub(" ", _DIGITS.sub(" <e> ", text.lower()))
    return _REPEATED_ENTITY.sub("<e>", text).strip()


def group_keys(templates: Sequence[str], answer_ids: Sequence[str]) -> list[str]:
    """Per pair, its group's key: the smallest template connected to it through shared
    templates or shared answers (so a duplicated answer never straddles two splits)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for template, aid in zip(templates, answer_ids, strict=True):
        a, b = find("t:" + template), find("a:" + aid)
        if a != b:
            parent[max(a, b)] = min(a, b)  # "a:" < "t:": the root may be an answer
    smallest: dict[str, str] = {}
    for template in templates:
        root = find("t:" + template)
        smallest[root] = min(smallest.get(root, template), template)
    return [smallest[find("t:" + t)] for t in templates]


def _source_spec(source: str, columns: dict[str, str] | None) -> Any:
    """A static SourceSpec: a file/folder path or URL (CSV or JSONL by suffix), or a JSON spec."""
    from ml.ingest.sources import SourceSpec, parse_source

    if source.strip().startswith("{"):
        spec = parse_source(source)
        if spec.layout != "static":
            spec = replace(spec, layout="static")
    else:
        fmt = "jsonl" if source.rstrip("/").endswith((".jsonl", ".json")) else "csv"
        spec = SourceSpec(url=source, format=fmt, layout="static")
    if spec.format not in ("csv", "jsonl"):
        raise ValueError(f"answers sources are CSV or JSONL files, not {spec.format!r}")
    return replace(spec, columns=spec.columns or dict(columns or DEFAULT_COLUMNS))


def _pair_of(record: dict[str, Any], raw: str, span_columns: tuple[str, str]) -> dict[str, Any]:
    """A canonical record (ml.ingest.sources shape) as a pair, or raise RecordError naming the rule."""
    from ml.ingest.sources import RecordError

    turns = record.get("turns") or []
    question = next((t.get("text") for t in turns if t.get("speaker") == "customer"), None)
    answer = next((t.get("text") for t in turns if t.get("speaker") == "agent"), None)
    if not isinstance(question, str) or not question.strip():
        raise RecordError("empty_question", "the question (customer text) is empty or missing")
    if not isinstance(answer, str) or not answer.strip():
        raise RecordError("empty_answer", "the answer (agent reply) is empty or missing")
    span = None
    try:
        fields_ = json.loads(raw)
        start, end = (int(fields_[c]) for c in span_columns)
        if 0 <= start < end <= len(question):
            span = (start, end)
    except (ValueError, KeyError, TypeError):
        pass  # no (usable) entity span: digits are still masked
    answer = clean_answer(answer)
    return {
        "conversation_id": record.get("conversation_id"),
        "text": question.strip(),
        "answer": answer,
        "answer_id": answer_id(answer),
        "intent": record.get("intent"),
        "template": question_template(question.strip(), span),
    }


def read_pairs(
    source: str,
    columns: dict[str, str] | None = None,
    span_columns: tuple[str, str] = DEFAULT_SPAN,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """(pairs, quarantined records, files read with their sha256) of a source."""
    from ml.ingest.sources import RecordError, discover, read_items

    spec = _source_spec(source, columns)
    files = discover(spec, date.today())  # static layout: the day is not used
    if not files:
        raise FileNotFoundError(f"no {spec.format} files at {spec.url}")
    pairs, quarantine, read = [], [], []
    for url in files:
        read.append({"file": url, "sha256": storage.file_sha256(url)})
        for item in read_items(spec, url, date.today()):
            try:
                if isinstance(item.record, RecordError):
                    raise item.record
                if not isinstance(item.record, dict):
                    raise RecordError("invalid_record", "record is not an object")
                pairs.append(_pair_of(item.record, item.raw, span_columns))
            except RecordError as exc:
                quarantine.append(
                    {
                        "source_file": url,
                        "record": item.number,
                        "rule": exc.rule,
                        "reason": str(exc),
                        "raw": item.raw,
                    }
                )
    return pairs, quarantine, read


def build_dataset(
    source: str,
    out_root: Location,
    columns: dict[str, str] | None = None,
    span_columns: tuple[str, str] = DEFAULT_SPAN,
    **options: Any,
) -> dict[str, Any]:
    """Question → answer pairs of `source` frozen as a content-hashed snapshot folder.

    `source`: a CSV/JSONL file or folder (or fsspec URL), or an ml.ingest.sources JSON spec;
    `columns` maps canonical fields to the source's (default Bitext's: text=instruction,
    agent_text=response, intent=intent). Writes train/validation/test.parquet (conversation_id,
    text, answer_id, intent, group), answers.parquet (the bank) and quarantine.parquet into
    `out_root/<hash16>` and returns ml.snapshots.lake_window.make_snapshot's keys. Raises EmptyBankError when
    no record yields a pair (all of them are still written to quarantine first).
    """
    if options:
        logger.info("build_dataset ignores options %s", sorted(options))
    pairs, rejected, files = read_pairs(source, columns, tuple(span_columns))
    quarantine = quarantine_table(rejected)
    digest = content_hash(
        {
            "task": TASK,
            "files": [f["sha256"] for f in files],
            "columns": columns or DEFAULT_COLUMNS,
            "span": list(span_columns),
            "groups": GROUP_RULE,
            "splits": SPLITS,
        }
    )
    found = existing(out_root, digest)
    if found is not None:
        return found
    if not pairs:
        where = storage.join(out_root, f"{digest[:16]}.{QUARANTINE_FILE}")
        storage.write_parquet(quarantine, where)
        raise EmptyBankError(
            f"{source}: none of {len(rejected)} records is a usable question/answer pair, "
            f"so the answer bank would be empty (quarantine: {where})"
        )
    bank = build_bank(pairs)
    groups = group_keys([p["template"] for p in pairs], [p["answer_id"] for p in pairs])
    schema = pa.schema([(c, pa.string()) for c in SPLIT_COLUMNS])
    table = pa.Table.from_pylist(
        [
            {c: p[c] for c in SPLIT_COLUMNS if c != "group"} | {"group": g}
            for p, g in zip(pairs, groups, strict=True)
        ],
        schema=schema,
    )
    info = {
        "task": TASK,
        "window": None,
        "partitions": files,
        "source": source,
        "labels": sorted({p["intent"] for p in pairs if p["intent"]}),
        "split_rule": f"{GROUP_RULE}; {json.dumps(SPLITS)}",
        "counts": {
            "records": len(pairs) + len(rejected),
            "answers": bank.num_rows,
            "duplicate_answers": len(pairs) - bank.num_rows,
        },
    }
    splits = split_rows(table, groups)
    return freeze(out_root, digest, splits, info, quarantine, files={BANK_FILE: bank})


def read_questions(data: Path) -> dict[str, list[Any]]:
    """text, answer_id and intent of a labeled split (a snapshot dir → its test split).

    A golden file may give the reply text (`answer`) instead of its id: the id is derived.
    """
    path = Path(data)
    if path.is_dir():
        path = path / "test.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no labeled data at {path}")
    if path.suffix == ".parquet":
        table = pq.read_table(path).to_pydict()
    elif path.suffix == ".csv":
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path).to_pydict()
    elif path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        table = pa.Table.from_pylist([json.loads(x) for x in lines if x.strip()]).to_pydict()
    else:
        raise ValueError(f"{path}: unsupported file type (use .parquet, .csv or .jsonl)")
    if "text" not in table:
        raise ValueError(f"{path}: no column 'text' (columns: {', '.join(table)})")
    if "answer_id" not in table:
        if "answer" not in table:
            raise ValueError(f"{path}: needs an 'answer_id' or an 'answer' column")
        table["answer_id"] = [answer_id(clean_answer(a or "")) for a in table["answer"]]
    n = len(table["text"])
    return {
        "text": [t or "" for t in table["text"]],
        "answer_id": table["answer_id"],
        "intent": table.get("intent") or [None] * n,
    }

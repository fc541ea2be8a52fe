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
from typing import Any

import pyarrow as pa

from ml import storage
from ml.quarantine import QUARANTINE_FILE, Refusals
from ml.snapshots.formats import (
    DEFAULT_LABEL_COLUMN,
    DEFAULT_TEXT_COLUMN,
    LABEL_COLUMNS,
    TEXT_COLUMNS,
    columns_of,
    file_format,
    items,
    pick,
)
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
# What Bitext's columns resolve to (file_columns), and the snapshot hash's stand-in for
# "picked from the file": other sources name theirs in build_dataset's options.
DEFAULT_COLUMNS = {"text": "instruction", "agent_text": "response", "intent": "intent"}
# The reply column when none is named: a golden file's `answer`, then Bitext's `response`.
ANSWER_COLUMNS = ("answer", "response")
DEFAULT_ANSWER_COLUMN = ANSWER_COLUMNS[0]
# A snapshot split gives the gold reply by its bank id (scoring only: a bank needs texts).
ANSWER_ID_COLUMN = "answer_id"
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


def _source_spec(source: str) -> Any:
    """A static SourceSpec: a file/folder path or URL (CSV, JSONL or Parquet by suffix; a
    folder: its CSV files), or a JSON spec."""
    from ml.ingest.sources import SourceSpec, parse_source

    if source.strip().startswith("{"):
        spec = parse_source(source)
        if spec.layout != "static":
            spec = replace(spec, layout="static")
    else:
        fmt = file_format(source)
        # Ingestion has no Parquet pattern of its own: a folder's *.parquet files.
        pattern = "*.parquet" if fmt == "parquet" else None
        spec = SourceSpec(url=source, format=fmt, layout="static", pattern=pattern)
    if spec.format not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"answers sources are CSV, JSONL or Parquet files, not {spec.format!r}")
    return spec


def file_columns(
    url: str,
    fmt: str,
    columns: dict[str, str] | None = None,
    text_column: str = DEFAULT_TEXT_COLUMN,
    answer_column: str = DEFAULT_ANSWER_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
    answer_ids: bool = False,
) -> dict[str, str]:
    """Canonical field (text, agent_text, intent, conversation_id) -> the file's column.

    A column option given (not its default) names the file's column; else `columns` (a
    model's configured mapping) does; else the first of the defaults the file has: text,
    utterance, instruction (question); answer, response (reply); label, intent, category
    (intent: optional). With `answer_ids` (scoring), a file without a reply column may give
    the gold reply by its bank id (`answer_id`, as a snapshot's splits do).
    """
    found = columns_of(url, fmt)
    given = dict(columns or {})

    def column(key: str, named: str, candidates: tuple[str, ...]) -> str | None:
        if named == candidates[0] and key in given:
            named = given[key]
            if named not in found:
                raise ValueError(f"{url}: no column {named!r} (columns: {', '.join(found)})")
            return named
        try:
            return pick(url, found, named, candidates)
        except ValueError:
            if key == "intent" and named == candidates[0]:
                return None  # no intent column: the exact-reply metrics only
            if key == "agent_text" and answer_ids and ANSWER_ID_COLUMN in found:
                return None
            raise

    fields = {"text": column("text", text_column, TEXT_COLUMNS)}
    reply = column("agent_text", answer_column, ANSWER_COLUMNS)
    if reply is not None:
        fields["agent_text"] = reply
    else:
        fields[ANSWER_ID_COLUMN] = ANSWER_ID_COLUMN
    intent = column("intent", label_column, LABEL_COLUMNS)
    if intent is not None:
        fields["intent"] = intent
    if "conversation_id" in found:
        fields["conversation_id"] = "conversation_id"
    return fields


def _pair_of(
    record: dict[str, Any], raw: str, span_columns: tuple[str, str], by_id: bool
) -> dict[str, Any]:
    """A canonical record (ml.ingest.sources shape) as a pair, or raise RecordError naming the
    rule. `by_id`: the gold reply is given by its bank id (answer_id), not its text."""
    from ml.ingest.sources import RecordError

    turns = record.get("turns") or []
    question = next((t.get("text") for t in turns if t.get("speaker") == "customer"), None)
    answer = next((t.get("text") for t in turns if t.get("speaker") == "agent"), None)
    if not isinstance(question, str) or not question.strip():
        raise RecordError("empty_question", "the question (customer text) is empty or missing")
    try:
        fields_ = json.loads(raw)
    except ValueError:
        fields_ = {}
    if by_id:
        gold = fields_.get(ANSWER_ID_COLUMN) if isinstance(fields_, dict) else None
        if not isinstance(gold, str) or not gold.strip():
            raise RecordError("empty_answer", f"field {ANSWER_ID_COLUMN!r} is empty or missing")
        answer, gold = None, gold.strip()
    elif not isinstance(answer, str) or not answer.strip():
        raise RecordError("empty_answer", "the answer (agent reply) is empty or missing")
    else:
        answer = clean_answer(answer)
        gold = answer_id(answer)
    span = None
    try:
        start, end = (int(fields_[c]) for c in span_columns)
        if 0 <= start < end <= len(question):
            span = (start, end)
    except (ValueError, KeyError, TypeError):
        pass  # no (usable) entity span: digits are still masked
    return {
        "conversation_id": record.get("conversation_id"),
        "text": question.strip(),
        "answer": answer,
        "answer_id": gold,
        "intent": record.get("intent"),
        "template": question_template(question.strip(), span),
    }


def read_pairs(
    source: str,
    columns: dict[str, str] | None = None,
    span_columns: tuple[str, str] = DEFAULT_SPAN,
    text_column: str = DEFAULT_TEXT_COLUMN,
    answer_column: str = DEFAULT_ANSWER_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
    answer_ids: bool = False,
) -> tuple[list[dict[str, Any]], Refusals, list[dict[str, str]]]:
    """(pairs, refused records, files read with their sha256) of a source: the one way a
    question → answer file is read, by build_dataset and by evaluate.

    Each file's columns: the JSON spec's `columns`, else :func:`file_columns`. A record without
    a question (`empty_question`) or a reply (`empty_answer`), or that an adapter rejects
    (`malformed_csv`, `malformed_json`, ...), is refused with its rule.
    """
    from ml.credentials import hide_credentials
    from ml.ingest.sources import RecordError, discover

    spec = _source_spec(source)
    files = discover(spec, date.today())  # static layout: the day is not used
    if not files:
        raise FileNotFoundError(f"no {spec.format} files at {spec.url}")
    pairs: list[dict[str, Any]] = []
    refused, read = Refusals(), []
    for url in files:
        read.append({"file": url, "sha256": storage.file_sha256(url)})
        fields = spec.columns or file_columns(
            url, spec.format, columns, text_column, answer_column, label_column, answer_ids
        )
        by_id = ANSWER_ID_COLUMN in fields and "agent_text" not in fields
        for item in items(replace(spec, columns=fields), url):
            try:
                if isinstance(item.record, RecordError):
                    raise item.record
                if not isinstance(item.record, dict):
                    raise RecordError("invalid_record", "record is not an object")
                pairs.append(_pair_of(item.record, item.raw, span_columns, by_id))
            except RecordError as exc:
                refused.add(url, item.number, exc.rule, str(exc), item.raw)
    if refused:
        logger.warning("%s: %s", hide_credentials(spec.url), refused.summary())
    return pairs, refused, read


def build_dataset(
    source: str,
    out_root: Location,
    columns: dict[str, str] | None = None,
    span_columns: tuple[str, str] = DEFAULT_SPAN,
    text_column: str = DEFAULT_TEXT_COLUMN,
    answer_column: str = DEFAULT_ANSWER_COLUMN,
    label_column: str = DEFAULT_LABEL_COLUMN,
    **options: Any,
) -> dict[str, Any]:
    """Question → answer pairs of `source` frozen as a content-hashed snapshot folder.

    `source`: a CSV/JSONL/Parquet file or folder (or fsspec URL), or an ml.ingest.sources JSON
    spec, read by :func:`read_pairs`: the columns by `text_column`/`answer_column`/
    `label_column`, else `columns` (canonical field -> the source's), else picked from the
    file's (Bitext's instruction → response, intent by default). Writes
    train/validation/test.parquet (conversation_id, text, answer_id, intent, group),
    answers.parquet (the bank) and quarantine.parquet into `out_root/<hash16>` and returns
    ml.snapshots.lake_window.make_snapshot's keys. Raises EmptyBankError when no record yields
    a pair (all of them are still written to quarantine first).
    """
    if options:
        logger.info("build_dataset ignores options %s", sorted(options))
    named = {
        k: v
        for k, v, default in (
            ("text_column", text_column, DEFAULT_TEXT_COLUMN),
            ("answer_column", answer_column, DEFAULT_ANSWER_COLUMN),
            ("label_column", label_column, DEFAULT_LABEL_COLUMN),
        )
        if v != default
    }
    pairs, refused, files = read_pairs(
        source, columns, tuple(span_columns), text_column, answer_column, label_column
    )
    quarantine = refused.table()
    digest = content_hash(
        {
            "task": TASK,
            "files": [f["sha256"] for f in files],
            # Picked from the files' own columns unless named: the files' hashes cover those.
            "columns": columns or DEFAULT_COLUMNS,
            **({"column_options": named} if named else {}),
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
            f"{source}: none of {len(refused)} records is a usable question/answer pair, "
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
            "records": len(pairs) + len(refused),
            "answers": bank.num_rows,
            "duplicate_answers": len(pairs) - bank.num_rows,
        },
    }
    splits = split_rows(table, groups)
    return freeze(out_root, digest, splits, info, quarantine, files={BANK_FILE: bank})

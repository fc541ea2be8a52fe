"""Answer suggestion: rank approved agent replies from an answer bank for a customer message.

A bi-encoder (one shared BERT encoder, mean pooling, L2-normalised embeddings) fine-tuned from
MiniLM-L6 on question → answer pairs with in-batch negatives: cross-entropy over each batch's
query x answer cosine-similarity matrix times a scale (1 / temperature). The answer bank's
embeddings are computed once at the end of training and stored in the artifact, so predict
only encodes the query and takes one matrix product.

Data (:func:`build_dataset`): pairs read through ml.ingest.sources' adapters (e.g. Bitext's
`instruction` → `response`). Answers are deduplicated into a bank with content ids
(``a-`` + sha256 of the whitespace-collapsed, case-folded text); every pair keeps its answer id,
so the mapping survives. The split is by *group*, not by raw text: questions whose templates
match once ids, numbers and the labelled entity span are masked, and questions sharing an
answer, are one group (union-find), and the group's key picks train/validation/test with the
same hash rule as ml.snapshots.build. Records with an empty question or answer (or that a source
adapter rejects) go to ``quarantine.parquet`` with file, record number, rule, reason and the raw
record; records in = pairs kept + quarantined.

Relevance (:func:`ranking_metrics`): a query's gold answer is the bank entry its pair maps to
(``mrr``, ``recall_at_1``, ``recall_at_5``; ``mrr`` is PROMOTION_METRIC). Bitext writes a
different reply for every request, ~130 paraphrases per intent, so a looser "same intent"
variant (``intent_mrr``, ``intent_recall_at_k``: the first answer of the query's intent) is
reported too. Ties count against the model (rank = 1 + answers scoring >= the gold one).

Like ml.tasks.intent.train, torch and transformers are imported inside functions (DAG parse time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.artifact import files as artifact_files
from ml.artifact.files import (
    METRICS_FILE,
    MODEL_CARD_FILE,
    TASK_FILE,
    read_json,
    save_model_files,
    write_json,
    write_staged,
    write_training_record,
)
from ml.artifact.integrity import checked_dir, file_sha256
from ml.progress import Progress
from ml.snapshots.build import SPLITS, split_of
from ml.training.config import BaseTrainConfig
from ml.training.device import torch_device
from ml.training.loop import LoopTask, Outcome, amp_dtype, train_epochs
from ml.training.prepare import prepare

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TASK = "answers"
PROMOTION_METRIC = "mrr"

BANK_FILE = "answers.parquet"
EMBEDDINGS_FILE = "answer_embeddings.safetensors"
QUARANTINE_FILE = "quarantine.parquet"
SPLIT_COLUMNS = ["conversation_id", "text", "answer_id", "intent", "group"]
GROUP_RULE = (
    "union-find over question templates (lower case, entity span and digit runs as <e>, "
    "punctuation dropped) and answer ids; split = ml.snapshots.build.split_of(min template of group)"
)
# Bitext's columns; other sources name theirs in build_dataset's options.
DEFAULT_COLUMNS = {"text": "instruction", "agent_text": "response", "intent": "intent"}
DEFAULT_SPAN = ("start_offset", "end_offset")
RECALL_KS = (1, 5)
LATENCY_SAMPLES = 40
# evaluate() also times queries against a bank of this size (the 10,000 answers).
LATENCY_BANK = 10_000


class EmptyBankError(ValueError):
    """An answer bank with no answers: nothing to rank."""


# --- configuration -----------------------------------------------------------------------------


@dataclass
class AnswersConfig(BaseTrainConfig):
    """Bi-encoder training: ml.training.loop's shared settings, with the defaults a sentence encoder
    needs, plus the answer-only ones. Serialised, resolved, into train_config.json.

    In-batch negatives: the shared batch_size also sets how many negatives a query sees a step.
    """

    # all-MiniLM-L6 is already a sentence encoder: one or two epochs adapt it to the bank.
    epochs: int = 2
    learning_rate: float = 3e-5
    # Customer messages are short; replies are long and their opening says what they answer,
    # so replies are truncated harder than BERT's 512 for CPU speed.
    max_length: int = 64
    # Stop when validation MRR has not improved for this many epochs (best epoch kept).
    early_stopping_patience: int | None = 1
    answer_max_length: int = 64
    # Similarities are cosines in [-1, 1]; x20 (temperature 0.05) gives the softmax a usable
    # range (sentence-transformers' MultipleNegativesRankingLoss default).
    scale: float = 20.0
    # Validation ranks its questions against their own answers plus a fixed sample of the
    # bank's others, up to this many answers: re-encoding a whole bank every epoch costs
    # minutes on a CPU. None: the whole bank (what evaluate() always uses).
    validation_bank: int | None = 1000


def answers_config(config: dict[str, Any] | AnswersConfig | None) -> AnswersConfig:
    """An AnswersConfig from DAG params / CLI options; keys of other tasks are ignored."""
    if isinstance(config, AnswersConfig):
        return config
    ignored = sorted(set(config or {}) - {f.name for f in fields(AnswersConfig)})
    if ignored:
        logger.info("answers training ignores options %s", ignored)
    return AnswersConfig.from_params(config)


# --- data: normalisation, bank, groups ---------------------------------------------------------

_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z<>]+")
_REPEATED_ENTITY = re.compile(r"<e>(?: <e>)+")


def clean_answer(text: str) -> str:
    """The stored reply: CRLF → LF, outer whitespace stripped (placeholders kept as written)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def answer_id(text: str) -> str:
    """A content id: replies equal up to whitespace and case share it."""
    key = _SPACE.sub(" ", text).strip().casefold()
    return "a-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


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


def build_bank(pairs: list[dict[str, Any]]) -> pa.Table:
    """The deduplicated answer bank of `pairs` (each with answer_id, answer, intent).

    One row per answer id: the first reply text seen, every intent it answers (sorted) and
    how many questions map to it. Raises EmptyBankError when there is no answer.
    """
    bank: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        entry = bank.setdefault(
            pair["answer_id"],
            {"answer_id": pair["answer_id"], "answer": pair["answer"], "intents": set(), "n": 0},
        )
        entry["n"] += 1
        if pair.get("intent"):
            entry["intents"].add(pair["intent"])
    if not bank:
        raise EmptyBankError("the answer bank is empty: no question/answer pair has an answer")
    rows = sorted(bank.values(), key=lambda e: e["answer_id"])
    return pa.table(
        {
            "answer_id": [e["answer_id"] for e in rows],
            "answer": [e["answer"] for e in rows],
            "intents": pa.array([sorted(e["intents"]) for e in rows], pa.list_(pa.string())),
            "n_questions": pa.array([e["n"] for e in rows], pa.int64()),
        }
    )


# --- build_dataset -----------------------------------------------------------------------------


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
        read.append({"file": url, "sha256": file_sha256(url)})
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
                        "file": url,
                        "record_number": item.number,
                        "rule": exc.rule,
                        "reason": str(exc),
                        "raw": item.raw,
                    }
                )
    return pairs, quarantine, read


def build_dataset(
    source: str,
    out_root: Path,
    columns: dict[str, str] | None = None,
    span_columns: tuple[str, str] = DEFAULT_SPAN,
    **options: Any,
) -> dict[str, Any]:
    """Question → answer pairs of `source` frozen as a content-hashed snapshot folder.

    `source`: a CSV/JSONL file or folder (or fsspec URL), or an ml.ingest.sources JSON spec;
    `columns` maps canonical fields to the source's (default Bitext's: text=instruction,
    agent_text=response, intent=intent). Writes train/validation/test.parquet (conversation_id,
    text, answer_id, intent, group), answers.parquet (the bank) and quarantine.parquet into
    `out_root/<hash16>` and returns ml.snapshots.build.make_snapshot's keys. Raises EmptyBankError when
    no record yields a pair (all of them are still written to quarantine first).
    """
    if options:
        logger.info("build_dataset ignores options %s", sorted(options))
    out_root = Path(out_root)
    pairs, quarantine, files = read_pairs(source, columns, tuple(span_columns))
    digest = hashlib.sha256(
        json.dumps(
            {
                "task": TASK,
                "files": [f["sha256"] for f in files],
                "columns": columns or DEFAULT_COLUMNS,
                "span": list(span_columns),
                "groups": GROUP_RULE,
                "splits": SPLITS,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    folder = out_root / digest[:16]
    if (folder / "snapshot.json").exists():
        logger.info("snapshot %s exists: reused", folder)
        return read_json(folder / "snapshot.json") | {"path": str(folder)}
    if not pairs:
        _write_quarantine(out_root / f"{digest[:16]}.{QUARANTINE_FILE}", quarantine)
        raise EmptyBankError(
            f"{source}: none of {len(quarantine)} records is a usable question/answer pair, "
            f"so the answer bank would be empty (quarantine: {out_root / digest[:16]}."
            f"{QUARANTINE_FILE})"
        )
    bank = build_bank(pairs)
    groups = group_keys([p["template"] for p in pairs], [p["answer_id"] for p in pairs])
    for pair, group in zip(pairs, groups, strict=True):
        pair["group"] = group
        pair["split"] = split_of(group)

    tmp = out_root / f".{digest[:16]}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    counts: dict[str, int] = {}
    schema = pa.schema([(c, pa.string()) for c in SPLIT_COLUMNS])
    for name in SPLITS:
        rows = [{c: p[c] for c in SPLIT_COLUMNS} for p in pairs if p["split"] == name]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp / f"{name}.parquet")
        counts[name] = len(rows)
    pq.write_table(bank, tmp / BANK_FILE)
    _write_quarantine(tmp / QUARANTINE_FILE, quarantine)
    counts["quarantined"] = len(quarantine)
    counts["records"] = len(pairs) + len(quarantine)
    counts["answers"] = bank.num_rows
    counts["duplicate_answers"] = len(pairs) - bank.num_rows
    rules: dict[str, int] = {}
    for q in quarantine:
        rules[q["rule"]] = rules.get(q["rule"], 0) + 1
    info = {
        "hash": digest,
        "task": TASK,
        "window": None,
        "partitions": files,
        "source": source,
        "counts": counts,
        "quarantine_rules": rules,
        "labels": sorted({p["intent"] for p in pairs if p["intent"]}),
        "split_rule": f"{GROUP_RULE}; {json.dumps(SPLITS)}",
    }
    (tmp / "snapshot.json").write_text(json.dumps(info, indent=2) + "\n")
    try:
        os.rename(tmp, folder)
    except OSError:  # another run wrote the same snapshot first: same content, keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("answers snapshot %s: %s (quarantine rules %s)", digest[:16], counts, rules)
    return info | {"path": str(folder)}


def _write_quarantine(path: Path, rows: list[dict[str, Any]]) -> None:
    schema = pa.schema(
        [
            ("file", pa.string()),
            ("record_number", pa.int64()),
            ("rule", pa.string()),
            ("reason", pa.string()),
            ("raw", pa.string()),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def read_bank(path: Path) -> pa.Table:
    """An answers.parquet bank; EmptyBankError when it has no rows."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"answer bank {path} not found")
    bank = pq.read_table(path)
    if bank.num_rows == 0:
        raise EmptyBankError(f"answer bank {path} is empty: nothing to rank")
    return bank


# --- model: encoder, pooling -------------------------------------------------------------------


def _load_encoder(base_model: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = Path(base_model)
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ValueError(f"base model {path} is not a local safetensors checkpoint directory")
    tokenizer = AutoTokenizer.from_pretrained(path)
    # A checkpoint with a task head (e.g. an intent model) loads its encoder; the head is dropped.
    model = AutoModel.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, add_pooling_layer=False
    )
    return model.to(torch_device()), tokenizer


def _embed(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the token states under the attention mask, L2-normalised."""
    import torch

    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def encode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Normalised float32 embeddings (len(texts), hidden), batched by length, input order;
    `progress` advances per text."""
    import torch
    from transformers import DataCollatorWithPadding

    model.eval()
    device = next(model.parameters()).device
    hidden = model.config.hidden_size
    out = np.zeros((len(texts), hidden), dtype=np.float32)
    if not texts:
        return out
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    examples = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    order = np.argsort([len(e["input_ids"]) for e in examples], kind="stable")
    collate = DataCollatorWithPadding(tokenizer)
    amp = amp_dtype(device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None),
    ):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([examples[i] for i in idx])
            out[idx] = _embed(model, {k: v.to(device) for k, v in batch.items()}).cpu().numpy()
            if progress is not None:
                progress.advance(len(idx))
    return out


# --- metrics -----------------------------------------------------------------------------------


def ranking_metrics(
    scores: np.ndarray,
    gold: Sequence[int],
    query_intents: Sequence[str | None] | None = None,
    answer_intents: Sequence[Sequence[str]] | None = None,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, Any]:
    """MRR and recall@k of each query's gold answer (column index; -1: not in the bank, a
    miss) over the full ranking of `scores` (queries x bank). Ties count against the model.

    With intents, also the same-intent variant (first answer sharing the query's intent) and
    per_class by query intent (mrr, recall@1, support).
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    n = len(gold)
    if scores.shape[0] != n:
        raise ValueError(f"scores has {scores.shape[0]} rows but there are {n} gold answers")
    ranks = np.full(n, np.inf)
    known = gold >= 0
    if known.any():
        rows = np.flatnonzero(known)
        gold_scores = scores[rows, gold[rows]]
        # Every other answer scoring at least as high ranks above the gold one.
        ranks[rows] = (scores[rows] >= gold_scores[:, None]).sum(axis=1)
    metrics: dict[str, Any] = {"n": n, **_rank_summary(ranks, ks, "")}
    if query_intents is None or answer_intents is None:
        return metrics
    relevant = _relevance(query_intents, answer_intents, scores.shape[1])
    best_relevant = np.where(relevant, scores, -np.inf).max(axis=1, initial=-np.inf)
    intent_ranks = np.where(
        relevant.any(axis=1),
        1 + (np.where(relevant, -np.inf, scores) >= best_relevant[:, None]).sum(axis=1),
        np.inf,
    )
    metrics.update(_rank_summary(intent_ranks, ks, "intent_"))
    per_class: dict[str, dict[str, float]] = {}
    for intent in sorted({q for q in query_intents if q is not None}):
        mask = np.array([q == intent for q in query_intents])
        summary = _rank_summary(ranks[mask], (1,), "")
        per_class[intent] = {
            "mrr": summary["mrr"],
            "recall_at_1": summary["recall_at_1"],
            "support": int(mask.sum()),
        }
    metrics["per_class"] = per_class
    return metrics


def _relevance(
    query_intents: Sequence[str | None], answer_intents: Sequence[Sequence[str]], m: int
) -> np.ndarray:
    """(queries x bank) booleans: the answer serves the query's intent."""
    columns: dict[str, np.ndarray] = {}
    for j, intents in enumerate(answer_intents):
        for intent in intents or ():
            columns.setdefault(intent, np.zeros(m, dtype=bool))[j] = True
    empty = np.zeros(m, dtype=bool)
    rows = [columns.get(q, empty) if q is not None else empty for q in query_intents]
    return np.stack(rows) if rows else np.zeros((0, m), dtype=bool)


def _rank_summary(ranks: np.ndarray, ks: Sequence[int], prefix: str) -> dict[str, float]:
    if len(ranks) == 0:
        return {f"{prefix}mrr": 0.0, **{f"{prefix}recall_at_{k}": 0.0 for k in ks}}
    return {
        f"{prefix}mrr": float(np.mean(1.0 / ranks)),
        **{f"{prefix}recall_at_{k}": float(np.mean(ranks <= k)) for k in ks},
    }


# --- training ----------------------------------------------------------------------------------


@dataclass
class _Pairs:
    """One tokenized split: unpadded query and answer encodings, answer ids and intents."""

    queries: list[dict[str, list[int]]]
    answers: list[dict[str, list[int]]]
    answer_ids: list[str]
    intents: list[str | None]
    lengths: list[int] = field(init=False)
    # Per pair, a small integer per distinct answer id: the loss's "same answer?" test travels
    # to the device as a tensor.
    answer_codes: list[int] = field(init=False)

    def __post_init__(self) -> None:
        pairs = zip(self.queries, self.answers, strict=True)
        self.lengths = [len(q["input_ids"]) + len(a["input_ids"]) for q, a in pairs]
        codes: dict[str, int] = {}
        self.answer_codes = [codes.setdefault(a, len(codes)) for a in self.answer_ids]

    def examples(self, ids: list[int]) -> list[dict[str, Any]]:
        """The loop's view of a batch: each pair's query, answer and answer code."""
        return [
            {"query": self.queries[i], "answer": self.answers[i], "code": self.answer_codes[i]}
            for i in ids
        ]


def _read_pairs_split(snapshot_dir: Path, split: str) -> dict[str, list[Any]]:
    path = snapshot_dir / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot split {path} not found")
    return pq.read_table(path, columns=["text", "answer_id", "intent"]).to_pydict()


def _tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    rows: dict[str, list[Any]],
    answer_text: dict[str, str],
    config: AnswersConfig,
) -> _Pairs:
    missing = sorted({a for a in rows["answer_id"] if a not in answer_text})
    if missing:
        raise ValueError(f"answer ids {missing[:5]} are not in the answer bank")

    def tok(texts: list[str], max_length: int) -> list[dict[str, list[int]]]:
        if not texts:
            return []
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        return [{k: enc[k][i] for k in enc.keys()} for i in range(len(texts))]

    answers = [answer_text[a] for a in rows["answer_id"]]
    return _Pairs(
        tok(list(rows["text"]), config.max_length),
        tok(answers, config.answer_max_length),
        list(rows["answer_id"]),
        list(rows["intent"]),
    )


def in_batch_loss(
    queries: torch.Tensor, answers: torch.Tensor, answer_ids: Sequence[Any], scale: float
) -> torch.Tensor:
    """Cross-entropy over the batch's scaled query x answer similarities (diagonal = positive).

    Another row's answer that is the same bank entry (equal id) is not a negative: it is
    masked out.
    """
    import torch

    logits = scale * queries @ answers.T
    ids = np.asarray(answer_ids)
    same = torch.from_numpy(ids[:, None] == ids[None, :]).to(logits.device)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    targets = torch.arange(len(answer_ids), device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets)


def fine_tune(
    snapshot_dir: Path,
    out_dir: Path,
    config: dict[str, Any] | AnswersConfig | None = None,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the bi-encoder on a snapshot's train pairs and write the artifact to `out_dir`:
    safetensors encoder + tokenizer, the bank (answers.parquet) and its embeddings
    (answer_embeddings.safetensors), task.json, train_config.json, metrics.json, README.md.

    Validation MRR (validation questions ranked against the whole bank) picks the best epoch
    and stops early. With `checkpoint_dir`, checkpoints after every epoch and resumes from one.
    Raises EmptyBankError / ValueError before training on an empty bank or train split,
    FileExistsError when `out_dir` exists and is not empty.
    """
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    cfg = answers_config(config)
    with prepare(snapshot_dir, out_dir, cfg, head="feature-extraction") as run:
        bank = read_bank(snapshot_dir / BANK_FILE)
        answer_text = dict(
            zip(bank["answer_id"].to_pylist(), bank["answer"].to_pylist(), strict=True)
        )
        train_rows = _read_pairs_split(snapshot_dir, "train")
        val_rows = _read_pairs_split(snapshot_dir, "validation")
        if not train_rows["text"]:
            raise ValueError(
                f"the train split of snapshot {snapshot_dir} is empty: nothing to learn"
            )
        model, tokenizer = _load_encoder(run.base_model)
        limit = model.config.max_position_embeddings
        resolved = run.resolve(cfg, limit, answer_max_length=min(cfg.answer_max_length, limit))
        train = _tokenize_pairs(tokenizer, train_rows, answer_text, resolved)
        logger.info(
            "fine-tuning bi-encoder %s on %d pairs (%d validation), bank of %d, %d threads, %s",
            run.base_model,
            len(train.queries),
            len(val_rows["text"]),
            bank.num_rows,
            run.threads,
            torch_device().type,
        )
        task = _pairs_loop(tokenizer, val_rows, bank, resolved)
        outcome = train_epochs(model, train, resolved, task, checkpoint_dir)
        embeddings = encode(
            model, tokenizer, bank["answer"].to_pylist(), resolved.answer_max_length
        )
    _write_artifact(
        out_dir,
        model,
        tokenizer,
        bank,
        embeddings,
        resolved,
        run.snapshot,
        outcome,
        run.wall_seconds(),
    )
    logger.info("wrote answers artifact %s", out_dir)
    return artifact_summary(out_dir)


def validation_bank(rows: dict[str, list[Any]], bank: pa.Table, size: int | None) -> pa.Table:
    """The bank rows validation ranks against: every gold answer of `rows`, then other answers
    in a fixed pseudo-random order (by id hash) up to `size`; the whole bank for None."""
    if size is None or size >= bank.num_rows:
        return bank
    ids = bank["answer_id"].to_pylist()
    gold = set(rows["answer_id"])
    others = sorted(
        (i for i, a in enumerate(ids) if a not in gold),
        key=lambda i: hashlib.sha256(ids[i].encode()).digest(),
    )
    keep = [i for i, a in enumerate(ids) if a in gold] + others[: max(0, size - len(gold))]
    return bank.take(pa.array(sorted(keep), pa.int64()))


def _validate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: dict[str, list[Any]],
    bank: pa.Table,
    config: AnswersConfig,
) -> dict[str, Any]:
    """Validation questions against the validation bank (see AnswersConfig.validation_bank)."""
    if not rows["text"]:
        return ranking_metrics(np.zeros((0, bank.num_rows)), [])
    answer_vectors = encode(model, tokenizer, bank["answer"].to_pylist(), config.answer_max_length)
    query_vectors = encode(model, tokenizer, rows["text"], config.max_length)
    return _score(query_vectors @ answer_vectors.T, rows, bank) | {"bank_size": bank.num_rows}


def _score(scores: np.ndarray, rows: dict[str, list[Any]], bank: pa.Table) -> dict[str, Any]:
    index = {a: i for i, a in enumerate(bank["answer_id"].to_pylist())}
    gold = [index.get(a, -1) for a in rows["answer_id"]]
    intents = rows.get("intent")
    has_intents = intents is not None and any(intents)
    return ranking_metrics(
        scores,
        gold,
        intents if has_intents else None,
        bank["intents"].to_pylist() if has_intents else None,
    )


def _pairs_loop(
    tokenizer: PreTrainedTokenizerBase,
    val_rows: dict[str, list[Any]],
    bank: pa.Table,
    config: AnswersConfig,
) -> LoopTask:
    """ml.training.loop's task description for pairs: in-batch negatives, validation MRR."""
    import torch
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)
    val_bank = validation_bank(val_rows, bank, config.validation_bank)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        queries = pad([e["query"] for e in examples])
        answers = pad([e["answer"] for e in examples])
        return {
            **{f"query_{k}": v for k, v in queries.items()},
            **{f"answer_{k}": v for k, v in answers.items()},
            "codes": torch.tensor([e["code"] for e in examples]),
        }

    def loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        def side(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}

        queries, answers = _embed(model, side("query_")), _embed(model, side("answer_"))
        return in_batch_loss(queries, answers, batch["codes"].tolist(), config.scale)

    return LoopTask(
        collate=collate,
        # Looked up at call time: the resume test swaps _validate for one that dies.
        validate=lambda model: _validate(model, tokenizer, val_rows, val_bank, config),
        metric=PROMOTION_METRIC,
        loss=loss,
        min_batch=2,  # one pair has no in-batch negative: nothing to learn from it
    )


# --- artifact ----------------------------------------------------------------------------------


def _write_artifact(
    out_dir: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    bank: pa.Table,
    embeddings: np.ndarray,
    config: AnswersConfig,
    snapshot: dict[str, Any],
    outcome: Outcome,
    wall_seconds: float,
) -> None:
    """The answers artifact, written atomically (ml.artifact.files.write_staged)."""
    import torch
    from safetensors.torch import save_file

    def fill(staging: Path) -> None:
        task = {
            "task": TASK,
            "pooling": "mean",
            "normalized": True,
            "max_length": config.max_length,
            "answer_max_length": config.answer_max_length,
            "bank_size": bank.num_rows,
        }
        save_model_files(staging, model, tokenizer, task)
        pq.write_table(bank, staging / BANK_FILE)
        save_file(
            {"embeddings": torch.from_numpy(embeddings)},
            str(staging / EMBEDDINGS_FILE),
            metadata={"rows": str(bank.num_rows), "order": BANK_FILE},
        )
        write_training_record(staging, config, snapshot, outcome.record(wall_seconds))
        card = _model_card(config, snapshot, bank, outcome)
        (staging / MODEL_CARD_FILE).write_text(card, encoding="utf-8")

    write_staged(out_dir, fill)


def artifact_summary(out_dir: Path) -> dict[str, Any]:
    """What fine_tune returns, read back from a finished artifact (ml.tasks.intent.train's keys + task)."""
    return artifact_files.artifact_summary(out_dir, AnswersConfig, task=TASK)


def _model_card(
    config: AnswersConfig, snapshot: dict[str, Any], bank: pa.Table, outcome: Outcome
) -> str:
    val = outcome.validation
    settings = "\n".join(f"- {key}: {value}" for key, value in asdict(config).items())
    counts = snapshot.get("counts") or {}
    return f"""# Answer suggestion (bi-encoder)

Fine-tuned from `{config.base_model}` by Intentflow (`ml.tasks.answers.fine_tune`): mean-pooled,
L2-normalised embeddings; score = cosine(question, answer). In-batch negatives, scale
{config.scale}.

## Data

- Data snapshot: `{snapshot.get("hash")}`; source `{snapshot.get("source")}`
- Train pairs: {counts.get("train")}; validation: {counts.get("validation")}; test:
  {counts.get("test")}; quarantined records: {counts.get("quarantined")}
- Answer bank: {bank.num_rows} answers (deduplicated; embeddings in `{EMBEDDINGS_FILE}`,
  rows in the order of `{BANK_FILE}`)

## Validation (epoch {outcome.best_epoch} of {outcome.epochs_run} kept), against {val.get("bank_size")} answers

- MRR (gold answer): {val.get("mrr", 0.0):.4f}
- recall@1: {val.get("recall_at_1", 0.0):.4f}; recall@5: {val.get("recall_at_5", 0.0):.4f}
- same-intent MRR: {val.get("intent_mrr", float("nan")):.4f}

## Training

{settings}

## Intended use and limitations

Suggests approved replies from the bank above to an agent, who chooses; it never writes a
reply. Only answers in the bank can be suggested: new replies need a new version (or a bank
rebuilt with this encoder). Replies are embedded from their first {config.answer_max_length}
tokens and questions from their first {config.max_length}. English only; placeholders such as
`{{{{Order Number}}}}` are left for the agent to fill.
"""


# --- loading, predict, evaluate ----------------------------------------------------------------


class Retriever:
    """A loaded answers artifact: encoder, tokenizer, bank and its stored embeddings."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        bank: pa.Table,
        embeddings: np.ndarray,
        max_length: int,
    ) -> None:
        if embeddings.shape[0] != bank.num_rows:
            raise ValueError(
                f"the bank has {bank.num_rows} answers but {embeddings.shape[0]} embeddings"
            )
        self.model, self.tokenizer, self.bank = model, tokenizer, bank
        self.embeddings = embeddings
        self.max_length = max_length
        self.answer_ids = bank["answer_id"].to_pylist()
        self.answers = bank["answer"].to_pylist()

    @classmethod
    def load(cls, artifact_dir: Path, expected_sha256: str | None = None) -> Retriever:
        import torch
        from safetensors.numpy import load_file
        from transformers import AutoModel, AutoTokenizer

        path = checked_dir(artifact_dir, expected_sha256)
        task = read_json(path / TASK_FILE)
        if task.get("task") != TASK:
            raise ValueError(f"artifact {path} is a {task.get('task')!r} model, not {TASK!r}")
        bank = read_bank(path / BANK_FILE)
        embeddings = load_file(str(path / EMBEDDINGS_FILE))["embeddings"]
        device = torch_device()
        model = AutoModel.from_pretrained(
            path, use_safetensors=True, dtype=torch.float32, add_pooling_layer=False
        )
        model = model.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, bank, embeddings, int(task["max_length"]))

    def encode_queries(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return encode(self.model, self.tokenizer, texts, self.max_length, progress=progress)

    def scores(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Cosine similarity of each text to every bank answer (texts x bank)."""
        return self.encode_queries(texts, progress) @ self.embeddings.T

    def search(self, texts: Sequence[str], top_k: int = 5) -> list[dict[str, Any]]:
        scores = self.scores(texts)
        return [
            {"text": text, "answers": self._top(row, top_k)}
            for text, row in zip(texts, scores, strict=True)
        ]

    def _top(self, row: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        k = max(1, min(top_k, len(row)))
        best = np.argpartition(-row, k - 1)[:k]
        best = best[np.argsort(-row[best], kind="stable")]
        return [
            {"answer_id": self.answer_ids[i], "answer": self.answers[i], "score": float(row[i])}
            for i in best
        ]


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """Per text: {"text", "answers": [{"answer_id", "answer", "score"}, ...]} best first."""
    return Retriever.load(artifact_dir, expected_sha256).search(texts, top_k)


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


def query_latency(search: Any, texts: Sequence[str], samples: int | None = None) -> dict:
    """Per-query milliseconds at batch 1 (encode + score the bank + top-5): p50 and p95 over
    the first `samples` texts (default LATENCY_SAMPLES)."""
    from ml.tasks.latency import per_message_ms

    return per_message_ms(search, texts, samples or LATENCY_SAMPLES, prefix="")


def _padded(retriever: Retriever, size: int, seed: int = 0) -> Retriever:
    """The retriever with its bank padded to `size` by random unit vectors: a timing-only bank
    (the cost of a query does not depend on what the vectors hold; bench/answers.py ranks
    against a 10k bank of real-looking replies)."""
    extra = max(0, size - len(retriever.answer_ids))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((extra, retriever.embeddings.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    bank = pa.table(
        {
            "answer_id": retriever.answer_ids + [f"pad-{i}" for i in range(extra)],
            "answer": retriever.answers + [""] * extra,
        }
    )
    embeddings = np.concatenate([retriever.embeddings, noise])
    return Retriever(retriever.model, retriever.tokenizer, bank, embeddings, retriever.max_length)


def evaluate(
    artifact_dir: Path,
    data: Path,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Rank `data`'s questions against the artifact's stored bank: mrr (PROMOTION_METRIC),
    recall_at_1/5, their same-intent variants, per_class by intent (mrr, recall_at_1, support),
    n, bank_size, and per-query latency_ms_p50/p95 against the bank and against a bank padded to
    10,000 (…_bank10k). Gold answers missing from the bank count as misses (`gold_missing`)."""
    retriever = Retriever.load(artifact_dir, expected_sha256)
    rows = read_questions(data)
    with Progress("evaluate", len(rows["text"]), "texts") as progress:
        scores = retriever.scores(rows["text"], progress)
    metrics = _score(scores, rows, retriever.bank)
    metrics["bank_size"] = retriever.bank.num_rows
    known = set(retriever.answer_ids)
    metrics["gold_missing"] = sum(a not in known for a in rows["answer_id"])
    # Flat keys: the registry stores numbers (and per_class) only.
    for suffix, ranker in (("", retriever), ("_bank10k", _padded(retriever, LATENCY_BANK))):
        latency = query_latency(lambda t, r=ranker: r.search(t, 5), rows["text"])
        metrics.update({f"latency_{k}{suffix}": v for k, v in latency.items()})
    if report_dir is not None:
        write_json(Path(report_dir) / METRICS_FILE, metrics)
    return metrics

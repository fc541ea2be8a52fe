"""Fine-tuning the answers bi-encoder and writing its artifact.

Fine-tuned (from MiniLM-L6 by default) on a snapshot's question → answer pairs with in-batch
negatives: cross-entropy over each batch's query x answer cosine-similarity matrix times a
scale (1 / temperature), through ml.training.loop's Trainer (DDP under torchrun too). Validation MRR picks the best epoch and
stops early. The artifact holds the encoder, the bank and the bank's embeddings
(ml.tasks.answers.model loads it).

torch and transformers are imported inside functions (DAG parse time).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.artifact import files as artifact_files
from ml.artifact.card import model_card
from ml.artifact.files import (
    MODEL_CARD_FILE,
    save_model_files,
    write_staged,
    write_training_record,
)
from ml.tasks.answers.bank import BANK_FILE, read_bank
from ml.tasks.answers.metrics import PROMOTION_METRIC, bank_ranking_metrics, ranking_metrics
from ml.tasks.answers.model import EMBEDDINGS_FILE, TASK, embed, encode
from ml.training import distributed
from ml.training.config import BaseTrainConfig
from ml.training.device import torch_device
from ml.training.loop import LoopTask, Outcome, train_epochs
from ml.training.prepare import prepare

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class AnswersConfig(BaseTrainConfig):
    """Bi-encoder training: ml.training.config's shared settings, with the defaults a sentence encoder
    needs, plus the answer-only ones. Serialised, resolved, into train_config.json.

    In-batch negatives: the shared batch_size also sets how many negatives a query sees a step.
    """

    # all-MiniLM-L6 is already a sentence encoder: one or two epochs adapt it to the bank.
    epochs: int = 2
    learning_rate: float = 3e-5
    # Customer messages are short; replies are long and their opening says what they answer,
    # so replies are truncated harder than BERT's 512 for CPU speed.
    max_length: int = 64
    answer_max_length: int = 64
    # Stop when validation MRR has not improved for this many epochs (best epoch kept).
    early_stopping_patience: int | None = 1
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
    checkpoint_url: str | None = None,
) -> dict[str, Any]:
    """Fine-tune the bi-encoder on a snapshot's train pairs and write the artifact to `out_dir`:
    safetensors encoder + tokenizer, the bank (answers.parquet) and its embeddings
    (answer_embeddings.safetensors), task.json, train_config.json, metrics.json, README.md.

    Validation MRR (validation questions ranked against the whole bank) picks the best epoch
    and stops early. With `checkpoint_dir`, checkpoints after every epoch and resumes from one
    (mirrored to `checkpoint_url` on object storage). Under torchrun only rank 0 writes the
    artifact; the other ranks return an empty dict.
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
        outcome = train_epochs(model, train, resolved, task, checkpoint_dir, checkpoint_url)
        if not run.world.main:
            return {}
        embeddings = encode(
            model, tokenizer, bank["answer"].to_pylist(), resolved.answer_max_length
        )
        # The snapshot's test questions against the whole bank, for the model card.
        test = None
        if (snapshot_dir / "test.parquet").is_file():
            test_rows = _read_pairs_split(snapshot_dir, "test")
            if test_rows["text"]:
                queries = encode(model, tokenizer, test_rows["text"], resolved.max_length)
                test = bank_ranking_metrics(queries @ embeddings.T, test_rows, bank)
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
        test,
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
    return bank_ranking_metrics(query_vectors @ answer_vectors.T, rows, bank) | {
        "bank_size": bank.num_rows
    }


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

        queries, answers = embed(model, side("query_")), embed(model, side("answer_"))
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
    test: dict[str, Any] | None,
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
        record = outcome.record(wall_seconds, processes=distributed.current().size, test=test)
        write_training_record(staging, config, snapshot, record)
        card = model_card(
            _model_card(config, snapshot, bank, outcome, test),
            task=TASK,
            base_model=config.base_model,
            snapshot_hash=snapshot.get("hash"),
            metrics=CARD_METRICS,
            validation=outcome.validation,
            test=test,
        )
        (staging / MODEL_CARD_FILE).write_text(card, encoding="utf-8")

    write_staged(out_dir, fill)


def artifact_summary(out_dir: Path) -> dict[str, Any]:
    """What fine_tune returns, read back from a finished artifact (ml.tasks.intent.train's keys + task)."""
    return artifact_files.artifact_summary(out_dir, AnswersConfig, task=TASK)


# The headline figures of the card's model-index, per split.
CARD_METRICS = ("mrr", "recall_at_1", "recall_at_5", "intent_mrr", "n")


def _model_card(
    config: AnswersConfig,
    snapshot: dict[str, Any],
    bank: pa.Table,
    outcome: Outcome,
    test: dict[str, Any] | None,
) -> str:
    tested = (
        f"On the snapshot's test questions ({test.get('n')}), against the whole bank: MRR "
        f"{test.get('mrr', 0.0):.4f}, recall@1 {test.get('recall_at_1', 0.0):.4f}."
        if test
        else "No test split in the snapshot: see the registry's evaluation of this version."
    )
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

## Test

{tested}

## Training

{settings}

## Intended use and limitations

Suggests approved replies from the bank above to an agent, who chooses; it never writes a
reply. Only answers in the bank can be suggested: new replies need a new version (or a bank
rebuilt with this encoder). Replies are embedded from their first {config.answer_max_length}
tokens and questions from their first {config.max_length}. English only; placeholders such as
`{{{{Order Number}}}}` are left for the agent to fill.
"""

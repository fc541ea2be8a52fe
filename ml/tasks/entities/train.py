"""Training an entity tagger: a token-classification head on a snapshot's train split, with
ml.training.loop's Trainer (optimizer, schedule, seeds, checkpoints and resume, progress
logging, early stopping on validation micro-F1, DDP under torchrun) through
ml.training.loop.LoopTask, and its own config.

torch and transformers are imported inside functions: DAG files import the task modules at
parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.artifact import files as artifact_files
from ml.artifact.card import model_card
from ml.artifact.files import LABELS_FILE, read_json
from ml.tasks.entities.data import read_split
from ml.tasks.entities.metrics import PROMOTION_METRIC
from ml.tasks.entities.model import TASK
from ml.tasks.entities.spans import ENTITY_TYPES, tag_names
from ml.training.config import BaseTrainConfig

if TYPE_CHECKING:
    from ml.training.loop import Outcome

log = logging.getLogger(__name__)


@dataclass
class TrainConfig(BaseTrainConfig):
    """Entity training: ml.training.config's shared settings, with the defaults a tagger needs;
    every field is applied, and train_config.json records them resolved. The loss is the
    token-classification head's own cross-entropy (no smoothing)."""

    # Bitext (2,840 train texts, bench/README.md): 3 epochs of MiniLM-L6 reach test micro-F1
    # 0.954 (29 minutes on a loaded 2-core machine), 2 epochs 0.944.
    epochs: int = 3


def artifact_summary(out_dir: Path) -> dict[str, Any]:
    """What fine_tune returns, read back from a finished artifact (a retried task reuses it)."""
    return artifact_files.artifact_summary(
        out_dir, TrainConfig, labels=read_json(out_dir / LABELS_FILE)
    )


def fine_tune(
    snapshot_dir: Path,
    out_dir: Path,
    config: dict[str, Any],
    checkpoint_dir: Path | None = None,
    checkpoint_url: str | None = None,
) -> dict[str, Any]:
    """Train a token-classification head on the snapshot's train split (ml.training.loop's
    Trainer; checkpoints as intent's fine_tune). Under torchrun only rank 0 writes the
    artifact; the other ranks return an empty dict."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
    )

    from ml.artifact import files as files
    from ml.artifact.files import LABELS_FILE
    from ml.tasks.entities.evaluation import score as _score
    from ml.tasks.entities.model import encode as _encode
    from ml.training import loop
    from ml.training.device import torch_device
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
        ).to(torch_device())
        resolved = run.resolve(settings, model.config.max_position_embeddings)
        train = _encode(tokenizer, train_texts, train_spans, resolved.max_length)
        validation = _encode(tokenizer, val_texts, val_spans, resolved.max_length)
        log.info(
            "fine-tuning %s for entities on %d train / %d validation texts, %d threads, %s",
            run.base_model,
            len(train_texts),
            len(val_texts),
            run.threads,
            torch_device().type,
        )
        task = loop.LoopTask(
            collate=DataCollatorForTokenClassification(tokenizer),
            validate=lambda m: _score(m, tokenizer, validation, resolved.batch_size * 2),
            metric=PROMOTION_METRIC,
        )
        outcome = loop.train_epochs(model, train, resolved, task, checkpoint_dir, checkpoint_url)
        if not run.world.main:
            return {}
        # The snapshot's test split, when it has rows, scored for the model card.
        test = None
        if (snapshot_dir / "test.parquet").is_file():
            test_texts, test_spans = read_split(snapshot_dir / "test.parquet")
            if test_texts:
                encoded = _encode(tokenizer, test_texts, test_spans, resolved.max_length)
                test = _score(model, tokenizer, encoded, resolved.batch_size * 2)
    wall_seconds = run.wall_seconds()
    support = Counter(s.type for spans in train_spans for s in spans)

    def fill(staging: Path) -> None:
        files.save_model_files(staging, model, tokenizer, TASK)
        files.write_json(staging / LABELS_FILE, tags)
        files.write_training_record(
            staging,
            resolved,
            run.snapshot,
            outcome.record(wall_seconds, processes=run.world.size, test=test),
        )
        card = model_card(
            _model_card(resolved, run.snapshot, support, len(train_texts), outcome, test),
            task=TASK,
            base_model=resolved.base_model,
            snapshot_hash=run.snapshot.get("hash"),
            metrics=CARD_METRICS,
            validation=outcome.validation,
            test=test,
        )
        (staging / files.MODEL_CARD_FILE).write_text(card, encoding="utf-8")

    files.write_staged(out_dir, fill)
    log.info("wrote artifact %s", out_dir)
    return artifact_summary(out_dir)


# The headline figures of the card's model-index, per split.
CARD_METRICS = ("micro_f1", "micro_precision", "micro_recall", "macro_f1", "n")


def _test_text(test: dict[str, Any] | None) -> str:
    if not test:
        return "No test split in the snapshot: see the registry's evaluation of this version."
    return (
        f"On the snapshot's test split ({test.get('n', 0)} texts): micro F1 "
        f"{test.get('micro_f1', 0.0):.4f}, macro F1 {test.get('macro_f1', 0.0):.4f}."
    )


def _model_card(
    config: TrainConfig,
    snapshot: dict[str, Any],
    support: Counter[str],
    n: int,
    outcome: Outcome,
    test: dict[str, Any] | None,
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

## Test metrics

{_test_text(test)}

## Training

{settings}

## Intended use and limitations

Finds order ids, invoice ids, account types, person names, cities, countries and amounts in a
customer's message (unredacted text: the lake's redacted transcripts are not training data).
Trained on Bitext's generated requests (and ABCD weak labels where configured): real customers
phrase and misspell things differently; types with little training support are unreliable.
Texts longer than {config.max_length} tokens are truncated.
"""

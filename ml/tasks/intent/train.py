"""Fine-tune a BERT-class checkpoint into an intent classifier from a dataset snapshot.

Prepared as every task's fine_tune is (ml.training.prepare), tokenize once, then
ml.training.loop's Trainer (length-grouped batches, AdamW with linear
warmup/decay, validation after every epoch, the epoch with the lowest validation loss kept,
checkpoints, DDP under torchrun) with label-smoothed cross-entropy, a temperature fitted on the kept model's
validation logits (ml.training.calibration), and an intent artifact written through ml.artifact.files.
It runs on CPU by default and uses CUDA (with bf16 autocast) when present.

torch and transformers are imported inside functions: DAG files import this module at parse
time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from ml.artifact import files as artifact_files
from ml.artifact.card import model_card
from ml.artifact.files import (
    LABELS_FILE,
    MODEL_CARD_FILE,
    OOS_FILE,
    read_json,
    save_model_files,
    write_json,
    write_staged,
    write_training_record,
)
from ml.config import (
    DEFAULT_OOS_LABEL,
    DEFAULT_OOS_METHOD,
    DEFAULT_OOS_RECALL_TARGET,
    DEFAULT_OOS_TARGET,
)
from ml.tasks.intent.metrics import classification_metrics
from ml.tasks.intent.model import TASK, batched_logits, batched_outputs
from ml.tasks.intent.out_of_scope import (
    METHODS,
    OUT_OF_SCOPE,
    Detector,
    fit_detector,
    held_out_oos,
    write_detector,
)
from ml.training import distributed
from ml.training.calibration import (
    CALIBRATION_FILE,
    calibration_record,
    negative_log_likelihood,
)
from ml.training.config import BaseTrainConfig
from ml.training.device import torch_device
from ml.training.loop import LoopTask, Outcome, train_epochs
from ml.training.prepare import prepare

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("ml.tasks.intent.train")

# The headline figures of the card's model-index, per split.
CARD_METRICS = ("accuracy", "macro_f1", "weighted_f1", "n")  # n: a split without rows is left out

# Fewer train examples than this for a label: trained anyway (the label stays in the model),
# but its predictions are unreliable, so the log and the model card say so.
RARE_LABEL_EXAMPLES = 5


@dataclass
class TrainConfig(BaseTrainConfig):
    """Intent training: ml.training.config's shared settings (their defaults are intent's) plus the
    intent-only ones below. Serialized, resolved, into train_config.json."""

    # Cross-entropy label smoothing: intent sets have near-synonym classes (Banking77's
    # card_arrival / card_delivery_estimate); softer targets generalise better.
    label_smoothing: float = 0.1
    # Out-of-scope detection (ml.tasks.intent.out_of_scope): the score, the share of in-scope
    # validation queries the calibrated threshold keeps (0 < target <= 1), the share of
    # labelled out-of-scope validation queries it must still catch when raised above that
    # (None: never raised), and the label of out-of-scope examples in the data (trained as one
    # more class of the head when present; some held out to calibrate on).
    oos_method: str = DEFAULT_OOS_METHOD
    oos_target: float = DEFAULT_OOS_TARGET
    oos_recall_target: float | None = DEFAULT_OOS_RECALL_TARGET
    oos_label: str = DEFAULT_OOS_LABEL

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oos_method not in METHODS:
            raise ValueError(
                f"training setting oos_method={self.oos_method!r} is not one of {', '.join(METHODS)}"
            )
        for name in ("oos_target", "oos_recall_target"):
            share = getattr(self, name)
            if share is None and name == "oos_recall_target":
                continue
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
                raise ValueError(
                    f"training setting {name}={share!r} must be a number > 0 and <= 1 (a "
                    "share of validation queries; oos_target: in-scope ones kept in scope, 1 "
                    "keeps them all; oos_recall_target: out-of-scope ones caught, or None)"
                )
        if not isinstance(self.oos_label, str) or not self.oos_label.strip():
            raise ValueError("training setting oos_label must name a label, got an empty one")
        if self.oos_label.strip() != self.oos_label:
            raise ValueError(f"training setting oos_label={self.oos_label!r} has spaces around it")


@dataclass
class _Split:
    """One tokenized split: unpadded encodings, label strings and label ids (-1: unknown)."""

    encoded: list[dict[str, list[int]]]
    intents: list[str]
    label_ids: list[int]
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [len(e["input_ids"]) for e in self.encoded]

    def examples(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The loop's view of a batch: encodings plus the target under `labels`."""
        return [{**self.encoded[i], "labels": self.label_ids[i]} for i in ids]


def fine_tune(
    snapshot_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    checkpoint_dir: Path | None = None,
    checkpoint_url: str | None = None,
) -> dict[str, Any]:
    """Fine-tune on `snapshot_dir` and write a safetensors-only model artifact to `out_dir`.

    With `checkpoint_dir`, the model, optimizer, schedule and RNG states are saved there after
    every epoch (and mirrored to `checkpoint_url` on object storage), and a call that finds a
    checkpoint resumes from it: a retried task (after a kill or a lost worker) continues
    instead of starting over, and ends with the same model.

    Under torchrun (ml.training.distributed) every process calls this; rank 0 alone writes checkpoints
    and the artifact, and the other ranks return an empty dict.

    Raises ValueError before any training for an empty train split, fewer than two labels,
    or a base model that is not a local sequence-classification-capable checkpoint, and
    FileExistsError when `out_dir` exists and is not empty.
    """
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    with prepare(snapshot_dir, out_dir, config, head="sequence-classification") as run:
        train_rows = _read_split(snapshot_dir, "train")
        val_rows = _read_split(snapshot_dir, "validation")
        train_rows, val_rows, held_out = _hold_out_oos(train_rows, val_rows, config.oos_label)
        labels = _label_set(train_rows["intent"], snapshot_dir, config.oos_label)
        model, tokenizer = _load_base(run.base_model, labels)
        resolved = run.resolve(config, model.config.max_position_embeddings)
        label2id = {label: i for i, label in enumerate(labels)}
        train = _tokenize(tokenizer, train_rows, label2id, resolved.max_length)
        validation = _tokenize(tokenizer, val_rows, label2id, resolved.max_length)
        _warn_unknown_labels(validation, labels)
        _warn_rare_labels(train, labels)
        logger.info(
            "fine-tuning %s on %d train / %d validation examples, %d labels, %d threads, "
            "%d process(es), %s",
            run.base_model,
            len(train.intents),
            len(validation.intents),
            len(labels),
            run.threads,
            run.world.size,
            torch_device().type,
        )
        outcome = train_epochs(
            model,
            train,
            resolved,
            _intent_loop(tokenizer, validation, labels, resolved),
            checkpoint_dir,
            checkpoint_url,
        )
        # One more pass over validation, on the kept epoch's weights: its logits fit T, then
        # calibrate the out-of-scope threshold (the train split's features fit Mahalanobis).
        calibration, detector = (
            _calibrate(model, tokenizer, train, validation, labels, resolved, held_out)
            if run.world.main
            else ({}, None)
        )
        # The snapshot's test split, when it has one, scored for the model card (the retrain's
        # evaluate step scores it again, with the champion beside it).
        test = _test_metrics(model, tokenizer, snapshot_dir, label2id, labels, resolved)

    if not run.world.main:
        return {}
    _write_artifact(
        out_dir,
        model,
        tokenizer,
        labels,
        resolved,
        run.snapshot,
        train,
        outcome,
        run.wall_seconds(),
        calibration,
        detector,
        test,
    )
    logger.info("wrote artifact %s", out_dir)
    return artifact_summary(out_dir)


def artifact_summary(out_dir: Path) -> dict[str, Any]:
    """What fine_tune returns, read back from a finished artifact (a retried task reuses it)."""
    return artifact_files.artifact_summary(
        out_dir, TrainConfig, labels=read_json(out_dir / LABELS_FILE)
    )


# --- inputs and checks -----------------------------------------------------------------------


def _read_split(snapshot_dir: Path, split: str) -> dict[str, list[str]]:
    """`text` and `intent` of one split; rows without an intent cannot be trained or scored."""
    path = snapshot_dir / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot split {path} not found")
    table = pq.read_table(path, columns=["text", "intent"]).to_pydict()
    rows = [(t or "", y) for t, y in zip(table["text"], table["intent"], strict=True) if y]
    return {"text": [t for t, _ in rows], "intent": [y for _, y in rows]}


def _hold_out_oos(
    train: dict[str, list[str]], validation: dict[str, list[str]], oos_label: str
) -> tuple[dict[str, list[str]], dict[str, list[str]], int]:
    """Half of train's labelled out-of-scope rows moved to validation (held_out_oos), so the
    threshold can be checked against out-of-scope queries the model never saw; with the
    number moved."""
    move = held_out_oos(train["text"], train["intent"], oos_label)
    if not move.any():
        return train, validation, 0
    logger.info(
        "%d of %d labelled out-of-scope train rows held out into validation to calibrate on",
        int(move.sum()),
        train["intent"].count(oos_label),
    )
    kept = {k: [v for v, m in zip(col, move, strict=True) if not m] for k, col in train.items()}
    moved = {
        k: validation[k] + [v for v, m in zip(col, move, strict=True) if m]
        for k, col in train.items()
    }
    return kept, moved, int(move.sum())


def _label_set(intents: list[str], snapshot_dir: Path, oos_label: str) -> list[str]:
    """Sorted labels actually present in train: the model can only learn those.

    Out-of-scope examples (`oos_label`) are one of them, the head's out-of-scope class: with
    them, one intent is enough (the model tells it from everything else); without, a
    classifier needs two. The answer label `out_of_scope` cannot be an intent.
    """
    if not intents:
        raise ValueError(f"the train split of snapshot {snapshot_dir} is empty: nothing to learn")
    labels = sorted(set(intents))
    if OUT_OF_SCOPE in labels and oos_label != OUT_OF_SCOPE:
        raise ValueError(
            f"the train split of snapshot {snapshot_dir} has the label {OUT_OF_SCOPE!r}, the "
            f"answer for out-of-scope queries: rename it, or set oos_label={OUT_OF_SCOPE!r} "
            f"if those rows are out-of-scope examples (now {oos_label!r})"
        )
    in_scope = [label for label in labels if label != oos_label]
    if not in_scope:
        raise ValueError(
            f"the train split of snapshot {snapshot_dir} has only out-of-scope examples "
            f"({oos_label!r}): no intent to learn"
        )
    if len(labels) < 2:
        raise ValueError(
            f"the train split of snapshot {snapshot_dir} has only the label(s) {labels}; "
            f"a classifier needs at least 2 (or one intent and out-of-scope examples "
            f"labelled {oos_label!r})"
        )
    return labels


def _load_base(
    base_model: str, labels: list[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise ValueError(f"base model {base_model} has no usable tokenizer: {exc}") from exc
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="single_label_classification",
        # A checkpoint that already has a head (e.g. a previous intent model) may have a
        # different label count: re-initialise the head instead of failing.
        ignore_mismatched_sizes=True,
        # fp32 master weights whatever the checkpoint's dtype; CUDA adds bf16 autocast.
        dtype=torch.float32,
        use_safetensors=True,
    )
    return model.to(torch_device()), tokenizer


def _tokenize(
    tokenizer: PreTrainedTokenizerBase,
    split: dict[str, list[str]],
    label2id: dict[str, int],
    max_length: int,
) -> _Split:
    """Tokenize a whole split once; padding happens per batch. Long texts are truncated."""
    texts = split["text"]
    encoded = tokenizer(texts, truncation=True, max_length=max_length) if texts else {}
    keys = list(encoded.keys())
    examples = [{key: encoded[key][i] for key in keys} for i in range(len(texts))]
    label_ids = [label2id.get(intent, -1) for intent in split["intent"]]
    return _Split(examples, list(split["intent"]), label_ids)


def rare_labels(intents: list[str], labels: list[str]) -> dict[str, int]:
    """Labels with fewer than RARE_LABEL_EXAMPLES train examples, with their counts."""
    counts = {label: intents.count(label) for label in labels}
    return {label: n for label, n in counts.items() if n < RARE_LABEL_EXAMPLES}


def _warn_rare_labels(train: _Split, labels: list[str]) -> None:
    rare = rare_labels(train.intents, labels)
    if rare:
        logger.warning(
            "labels with fewer than %d train examples %s: trained, but expect poor recall on them",
            RARE_LABEL_EXAMPLES,
            rare,
        )


def _warn_unknown_labels(validation: _Split, labels: list[str]) -> None:
    pairs = zip(validation.intents, validation.label_ids, strict=True)
    unknown = sorted({y for y, i in pairs if i < 0})
    if unknown:
        logger.warning(
            "validation has labels absent from train %s: those rows always count as misses "
            "(the model only knows %d labels)",
            unknown,
            len(labels),
        )


# --- training loop ---------------------------------------------------------------------------


def _intent_loop(
    tokenizer: PreTrainedTokenizerBase, validation: _Split, labels: list[str], config: TrainConfig
) -> LoopTask:
    from transformers import DataCollatorWithPadding

    return LoopTask(
        collate=DataCollatorWithPadding(tokenizer),
        validate=lambda model: _validate(model, tokenizer, validation, labels, config.batch_size),
        # The loss is the Trainer's: cross-entropy, smoothed by config.label_smoothing
        # (TrainingArguments.label_smoothing_factor).
        # The kept epoch: the lowest validation cross-entropy (the Trainer's default). Every
        # answer counts, with its probability, so it varies less than macro-F1 on a few hundred
        # rows, which kept an epoch that regressed old intents (bench/README.md, epoch choice).
        metric="loss",
        greater_is_better=False,
    )


def _validate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    validation: _Split,
    labels: list[str],
    batch_size: int,
) -> dict[str, Any]:
    """classification_metrics on the validation split (unknown labels count as misses), with
    `loss`: the mean cross-entropy of the rows whose label the model has (None without any)."""
    if not validation.encoded:
        return classification_metrics([], [], labels)
    # Inference holds no activations for backward, so larger batches are cheap.
    logits = batched_logits(model, tokenizer, validation.encoded, batch_size * 2)
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    metrics = classification_metrics(validation.intents, predicted, labels)
    ids = np.asarray(validation.label_ids, dtype=np.int64)
    known = ids >= 0
    loss = negative_log_likelihood(logits[known], ids[known], 1.0) if known.any() else None
    return {**metrics, "loss": loss}


def _test_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    snapshot_dir: Path,
    label2id: dict[str, int],
    labels: list[str],
    config: TrainConfig,
) -> dict[str, Any] | None:
    """classification_metrics on the snapshot's test split; None when it has no rows."""
    if not (snapshot_dir / "test.parquet").is_file():
        return None
    rows = _read_split(snapshot_dir, "test")
    if not rows["text"]:
        return None
    test = _tokenize(tokenizer, rows, label2id, config.max_length)
    return _validate(model, tokenizer, test, labels, config.batch_size)


def _calibrate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: _Split,
    validation: _Split,
    labels: list[str],
    config: TrainConfig,
    held_out: int,
) -> tuple[dict[str, Any], tuple[Detector, dict[str, Any]]]:
    """The temperature fitted on validation, with NLL and ECE there before and after; then
    the out-of-scope detector (ml.tasks.intent.out_of_scope) with its threshold calibrated on
    validation, and its record."""
    features = config.oos_method == "mahalanobis"
    batch = config.batch_size * 2
    logits, val_features = batched_outputs(
        model, tokenizer, validation.encoded, batch, features=features
    )
    record = calibration_record(logits, np.array(validation.label_ids, dtype=np.int64))
    fit = record["validation"]
    logger.info(
        "temperature %.4f fitted on %d validation rows%s: ECE %.4f -> %.4f, NLL %.4f -> %.4f",
        record["temperature"],
        record["n"],
        f" (limited by {record['limited_by']})" if record["limited_by"] else "",
        fit["ece_uncalibrated"],
        fit["ece"],
        fit["nll_uncalibrated"],
        fit["nll"],
    )
    train_stats = None
    if features:  # the intents' means and covariance, from the train split's features
        _, train_features = batched_outputs(model, tokenizer, train.encoded, batch, features=True)
        train_stats = (train_features, np.array(train.label_ids, dtype=np.int64))
    detector, oos = fit_detector(
        config.oos_method,
        config.oos_target,
        config.oos_label,
        labels,
        record["temperature"],
        (logits, val_features, validation.intents),
        train_stats,
        config.oos_recall_target,
    )
    oos["held_out_from_train"] = held_out
    logger.info(
        "out-of-scope threshold %s (%s, set by the %s) keeps %s of %d in-scope validation rows "
        "(target %.3f)%s; catches %s of %d labelled out-of-scope rows",
        "none" if oos["threshold"] is None else f"{oos['threshold']:.4f}",
        oos["method"],
        oos["rule"].replace("_", " "),
        f"{oos['validation'].get('in_scope_kept', 0.0):.3f}",
        len(validation.intents) - oos["validation"]["oos_n"],
        oos["target"],
        f" (limited by {oos['limited_by']})" if oos["limited_by"] else "",
        f"{oos['validation'].get('oos_recall', 0.0):.3f}",
        oos["validation"]["oos_n"],
    )
    return record, (detector, oos)


# --- artifact --------------------------------------------------------------------------------


def _write_artifact(
    out_dir: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    config: TrainConfig,
    snapshot: dict[str, Any],
    train: _Split,
    outcome: Outcome,
    wall_seconds: float,
    calibration: dict[str, Any],
    detector: tuple[Detector, dict[str, Any]] | None,
    test: dict[str, Any] | None,
) -> None:
    """An intent artifact, written atomically (see write_staged); the out-of-scope detector
    is written inside it, so the artifact's sha256 covers the threshold."""
    oos = detector[1] if detector else None

    def fill(staging: Path) -> None:
        save_model_files(staging, model, tokenizer, TASK)
        support = {label: train.intents.count(label) for label in labels}
        write_json(staging / LABELS_FILE, labels)
        write_json(staging / CALIBRATION_FILE, calibration)
        if detector is not None:
            write_detector(staging, *detector)
        write_training_record(
            staging,
            config,
            snapshot,
            outcome.record(
                wall_seconds,
                processes=distributed.current().size,
                calibration=calibration,
                out_of_scope=oos,
                test=test,
            ),
        )
        card = model_card(
            _model_card(config, snapshot, support, outcome, calibration, oos, test),
            task=TASK,
            base_model=config.base_model,
            snapshot_hash=snapshot.get("hash"),
            metrics=CARD_METRICS,
            validation=outcome.validation,
            test=test,
        )
        (staging / MODEL_CARD_FILE).write_text(card, encoding="utf-8")

    write_staged(out_dir, fill)


def _model_card(
    config: TrainConfig,
    snapshot: dict[str, Any],
    support: dict[str, int],
    outcome: Outcome,
    calibration: dict[str, Any],
    oos: dict[str, Any] | None,
    test: dict[str, Any] | None,
) -> str:
    """A short model card: what it is, what it was trained on, how good, and where it fails."""
    # A snapshot built from a labeled file has no date window.
    window = snapshot.get("window") or {}
    dates = f"{window.get('start')} to {window.get('end')}" if window else "none (from a file)"
    val = outcome.validation
    settings = "\n".join(f"- {key}: {value}" for key, value in asdict(config).items())
    rare = {label: n for label, n in support.items() if n < RARE_LABEL_EXAMPLES}
    rare_note = (
        f"- Labels with fewer than {RARE_LABEL_EXAMPLES} train examples, expect poor recall: "
        + ", ".join(f"`{label}` ({n})" for label, n in rare.items())
        + "\n"
        if rare
        else ""
    )
    label_rows = "\n".join(
        f"| `{label}` | {n} | {val['per_class'].get(label, {}).get('f1', 0.0):.3f} |"
        for label, n in support.items()
    )
    return f"""# Intent classifier

Fine-tuned from `{config.base_model}` by Intentflow (`ml.tasks.intent.train.fine_tune`).

## Training data

- Data snapshot: `{snapshot.get("hash")}`
- Date window: {dates}
- Train examples: {sum(support.values())}; validation examples: {val["n"]}

| label | train support | validation F1 |
|---|---|---|
{label_rows}

## Validation metrics (epoch {outcome.best_epoch} of {outcome.epochs_run} kept)

- accuracy: {val["accuracy"]:.4f}
- macro F1: {val["macro_f1"]:.4f}
- weighted F1: {val["weighted_f1"]:.4f}
- loss (cross-entropy, the kept epoch's measure): {_number(val.get("loss"))}

## Test metrics

{_test_text(test)}

## Calibration

{_calibration_text(calibration)}

## Out of scope

{_oos_text(oos)}

## Training

{settings}

## Intended use

Routing customer-service conversations by intent, from the customer's turns only (agent and
system turns are excluded from the model text). Predictions feed a router; low-probability
predictions should go to a human queue (probabilities are calibrated, see above).

## Limitations

- Trained on English data (synthetic and/or real) from the window above only; other
  languages, products or phrasing drift after the window will degrade accuracy.
- Texts longer than {config.max_length} tokens are truncated: only their beginning is seen.
{rare_note}- Out-of-scope detection keeps about {oos["target"] if oos else 1:.0%} of in-scope queries by
  design (its target); a query near a known intent can still be forced into it.
"""


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _test_text(test: dict[str, Any] | None) -> str:
    if test is None:
        return "No test split in the snapshot: see the registry's evaluation of this version."
    return (
        f"On the snapshot's test split ({test['n']} examples): accuracy {test['accuracy']:.4f}, "
        f"macro F1 {test['macro_f1']:.4f}, weighted F1 {test['weighted_f1']:.4f}."
    )


def _oos_text(oos: dict[str, Any] | None) -> str:
    """The model card's account of the out-of-scope detector."""
    if oos is None:
        return "No out-of-scope detector: every query gets one of the labels above."
    fit = oos["validation"]
    held_out = oos.get("held_out_from_train", 0)
    head = (
        f"Labelled out-of-scope examples (`{oos['oos_label']}`) were trained as one more class; "
        "a query that class wins is out of scope"
        + (f"; {held_out} of them were held out of training to calibrate on" if held_out else "")
        + ".\n\n"
        if oos["head_class"]
        else f"No labelled out-of-scope examples (`{oos['oos_label']}`) in the train split.\n\n"
    )
    threshold = (
        "no threshold (no in-scope validation rows): only the model's own out-of-scope class "
        "answers `out_of_scope`"
        if oos["threshold"] is None
        else f"threshold {oos['threshold']:.4f}"
    )
    lines = [
        f"- score: `{oos['method']}`; {threshold}, calibrated on validation to keep "
        f"{oos['target']:.3f} of in-scope queries"
        + (f" (limited by {oos['limited_by']})" if oos["limited_by"] else "")
        + (
            f", then raised from {oos['in_scope_threshold']:.4f} while it still catches "
            f"{oos['recall_target']:.2f} of labelled out-of-scope queries"
            if oos.get("rule") == "recall_target"
            else ""
        ),
        f"- validation in-scope queries kept: {fit.get('in_scope_kept', 0.0):.4f}; in-scope "
        f"accuracy at the threshold: {fit.get('in_scope_accuracy', 0.0):.4f}",
    ]
    if "oos_recall" in fit:
        lines.append(
            f"- validation out-of-scope queries caught: {fit['oos_recall']:.4f} of {fit['oos_n']}"
        )
    return (
        f"Answers `{OUT_OF_SCOPE}` when the out-of-scope score is above the threshold stored in "
        f"`{OOS_FILE}`.\n\n" + head + "\n".join(lines)
    )


def _calibration_text(calibration: dict[str, Any]) -> str:
    """The model card's account of the temperature and what it did on validation."""
    fit = calibration["validation"]
    limited = {
        None: "the validation NLL minimum",
        "confidence_cap": "no validation errors, so kept where mean "
        "validation confidence is (n + 1) / (n + 2)",
        "bounds": f"clamped to the range {calibration['bounds']}",
    }.get(calibration["limited_by"], str(calibration["limited_by"]))
    return (
        f"Probabilities are softmax(logits / T) with T = {calibration['temperature']:.4f}, "
        f"fitted on {calibration['n']} validation examples ({limited}); stored in "
        f"`{CALIBRATION_FILE}`.\n\n"
        f"- expected calibration error (validation): {fit['ece_uncalibrated']:.4f} at T = 1, "
        f"{fit['ece']:.4f} calibrated\n"
        f"- negative log-likelihood (validation): {fit['nll_uncalibrated']:.4f} at T = 1, "
        f"{fit['nll']:.4f} calibrated"
    )

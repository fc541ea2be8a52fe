"""Fine-tune a BERT-class checkpoint into an intent classifier from a dataset snapshot.

A plain PyTorch loop in the style of transformers' examples/pytorch/text-classification
(`run_glue_no_trainer.py`): tokenize once, length-grouped batches with dynamic padding,
AdamW with linear warmup/decay, validation after every epoch, and the best epoch kept.
It runs on CPU by default and uses CUDA (with bf16 autocast) when one is present.

torch and transformers are imported inside functions: DAG files import this module at parse
time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from ml import distributed
from ml.artifacts import assert_safetensors_only, directory_sha256
from ml.config import default_base_model
from ml.evaluate import (
    LABELS_FILE,
    TRAIN_CONFIG_FILE,
    batched_probabilities,
    classification_metrics,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("ml.train")

METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "README.md"
# Batches are sorted by length within groups of this many batches, then the batches are
# shuffled: padding waste drops sharply while each epoch still sees a fresh order.
LENGTH_GROUP_BATCHES = 50


@dataclass
class TrainConfig:
    """Every training default in one place. Serialized, resolved, into train_config.json."""

    # None: the packaged MiniLM-L6 (ml.config.default_base_model()). Else a local checkpoint dir.
    base_model: str | None = None
    # Small intent sets converge in a few epochs; more mostly overfits synthetic phrasing.
    epochs: int = 4
    # MiniLM-L6 is small and shallow: it wants a higher rate than BERT-base's usual 2e-5..5e-5.
    learning_rate: float = 1e-4
    # Fits comfortably in CPU memory at max_length 128 and keeps AdamW steps stable.
    batch_size: int = 32
    # Longer texts are truncated to this many tokens (customer turns rarely exceed it); it is
    # also capped at the checkpoint's max_position_embeddings.
    max_length: int = 128
    # A short warmup keeps the randomly initialised head from wrecking pretrained weights early.
    warmup_ratio: float = 0.1
    # Standard AdamW decay; not applied to biases and LayerNorm weights.
    weight_decay: float = 0.01
    # Seeds random, numpy and torch (head init, dropout, batch order): same seed, same model.
    seed: int = 42
    # Stop after this many optimizer steps in total (tests, smoke runs). None: run all epochs.
    max_steps: int | None = None
    # torch intra-op threads. None: os.cpu_count() (shared out among torchrun processes). Set
    # explicitly because torch's default can collapse throughput when a busy process shares cores.
    num_threads: int | None = None
    # Log progress every this many optimizer steps.
    log_every: int = 20
    # Stop when validation macro-F1 has not improved for this many epochs (the best epoch is
    # kept either way). None: always run every epoch.
    early_stopping_patience: int | None = 2
    # One optimizer step every this many batches: a larger effective batch in the same memory.
    gradient_accumulation_steps: int = 1


@dataclass
class _Split:
    """One tokenized split: unpadded encodings, label strings and label ids (-1: unknown)."""

    encoded: list[dict[str, list[int]]]
    intents: list[str]
    label_ids: list[int]
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [len(e["input_ids"]) for e in self.encoded]


@dataclass
class _Outcome:
    """What the training loop hands to the artifact writer."""

    best_epoch: int
    validation: dict[str, Any]
    train_loss: float
    epochs_run: int
    steps: int
    samples_per_second: float
    history: list[dict[str, Any]]


def fine_tune(
    snapshot_dir: Path, out_dir: Path, config: TrainConfig, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Fine-tune on `snapshot_dir` and write a safetensors-only model artifact to `out_dir`.

    With `checkpoint_dir`, the model, optimizer and schedule are saved there after every
    epoch, and a call that finds a checkpoint resumes from it: a retried task (after a kill
    or a lost worker) continues instead of starting over, and ends with the same model.

    Under torchrun (ml.distributed) every process calls this; rank 0 alone writes checkpoints
    and the artifact, and the other ranks return an empty dict.

    Raises ValueError before any training for an empty train split, fewer than two labels,
    or a base model that is not a local sequence-classification-capable checkpoint, and
    FileExistsError when `out_dir` exists and is not empty.
    """
    import torch

    started = time.perf_counter()
    world = distributed.current()
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    _check_out_dir(out_dir)
    snapshot = _read_json(snapshot_dir / "snapshot.json")
    train_rows = _read_split(snapshot_dir, "train")
    val_rows = _read_split(snapshot_dir, "validation")
    labels = _label_set(train_rows["intent"], snapshot_dir)
    base_model = _resolve_base_model(config.base_model)
    threads = config.num_threads or max((os.cpu_count() or 1) // world.size, 1)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _set_seed(config.seed)
        model, tokenizer = _load_base(base_model, labels)
        max_length = min(config.max_length, model.config.max_position_embeddings)
        resolved = replace(
            config, base_model=base_model, num_threads=threads, max_length=max_length
        )
        label2id = {label: i for i, label in enumerate(labels)}
        train = _tokenize(tokenizer, train_rows, label2id, max_length)
        validation = _tokenize(tokenizer, val_rows, label2id, max_length)
        _warn_unknown_labels(validation, labels)
        logger.info(
            "fine-tuning %s on %d train / %d validation examples, %d labels, %d threads, "
            "%d process(es), %s",
            base_model,
            len(train.intents),
            len(validation.intents),
            len(labels),
            threads,
            world.size,
            _device().type,
        )
        outcome = _train(model, tokenizer, train, validation, labels, resolved, checkpoint_dir)
    finally:
        torch.set_num_threads(previous_threads)

    if not world.main:
        return {}
    wall_seconds = time.perf_counter() - started
    _write_artifact(
        out_dir, model, tokenizer, labels, resolved, snapshot, train, outcome, wall_seconds
    )
    logger.info("wrote artifact %s", out_dir)
    return artifact_summary(out_dir)


def artifact_summary(out_dir: Path) -> dict[str, Any]:
    """What fine_tune returns, read back from a finished artifact (a retried task reuses it)."""
    metrics = _read_json(out_dir / METRICS_FILE)
    config = _read_json(out_dir / TRAIN_CONFIG_FILE)
    keys = ("validation", "samples_per_second", "wall_seconds", "epochs_run", "best_epoch")
    return {
        "artifact_dir": str(out_dir),
        "artifact_sha256": directory_sha256(out_dir),
        "labels": _read_json(out_dir / LABELS_FILE),
        **{k: metrics[k] for k in keys},
        "train_loss": metrics["train_loss"],
        "base_model": config["base_model"],
        "config": {f.name: config[f.name] for f in fields(TrainConfig) if f.name in config},
    }


# --- inputs and checks -----------------------------------------------------------------------


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"artifact directory {out_dir} exists and is not empty")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a dataset snapshot directory?")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_split(snapshot_dir: Path, split: str) -> dict[str, list[str]]:
    """`text` and `intent` of one split; rows without an intent cannot be trained or scored."""
    path = snapshot_dir / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot split {path} not found")
    table = pq.read_table(path, columns=["text", "intent"]).to_pydict()
    rows = [(t or "", y) for t, y in zip(table["text"], table["intent"], strict=True) if y]
    return {"text": [t for t, _ in rows], "intent": [y for _, y in rows]}


def _label_set(intents: list[str], snapshot_dir: Path) -> list[str]:
    """Sorted labels actually present in train: the model can only learn those."""
    if not intents:
        raise ValueError(f"the train split of snapshot {snapshot_dir} is empty: nothing to learn")
    labels = sorted(set(intents))
    if len(labels) < 2:
        raise ValueError(
            f"the train split of snapshot {snapshot_dir} has only the label(s) {labels}; "
            "a classifier needs at least 2"
        )
    return labels


def _resolve_base_model(base_model: str | None) -> str:
    """A local checkpoint directory whose config maps to a sequence-classification model."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    path = Path(base_model or default_base_model())
    if not path.is_dir():
        raise ValueError(f"base model {path} does not exist or is not a directory")
    if not (path / "config.json").is_file():
        raise ValueError(f"base model {path} has no config.json: not a Hugging Face checkpoint")
    if not any(path.glob("*.safetensors")):
        raise ValueError(f"base model {path} has no .safetensors weights (pickles are refused)")
    try:
        model_config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"base model {path} has an unreadable config.json: {exc}") from exc
    if type(model_config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
        raise ValueError(
            f"base model {path} is a {model_config.model_type!r} checkpoint, which has no "
            "sequence-classification head in transformers"
        )
    return str(path.absolute())


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    return model.to(_device()), tokenizer


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


def _length_grouped_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffled batches of indices whose examples have similar lengths.

    Like transformers' LengthGroupedSampler: shuffle, cut into groups of
    LENGTH_GROUP_BATCHES batches, sort each group by length, batch it, then shuffle the
    batches. Short customer texts vary a lot in length, so this cuts padding (and CPU time)
    several-fold compared with random batches.
    """
    order = rng.permutation(len(lengths))
    group = batch_size * LENGTH_GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group].tolist(), key=lambda i: -lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _optimizer(model: PreTrainedModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (the 1-d parameters) get no weight decay."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    # The fused kernel exists for CUDA only.
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=_device().type == "cuda")


def _data_parallel(
    model: PreTrainedModel, world: distributed.World, device: torch.device
) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel under torchrun; itself otherwise."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank]
    return DistributedDataParallel(model, device_ids=ids if device.type == "cuda" else None)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA where supported, fp16 (with loss scaling) on older GPUs, none on CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: _Split,
    validation: _Split,
    labels: list[str],
    config: TrainConfig,
    checkpoints: Path | None = None,
) -> _Outcome:
    """Run the epochs, validating after each; load the best epoch's weights back at the end."""
    import torch
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    device = _device()
    world = distributed.current()
    if device.type == "cuda":
        # TF32 matmuls: free speed on Ampere+ for the fp32 parts autocast leaves alone.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    collate = DataCollatorWithPadding(tokenizer)
    accumulate = max(1, config.gradient_accumulation_steps)
    batches_per_epoch = distributed.shard_count(
        math.ceil(len(train.encoded) / config.batch_size), world
    )
    total_steps = config.epochs * math.ceil(batches_per_epoch / accumulate)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = _optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps
    )

    # Forward and backward go through DDP when there are several processes (it all-reduces
    # the gradients); weights, validation and saving use the plain model it wraps.
    trainer = _data_parallel(model, world, device)
    run = _RunState()
    if checkpoints is not None:
        run = _load_checkpoint(checkpoints, config, model, optimizer, scheduler) or run
    window_loss, window_steps = 0.0, 0
    for epoch in range(run.epoch + 1, config.epochs + 1):
        if run.step >= total_steps or run.stale_epochs_exhausted(config):
            break
        model.train()
        epoch_loss, epoch_batches = 0.0, 0
        rng = np.random.default_rng(config.seed + epoch)
        batches = _length_grouped_batches(train.lengths, config.batch_size, rng)
        batches = distributed.shard(batches, world)  # every batch when there is one process
        for b, batch_ids in enumerate(batches):
            if run.step >= total_steps:
                break
            tick = time.perf_counter()
            batch = collate([train.encoded[i] for i in batch_ids])
            batch = {k: v.to(device) for k, v in batch.items()}
            targets = torch.tensor([train.label_ids[i] for i in batch_ids], device=device)
            stepped = (b + 1) % accumulate == 0 or b + 1 == len(batches)
            # Accumulating batches skip DDP's gradient all-reduce; the stepping one does it.
            sync = nullcontext() if stepped or world.size == 1 else trainer.no_sync()
            with sync:
                with torch.autocast(
                    device.type, dtype=amp or torch.bfloat16, enabled=amp is not None
                ):
                    loss = trainer(**batch, labels=targets).loss
                scaler.scale(loss / accumulate).backward()
            loss_value = loss.item()  # syncs CUDA, so the timing below is honest
            epoch_loss, epoch_batches = epoch_loss + loss_value, epoch_batches + 1
            window_loss, window_steps = window_loss + loss_value, window_steps + 1
            run.samples += len(batch_ids) * world.size  # every rank ran a batch like it
            if stepped:
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                run.step += 1
            run.train_seconds += time.perf_counter() - tick
            if stepped and (run.step % config.log_every == 0 or run.step == total_steps):
                loss_avg = window_loss / window_steps
                _log_progress(run.step, total_steps, loss_avg, run.samples, run.train_seconds)
                window_loss, window_steps = 0.0, 0

        metrics = _validate(model, tokenizer, validation, labels, config.batch_size)
        train_loss = epoch_loss / max(epoch_batches, 1)
        run.history.append(
            {"epoch": epoch, "steps": run.step, "train_loss": train_loss, **_brief(metrics)}
        )
        logger.info(
            "epoch %d/%d: train loss %.4f, validation accuracy %.4f, macro F1 %.4f (n=%d)",
            epoch,
            config.epochs,
            train_loss,
            metrics["accuracy"],
            metrics["macro_f1"],
            metrics["n"],
        )
        # Without validation rows there is nothing to choose by: keep the latest epoch.
        score = metrics["macro_f1"] if metrics["n"] else float(epoch)
        if run.best_epoch == 0 or score > run.best_score:
            run.best_score, run.best_epoch, run.best_metrics = score, epoch, metrics
            run.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        run.epoch = epoch
        if checkpoints is not None:
            if world.main:
                _save_checkpoint(checkpoints, config, run, model, optimizer, scheduler)
            distributed.barrier(world)

    if run.best_epoch == 0:
        raise RuntimeError("no epoch ran: check epochs and max_steps")
    if run.stale_epochs_exhausted(config) and run.epoch < config.epochs:
        logger.info(
            "early stop after epoch %d: no validation macro-F1 gain for %d epochs",
            run.epoch,
            config.early_stopping_patience,
        )
    model.load_state_dict(run.best_state)
    kept = run.history[run.best_epoch - 1]
    logger.info("keeping epoch %d (validation macro F1 %.4f)", run.best_epoch, kept["macro_f1"])
    return _Outcome(
        best_epoch=run.best_epoch,
        validation=run.best_metrics,
        train_loss=kept["train_loss"],
        epochs_run=len(run.history),
        steps=run.step,
        samples_per_second=run.samples / run.train_seconds if run.train_seconds else 0.0,
        history=run.history,
    )


@dataclass
class _RunState:
    """Everything a resumed run needs besides model, optimizer and schedule state."""

    epoch: int = 0  # last finished epoch
    step: int = 0  # optimizer steps so far
    samples: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = 0.0
    best_epoch: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_state: dict[str, Any] = field(default_factory=dict)

    def stale_epochs_exhausted(self, config: TrainConfig) -> bool:
        patience = config.early_stopping_patience
        return (
            patience is not None
            and self.best_epoch > 0
            and self.epoch - self.best_epoch >= patience
        )


# --- checkpoints -------------------------------------------------------------------------------
# checkpoints/epoch-NNN/: model.safetensors, best.safetensors (weights only), optimizer.pt
# (optimizer + schedule + RNG state, loaded with weights_only=True: tensors and plain data, no
# code), state.json. Each is written to a temporary folder and renamed, so a kill mid-write
# leaves the previous checkpoint as the latest complete one.


def _config_key(config: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint must agree on to be resumed (not threads or logging)."""
    skip = {"num_threads", "log_every"}
    return {k: v for k, v in asdict(config).items() if k not in skip}


def _save_checkpoint(
    root: Path,
    config: TrainConfig,
    run: _RunState,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> None:
    import torch
    from safetensors.torch import save_file, save_model

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{run.epoch:03d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in run.best_state.items()}, str(tmp / "best.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        },
        tmp / "optimizer.pt",
    )
    state = {k: v for k, v in asdict(run).items() if k != "best_state"}
    _dump(tmp / "state.json", {"config": _config_key(config), "run": state})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("epoch-*"))[:-1]:  # keep only the latest
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint %s written", final)


def _load_checkpoint(
    root: Path,
    config: TrainConfig,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> _RunState | None:
    import torch
    from safetensors.torch import load_file, load_model

    found = sorted(p for p in root.glob("epoch-*") if (p / "state.json").is_file())
    if not found:
        return None
    latest = found[-1]
    saved = json.loads((latest / "state.json").read_text(encoding="utf-8"))
    if saved["config"] != _config_key(config):
        logger.warning("checkpoint %s was made with other settings: starting over", latest)
        return None
    load_model(model, str(latest / "model.safetensors"), device=str(_device()))
    extra = torch.load(latest / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    run = _RunState(**saved["run"])
    run.best_state = load_file(str(latest / "best.safetensors"))
    logger.info("resuming from %s (epoch %d, step %d)", latest, run.epoch, run.step)
    return run


def _log_progress(step: int, total: int, loss: float, samples: int, seconds: float) -> None:
    rate = samples / seconds if seconds else 0.0
    eta = (total - step) * seconds / step
    logger.info(
        "step %d/%d loss %.4f %.1f samples/s ETA %s",
        step,
        total,
        loss,
        rate,
        time.strftime("%H:%M:%S", time.gmtime(eta)),
    )


def _validate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    validation: _Split,
    labels: list[str],
    batch_size: int,
) -> dict[str, Any]:
    """classification_metrics on the validation split; unknown labels count as misses."""
    if not validation.encoded:
        return classification_metrics([], [], labels)
    # Inference holds no activations for backward, so larger batches are cheap.
    probs = batched_probabilities(model, tokenizer, validation.encoded, batch_size * 2)
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    return classification_metrics(validation.intents, predicted, labels)


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}


# --- artifact --------------------------------------------------------------------------------


def _write_artifact(
    out_dir: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    config: TrainConfig,
    snapshot: dict[str, Any],
    train: _Split,
    outcome: _Outcome,
    wall_seconds: float,
) -> None:
    """Write everything into a hidden sibling first, then rename: no half-written artifacts."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)  # transformers 5 writes safetensors only
        tokenizer.save_pretrained(staging)
        assert_safetensors_only(staging)
        support = {label: train.intents.count(label) for label in labels}
        _dump(staging / LABELS_FILE, labels)
        _dump(
            staging / TRAIN_CONFIG_FILE,
            {**asdict(config), "snapshot_hash": snapshot.get("hash"), **_versions()},
        )
        _dump(
            staging / METRICS_FILE,
            {
                "validation": outcome.validation,
                "best_epoch": outcome.best_epoch,
                "train_loss": outcome.train_loss,
                "samples_per_second": outcome.samples_per_second,
                "wall_seconds": wall_seconds,
                "epochs_run": outcome.epochs_run,
                "steps": outcome.steps,
                "processes": distributed.current().size,
                "history": outcome.history,
            },
        )
        card = _model_card(config, snapshot, support, outcome)
        (staging / MODEL_CARD_FILE).write_text(card, encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # checked empty up front
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _dump(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _versions() -> dict[str, Any]:
    import torch
    import transformers

    return {"versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


def _model_card(
    config: TrainConfig,
    snapshot: dict[str, Any],
    support: dict[str, int],
    outcome: _Outcome,
) -> str:
    """A short model card: what it is, what it was trained on, how good, and where it fails."""
    # A snapshot built from a labeled file has no date window.
    window = snapshot.get("window") or {}
    dates = f"{window.get('start')} to {window.get('end')}" if window else "none (from a file)"
    val = outcome.validation
    settings = "\n".join(f"- {key}: {value}" for key, value in asdict(config).items())
    label_rows = "\n".join(
        f"| `{label}` | {n} | {val['per_class'].get(label, {}).get('f1', 0.0):.3f} |"
        for label, n in support.items()
    )
    return f"""# Intent classifier

Fine-tuned from `{config.base_model}` by Intentflow (`ml.train.fine_tune`).

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

## Training

{settings}

## Intended use

Routing customer-service conversations by intent, from the customer's turns only (agent and
system turns are excluded from the model text). Predictions feed a router; low-probability
predictions should go to a human queue.

## Limitations

- Trained on English data (synthetic and/or real) from the window above only; other
  languages, products or phrasing drift after the window will degrade accuracy.
- Texts longer than {config.max_length} tokens are truncated: only their beginning is seen.
- The label set is closed: a conversation whose intent is outside the {len(support)} labels
  above is still forced into one of them.
"""

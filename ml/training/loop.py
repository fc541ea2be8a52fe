"""The task-agnostic training loop every task type fine-tunes with.

A plain PyTorch loop in the style of transformers' examples/pytorch/text-classification
(`run_glue_no_trainer.py`): length-grouped batches with dynamic padding, AdamW with linear
warmup/decay, validation after every epoch, the best epoch kept, early stopping, checkpoints
after every epoch (a retried task resumes), DDP under torchrun and bf16 autocast on CUDA.
Intent (ml.tasks.intent.train), entities (ml.tasks.entities) and answers (ml.tasks.answers) each describe their batches,
loss and validation in a LoopTask; the recipe itself is written once, here, and what comes before
it (out dir, snapshot, base model, threads, seed) once in ml.training.prepare.

torch and transformers are imported inside functions: DAG files import the task modules at
parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ml.artifact.files import write_json
from ml.progress import Progress
from ml.training import distributed
from ml.training.config import BaseTrainConfig
from ml.training.device import torch_device

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# Batches are sorted by length within groups of this many batches, then the batches are
# shuffled: padding waste drops sharply while each epoch still sees a fresh order.
LENGTH_GROUP_BATCHES = 50


class TrainSplit(Protocol):
    """A tokenized train split as the loop sees it: lengths for batching, examples by index."""

    lengths: list[int]

    def examples(self, ids: list[int]) -> list[dict[str, Any]]: ...


@dataclass
class LoopTask:
    """What the task-agnostic training loop needs to know about one task type.

    `collate` pads a batch of examples into a dict of tensors; `validate` scores the model on
    the validation split (a metrics dict with "n" and `metric`); the epoch with the highest
    `metric` is kept.
    """

    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    validate: Callable[[PreTrainedModel], dict[str, Any]]
    metric: str
    # The training loss of a collated batch, run under autocast: it calls the model (the DDP
    # wrapper under torchrun) itself. None: model(**batch).loss (the batch holds "labels").
    loss: Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor] | None = None
    # Batches with fewer examples are skipped (in-batch negatives need at least two).
    min_batch: int = 1


@dataclass
class Outcome:
    """What the training loop hands to the artifact writer."""

    best_epoch: int
    validation: dict[str, Any]
    train_loss: float
    epochs_run: int
    steps: int
    samples_per_second: float
    history: list[dict[str, Any]]

    def record(self, wall_seconds: float, **extra: Any) -> dict[str, Any]:
        """metrics.json's content: the outcome, `extra` (e.g. processes) before the history."""
        return {
            "validation": self.validation,
            "best_epoch": self.best_epoch,
            "train_loss": self.train_loss,
            "samples_per_second": self.samples_per_second,
            "wall_seconds": wall_seconds,
            "epochs_run": self.epochs_run,
            "steps": self.steps,
            **extra,
            "history": self.history,
        }


# --- batches, optimizer, device ----------------------------------------------------------------


def length_grouped_batches(
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


def adamw(model: PreTrainedModel, config: BaseTrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (the 1-d parameters) get no weight decay."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    # The fused kernel (CPU and CUDA): one pass over each tensor instead of about ten. On CPU
    # the unfused step over MiniLM's 22.7M parameters costs ~0.1 s, a tenth of a batch of 32.
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)


def data_parallel(
    model: PreTrainedModel, world: distributed.World, device: torch.device
) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel under torchrun; itself otherwise."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank]
    return DistributedDataParallel(model, device_ids=ids if device.type == "cuda" else None)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA where supported, fp16 (with loss scaling) on older GPUs, none on CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_epochs(
    model: PreTrainedModel,
    train: TrainSplit,
    config: BaseTrainConfig,
    loop: LoopTask,
    checkpoints: Path | None = None,
) -> Outcome:
    """Run the epochs, validating after each; load the best epoch's weights back at the end.

    Task-agnostic: `train` has `lengths` and `examples(ids)` (see TrainSplit); `loop` says how
    to batch, score and compute the loss (see LoopTask). With `checkpoints`, the model,
    optimizer and schedule are saved there after every epoch and a run that finds one resumes.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    device = torch_device()
    world = distributed.current()
    if device.type == "cuda":
        # TF32 matmuls: free speed on Ampere+ for the fp32 parts autocast leaves alone.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    accumulate = max(1, config.accumulation_steps())
    batches_per_epoch = distributed.shard_count(
        math.ceil(len(train.lengths) / config.batch_size), world
    )
    total_steps = config.epochs * math.ceil(batches_per_epoch / accumulate)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = adamw(model, config)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps
    )

    # Forward and backward go through DDP when there are several processes (it all-reduces
    # the gradients); weights, validation and saving use the plain model it wraps.
    trainer = data_parallel(model, world, device)
    run = RunState()
    if checkpoints is not None:
        run = _load_checkpoint(checkpoints, config, model, optimizer, scheduler) or run
    # Loss and speed shown: over the batches since the last multiple of log_every steps.
    window_loss, window_steps, window_samples, window_seconds = 0.0, 0, 0, 0.0
    # Rank 0 alone reports: the other ranks run the same steps.
    progress = Progress(
        "train", total_steps, "steps", config.log_every, run.step, None if world.main else "off"
    )
    for epoch in range(run.epoch + 1, config.epochs + 1):
        if run.step >= total_steps or run.stale_epochs_exhausted(config):
            break
        model.train()
        epoch_loss, epoch_batches = 0.0, 0
        rng = np.random.default_rng(config.seed + epoch)
        batches = length_grouped_batches(train.lengths, config.batch_size, rng)
        # Skipped before sharding, so every rank still runs the same number of batches.
        batches = [ids for ids in batches if len(ids) >= loop.min_batch]
        batches = distributed.shard(batches, world)  # every batch when there is one process
        for b, batch_ids in enumerate(batches):
            if run.step >= total_steps:
                break
            tick = time.perf_counter()
            batch = loop.collate(train.examples(batch_ids))
            batch = {k: v.to(device) for k, v in batch.items()}
            stepped = (b + 1) % accumulate == 0 or b + 1 == len(batches)
            # Accumulating batches skip DDP's gradient all-reduce; the stepping one does it.
            sync = nullcontext() if stepped or world.size == 1 else trainer.no_sync()
            with sync:
                with torch.autocast(
                    device.type, dtype=amp or torch.bfloat16, enabled=amp is not None
                ):
                    loss = loop.loss(trainer, batch) if loop.loss else trainer(**batch).loss
                scaler.scale(loss / accumulate).backward()
            loss_value = loss.item()  # syncs CUDA, so the timing below is honest
            epoch_loss, epoch_batches = epoch_loss + loss_value, epoch_batches + 1
            window_loss, window_steps = window_loss + loss_value, window_steps + 1
            run.samples += len(batch_ids) * world.size  # every rank ran a batch like it
            window_samples += len(batch_ids) * world.size
            if stepped:
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                run.step += 1
            elapsed = time.perf_counter() - tick
            run.train_seconds += elapsed
            window_seconds += elapsed
            if stepped:
                progress.advance(
                    1,
                    loss=window_loss / window_steps,
                    **{"samples/s": window_samples / window_seconds},
                )
                if run.step % config.log_every == 0:
                    window_loss, window_steps, window_samples, window_seconds = 0.0, 0, 0, 0.0

        metrics = loop.validate(model)
        train_loss = epoch_loss / max(epoch_batches, 1)
        run.history.append(
            {"epoch": epoch, "steps": run.step, "train_loss": train_loss, **headline(metrics)}
        )
        progress.note(
            "epoch %d/%d: train loss %.4f, validation %s",
            epoch,
            config.epochs,
            train_loss,
            ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in headline(metrics).items()
            ),
        )
        # Without validation rows there is nothing to choose by: keep the latest epoch.
        score = metrics[loop.metric] if metrics["n"] else float(epoch)
        if run.best_epoch == 0 or score > run.best_score:
            run.best_score, run.best_epoch, run.best_metrics = score, epoch, metrics
            run.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        run.epoch = epoch
        if checkpoints is not None:
            # Each rank's own dropout stream: ranks draw different amounts (their batches pad
            # to different lengths), so one rank's state would not resume another exactly.
            rng_states = distributed.gather(world, torch.get_rng_state())
            if world.main:
                _save_checkpoint(checkpoints, config, run, model, optimizer, scheduler, rng_states)
            distributed.barrier(world)

    progress.close()
    if run.best_epoch == 0:
        raise RuntimeError("no epoch ran: check epochs and max_steps")
    if run.stale_epochs_exhausted(config) and run.epoch < config.epochs:
        logger.info(
            "early stop after epoch %d: no validation %s gain for %d epochs",
            run.epoch,
            loop.metric,
            config.early_stopping_patience,
        )
    model.load_state_dict(run.best_state)
    kept = run.history[run.best_epoch - 1]
    logger.info(
        "keeping epoch %d (validation %s %.4f)", run.best_epoch, loop.metric, kept[loop.metric]
    )
    return Outcome(
        best_epoch=run.best_epoch,
        validation=run.best_metrics,
        train_loss=kept["train_loss"],
        epochs_run=len(run.history),
        steps=run.step,
        samples_per_second=run.samples / run.train_seconds if run.train_seconds else 0.0,
        history=run.history,
    )


@dataclass
class RunState:
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

    def stale_epochs_exhausted(self, config: BaseTrainConfig) -> bool:
        """True when early stopping's patience has run out since the best epoch."""
        # A best score of 0 means nothing learned yet (entity F1 stays 0 until the head tags
        # any entity at all): waiting for the first gain is not a plateau.
        patience = config.early_stopping_patience
        return (
            patience is not None
            and self.best_epoch > 0
            and self.best_score > 0
            and self.epoch - self.best_epoch >= patience
        )


# --- checkpoints -------------------------------------------------------------------------------
# checkpoints/epoch-NNN/: model.safetensors, best.safetensors (weights only), optimizer.pt
# (optimizer + schedule + RNG state, loaded with weights_only=True: tensors and plain data, no
# code), state.json. Each is written to a temporary folder and renamed, so a kill mid-write
# leaves the previous checkpoint as the latest complete one.


def _config_key(config: BaseTrainConfig) -> dict[str, Any]:
    """The settings a checkpoint must agree on to be resumed (not threads or logging)."""
    skip = {"num_threads", "log_every"}
    return {k: v for k, v in asdict(config).items() if k not in skip}


def _save_checkpoint(
    root: Path,
    config: BaseTrainConfig,
    run: RunState,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng_states: list[torch.Tensor],
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
            "torch_rng": rng_states,  # one per rank
        },
        tmp / "optimizer.pt",
    )
    state = {k: v for k, v in asdict(run).items() if k != "best_state"}
    write_json(tmp / "state.json", {"config": _config_key(config), "run": state})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("epoch-*"))[:-1]:  # keep only the latest
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint %s written", final)


def _load_checkpoint(
    root: Path,
    config: BaseTrainConfig,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> RunState | None:
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
    load_model(model, str(latest / "model.safetensors"), device=str(torch_device()))
    extra = torch.load(latest / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    states = extra["torch_rng"] if isinstance(extra["torch_rng"], list) else [extra["torch_rng"]]
    torch.set_rng_state(states[distributed.current().rank % len(states)])
    run = RunState(**saved["run"])
    run.best_state = load_file(str(latest / "best.safetensors"))
    logger.info("resuming from %s (epoch %d, step %d)", latest, run.epoch, run.step)
    return run


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict (per-class detail and latency left out)."""
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float) and not k.startswith(("latency", "throughput"))
    }

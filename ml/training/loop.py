"""The task-agnostic training every task type fine-tunes with: transformers' Trainer.

Each task (intent, entities, answers) describes its batches, loss and validation in a LoopTask;
`train_epochs` hands them to a `transformers.Trainer` set up with the recipe (TrainingArguments
built from the task's config, overridable by its `trainer_args`): length-grouped batches with
dynamic padding, fused AdamW with linear warmup/decay and gradient clipping, validation after
every epoch, the best epoch kept, early stopping, a checkpoint after every epoch with each
rank's full RNG state (a retried task resumes), DDP under torchrun and bf16/TF32 on CUDA.
What comes before it (out dir, snapshot, base model, threads, seed) is ml.training.prepare;
mirroring checkpoints to object storage is ml.training.checkpoints.

torch and transformers are imported inside functions: DAG files import the task modules at
parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ml.progress import Progress
from ml.training import checkpoints as stored
from ml.training import distributed
from ml.training.config import BaseTrainConfig
from ml.training.device import torch_device

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, TrainingArguments

logger = logging.getLogger(__name__)

# Set by train_epochs from the task's config, or by the recipe itself: a `trainer_args` key
# among these is refused (the config field is the one way to set it, or it would break the
# recipe: validation after every epoch, the best epoch kept, checkpoints where asked).
OWNED_ARGS = {
    "output_dir": "the checkpoint directory",
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup_ratio",
    "warmup_ratio": "warmup_ratio",
    "seed": "seed",
    "max_grad_norm": "max_grad_norm",
    "label_smoothing_factor": "label_smoothing (intent)",
    "logging_steps": "log_every",
    "eval_strategy": "the recipe (validation after every epoch)",
    "save_strategy": "the recipe (a checkpoint after every epoch)",
    "load_best_model_at_end": "the recipe (the best epoch is kept)",
    "metric_for_best_model": "the task's choice of the kept epoch",
    "greater_is_better": "the task's choice of the kept epoch",
    "remove_unused_columns": "the recipe (tasks collate their own batches)",
    "train_sampling_strategy": "the recipe (length-grouped batches)",
}


class TrainSplit(Protocol):
    """A tokenized train split as the loop sees it: lengths for batching, examples by index."""

    lengths: list[int]

    def examples(self, ids: list[int]) -> list[dict[str, Any]]: ...


@dataclass
class LoopTask:
    """What the task-agnostic training needs to know about one task type.

    `collate` pads a batch of examples into a dict of tensors; `validate` scores the model on
    the validation split (a metrics dict with "n" and `metric`); the epoch with the best
    `metric` (the highest, or the lowest when not `greater_is_better`) is kept.
    """

    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    validate: Callable[[PreTrainedModel], dict[str, Any]]
    metric: str
    greater_is_better: bool = True
    # The training loss of a collated batch, run under autocast: it calls the model (the DDP
    # wrapper under torchrun) itself. None: the Trainer's (the model's own loss, label-smoothed
    # when the config has label_smoothing).
    loss: Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor] | None = None
    # A last batch with fewer examples is dropped (in-batch negatives need at least two).
    min_batch: int = 1


@dataclass
class Outcome:
    """What the training hands to the artifact writer."""

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


def training_arguments(
    config: BaseTrainConfig, output_dir: Path, loop: LoopTask, n_train: int, keep_optimizer: bool
) -> TrainingArguments:
    """The recipe as TrainingArguments: the config's settings, then its `trainer_args`."""
    import dataclasses

    import torch
    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    extra = dict(config.trainer_args or {})
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ValueError(f"trainer_args has keys TrainingArguments does not know: {unknown}")
    owned = {k: OWNED_ARGS[k] for k in extra if k in OWNED_ARGS}
    if owned:
        raise ValueError(f"trainer_args sets what the training config owns: {owned}")
    cuda = torch_device().type == "cuda"
    world = distributed.current()
    last_batch = n_train % config.batch_size
    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.accumulation_steps(),
        "learning_rate": config.learning_rate,
        "weight_decay": config.weight_decay,
        "lr_scheduler_type": "linear",
        # A float below 1 is a share of the total steps (transformers 5's warmup_ratio).
        "warmup_steps": config.warmup_ratio,
        "max_grad_norm": config.max_grad_norm,
        # The fused kernel (CPU and CUDA): one pass over each tensor instead of about ten. On
        # CPU the unfused step over MiniLM's 22.7M parameters costs ~0.1 s, a tenth of a batch.
        "optim": "adamw_torch_fused",
        "seed": config.seed,
        "label_smoothing_factor": getattr(config, "label_smoothing", 0.0),
        "train_sampling_strategy": "group_by_length",
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "score",
        "greater_is_better": True,
        # The latest checkpoint (to resume) and the best one (to keep) survive rotation.
        "save_total_limit": 1,
        "save_only_model": not keep_optimizer,
        "remove_unused_columns": False,
        "dataloader_drop_last": 0 < last_batch < loop.min_batch,
        "dataloader_pin_memory": cuda,
        "logging_strategy": "steps",
        "logging_steps": config.log_every,
        "disable_tqdm": True,  # ml.progress writes the task log's lines instead
        "report_to": "none",
        "use_cpu": not cuda,
        # bf16 autocast on CUDA where supported, fp16 (with loss scaling) on older GPUs; TF32
        # matmuls for the fp32 parts autocast leaves alone.
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "fp16": cuda and not torch.cuda.is_bf16_supported(),
        "tf32": True if cuda else None,
        "ddp_backend": None if cuda or world.size == 1 else "gloo",
        "ddp_find_unused_parameters": False,
    }
    return TrainingArguments(**{**args, **extra})


def train_epochs(
    model: PreTrainedModel,
    train: TrainSplit,
    config: BaseTrainConfig,
    loop: LoopTask,
    checkpoints: Path | None = None,
    checkpoint_url: str | None = None,
) -> Outcome:
    """Run the epochs, validating after each; load the best epoch's weights back at the end.

    With `checkpoints`, a checkpoint is written there after every epoch and a run that finds
    one resumes from it; with `checkpoint_url` too, each is mirrored to that object-storage
    folder, and a run without a local one resumes from the mirror (another worker's).
    """
    world = distributed.current()
    scratch = None
    if checkpoints is None:
        # The best epoch is kept through the Trainer's checkpoints: weights only, thrown away.
        scratch = tempfile.TemporaryDirectory(prefix="intentflow-train-")
        root = Path(scratch.name)
    else:
        root = Path(checkpoints)
        root.mkdir(parents=True, exist_ok=True)
        if checkpoint_url and world.main:
            stored.fetch(checkpoint_url, root)
        distributed.barrier(world)
    from transformers.utils import logging as hf_logging

    # Each checkpoint's save_pretrained draws a "Writing model shards" bar: in a task log that
    # is a bar per epoch. The progress lines are ml.progress's; bars come back afterwards.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _train(model, train, config, loop, root, scratch is None, checkpoint_url)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if scratch is not None:
            scratch.cleanup()


def _train(
    model: PreTrainedModel,
    train: TrainSplit,
    config: BaseTrainConfig,
    loop: LoopTask,
    root: Path,
    resumable: bool,
    checkpoint_url: str | None,
) -> Outcome:
    from transformers.trainer_callback import PrinterCallback

    args = training_arguments(config, root, loop, len(train.lengths), keep_optimizer=resumable)
    resume = _resumable_checkpoint(root, config) if resumable else None
    if resumable and args.should_save:
        _write_config_key(root, config)
    trainer_ref: list[Any] = []  # the progress callback reads the trainer's loss window
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=_Examples(train),
        # The task validates itself (LoopTrainer.evaluate); the Trainer only checks there is
        # something to evaluate when validating every epoch.
        eval_dataset=[],
        data_collator=loop.collate,
        callbacks=[
            _ProgressLines(config, lambda reset: trainer_ref[0].window(reset)),
            _EarlyStopping(config.early_stopping_patience, loop.greater_is_better),
            _Checkpointed(checkpoint_url if resumable else None),
        ],
        loop=loop,
        lengths=train.lengths,
    )
    trainer_ref.append(trainer)
    trainer.remove_callback(PrinterCallback)
    if resume is not None:
        state = json.loads((resume / "trainer_state.json").read_text(encoding="utf-8"))
        logger.info(
            "resuming from %s (epoch %d, step %d)",
            resume,
            round(state["epoch"]),
            state["global_step"],
        )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer.outcome()


def _trainer_class() -> type:
    """The Trainer with the loop's loss, validation, batches and bookkeeping (defined here so
    transformers loads only when training starts)."""
    import torch
    from transformers import Trainer

    class EpochLengthSampler(torch.utils.data.Sampler):
        """Length-grouped batches (see length_grouped_batches) in an order drawn from
        (seed, epoch), not the global RNG: every rank sees the same order, and a resumed epoch
        the same as the uninterrupted one. Yields indices; the DataLoader cuts them into the
        same batches (the one short batch comes last)."""

        def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
            self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return len(self.lengths)

        def __iter__(self) -> Any:
            rng = np.random.default_rng(self.seed + self.epoch + 1)
            batches = length_grouped_batches(self.lengths, self.batch_size, rng)
            batches.sort(key=lambda b: len(b) < self.batch_size)  # stable: the short one last
            return iter([i for batch in batches for i in batch])

    class LoopTrainer(Trainer):
        def __init__(self, *a: Any, loop: LoopTask, lengths: list[int], **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.loop, self.lengths = loop, lengths
            self.validations: dict[int, dict[str, Any]] = {}
            self._epoch_loss, self._epoch_batches, self._epoch_samples = 0.0, 0, 0
            self._epoch_started = time.perf_counter()
            self._window = [0.0, 0, 0, time.perf_counter()]  # loss, batches, samples, since

        def window(self, reset: bool) -> tuple[float, float]:
            """Mean loss and samples/s since the last reset (the progress figures)."""
            loss, batches, samples, since = self._window
            figures = (loss / max(batches, 1), samples / max(time.perf_counter() - since, 1e-9))
            if reset:
                self._window = [0.0, 0, 0, time.perf_counter()]
            return figures

        def _clip_grad_norm(self, model: Any) -> Any:
            """Gradient clipping to max_grad_norm with one pass over the gradients fewer.

            The Trainer's clipping reads every gradient for the global norm, then rewrites every
            one scaled (about 19 ms a step on CPU over MiniLM's 22.7M parameters, 5% of a
            step). The fused AdamW reads them anyway and divides them by its `grad_scale` as it
            goes (GradScaler's hook): the norm is computed here and the scale handed to the
            step, the same update up to rounding. Elsewhere (an fp16 GradScaler owning
            grad_scale, another optimizer, FSDP/DeepSpeed): the Trainer's clipping."""
            from accelerate.utils import DistributedType

            inner = getattr(self.optimizer, "optimizer", self.optimizer)
            fusable = (
                isinstance(inner, torch.optim.AdamW)
                and inner.defaults.get("fused")
                and self.accelerator.scaler is None
                and self.accelerator.distributed_type
                in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
            )
            if not fusable:
                return super()._clip_grad_norm(model)
            # Under DDP the backward of the stepping batch has averaged the gradients: every
            # rank computes the same norm.
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads, foreach=True)
            # torch's clip_grads_with_norm_: scale by max / (norm + 1e-6) when that is below 1.
            # As a divisor of at least 1 (dividing by 1 is exact), kept a tensor: no CUDA sync.
            inner.grad_scale = ((norm + 1e-6) / self.args.max_grad_norm).clamp(min=1.0)
            return norm

        def floating_point_ops(self, inputs: dict[str, Any]) -> int:
            """0: the Trainer's FLOP estimate walks every parameter each step (~3 ms on CPU)
            for a `total_flos` figure nothing here reads."""
            return 0

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return EpochLengthSampler(self.lengths, self.args.train_batch_size, self.args.seed)

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if self._epoch_batches == 0 and self._epoch_samples == 0:
                self._epoch_started = time.perf_counter()
            if self.loop.loss is None:
                loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            else:
                loss = self.loop.loss(model, inputs)
            value = loss[0] if isinstance(loss, tuple) else loss
            value = float(value.detach())
            first = next(iter(inputs.values()))
            samples = len(first) * self.args.world_size  # every rank ran a batch like it
            self._epoch_loss += value
            self._epoch_batches += 1
            self._epoch_samples += samples
            self._window[0] += value
            self._window[1] += 1
            self._window[2] += samples
            return loss

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            """The task's validation (not the Trainer's prediction loop); the epoch's figures
            go into the Trainer's log history, so a resumed run still has them."""
            # Read before validating: the speed figure is the training's (validation took 6%
            # of it on the engine bench when this was read after), as main's loop timed it.
            seconds = time.perf_counter() - self._epoch_started
            metrics = self.loop.validate(self.model)
            epoch = round(self.state.epoch or 0)
            self.validations[epoch] = metrics
            # Without validation rows (or none the figure can be computed on) there is nothing
            # to choose by: keep the latest epoch. The Trainer keeps the highest eval_score: a
            # loss counts negated.
            value = metrics.get(self.loop.metric) if metrics["n"] else None
            sign = 1.0 if self.loop.greater_is_better else -1.0
            score = float(epoch) if value is None else sign * float(value)
            record = {f"eval_{k}": v for k, v in headline(metrics).items() if k != "score"} | {
                "eval_score": score,
                "eval_train_loss": self._epoch_loss / max(self._epoch_batches, 1),
                "eval_train_samples": self._epoch_samples,
                "eval_train_seconds": seconds,
            }
            self._epoch_loss, self._epoch_batches, self._epoch_samples = 0.0, 0, 0
            self.log(record)
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, record
            )
            return record

        def outcome(self) -> Outcome:
            """The run as an Outcome, from the log history (it survives a resume)."""
            epochs = [e for e in self.state.log_history if "eval_score" in e]
            if not epochs:
                raise RuntimeError("no epoch ran: check epochs and max_steps")
            history = [
                {
                    "epoch": round(e["epoch"]),
                    "steps": e["step"],
                    "train_loss": e["eval_train_loss"],
                    **{
                        k.removeprefix("eval_"): v
                        for k, v in e.items()
                        if k.startswith("eval_") and not k.startswith(("eval_train", "eval_score"))
                    },
                }
                for e in epochs
            ]
            best = max(range(len(epochs)), key=lambda i: (epochs[i]["eval_score"], -i))
            best_epoch = history[best]["epoch"]
            validation = self.validations.get(best_epoch)
            if validation is None:  # that epoch ran before a resume: score the kept weights
                validation = self.loop.validate(self.model)
            seconds = sum(e["eval_train_seconds"] for e in epochs)
            kept = validation.get(self.loop.metric)
            logger.info(
                "keeping epoch %d (validation %s %.4f)",
                best_epoch,
                self.loop.metric,
                float("nan") if kept is None else kept,
            )
            return Outcome(
                best_epoch=best_epoch,
                validation=validation,
                train_loss=history[best]["train_loss"],
                epochs_run=len(history),
                steps=self.state.global_step,
                samples_per_second=(
                    sum(e["eval_train_samples"] for e in epochs) / seconds if seconds else 0.0
                ),
                history=history,
            )

    return LoopTrainer


# Batches are sorted by length within groups of this many batches, then the batches are
# shuffled: padding waste drops sharply while each epoch still sees a fresh order.
LENGTH_GROUP_BATCHES = 50


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffled batches of indices whose examples have similar lengths.

    Like transformers' LengthGroupedSampler, but the batches are shuffled after grouping
    (transformers' run long to short within each group of 50 batches; on a small set that is
    the whole set, the same order every epoch): shuffle, cut into groups of
    LENGTH_GROUP_BATCHES batches, sort each group by length, batch it, shuffle the batches.
    """
    order = rng.permutation(len(lengths))
    group = batch_size * LENGTH_GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group].tolist(), key=lambda i: -lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Examples:
    """A TrainSplit as a map-style dataset of examples."""

    def __init__(self, split: TrainSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split.lengths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.split.examples([index])[0]


# --- callbacks ---------------------------------------------------------------------------------
# Plain classes with the TrainerCallback hooks they need: the Trainer calls hooks by name
# (CallbackHandler.call_event uses getattr), so they need not import transformers at parse time.


class _Hooks:
    """Every TrainerCallback event as a no-op; subclasses define the ones they use."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class _ProgressLines(_Hooks):
    """The task log's progress (ml.progress): after every optimizer step the loss and speed
    over the batches since the last multiple of log_every steps (a log line at each multiple,
    or a bar on a terminal), and a line per epoch with its validation metrics."""

    def __init__(self, config: BaseTrainConfig, window: Callable[[bool], tuple[float, float]]):
        # window(reset) -> (mean loss, samples/s) since the last reset (LoopTrainer's).
        self.config, self.window = config, window
        self.progress: Progress | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        mode = None if state.is_world_process_zero else "off"  # rank 0 alone reports
        every = self.config.log_every
        self.progress = Progress("train", state.max_steps, "steps", every, state.global_step, mode)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is None:
            return
        loss, speed = self.window(state.global_step % self.config.log_every == 0)
        self.progress.advance(
            state.global_step - self.progress.done, loss=loss, **{"samples/s": speed}
        )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.progress is None or not logs or "eval_score" not in logs:
            return
        shown = {
            k.removeprefix("eval_"): v
            for k, v in logs.items()
            if k.startswith("eval_") and not k.startswith(("eval_train", "eval_score"))
        }
        self.progress.note(
            "epoch %d/%d: train loss %.4f, validation %s",
            round(state.epoch or 0),
            self.config.epochs,
            logs["eval_train_loss"],
            ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
            ),
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.close()


class _EarlyStopping(_Hooks):
    """Stop when validation has not improved for `patience` epochs since the best one.

    Read from the log history, so a resumed run counts the epochs before the kill. For a
    figure where higher is better, a best of 0 means nothing learned yet (entity F1 stays 0
    until the head tags any entity at all): waiting for the first gain is not a plateau."""

    def __init__(self, patience: int | None, greater_is_better: bool = True) -> None:
        self.patience, self.greater_is_better = patience, greater_is_better

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        scores = [e["eval_score"] for e in state.log_history if "eval_score" in e]
        if self.patience is None or not scores:
            return
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        learning = scores[best] > 0 or not self.greater_is_better
        if learning and len(scores) - 1 - best >= self.patience:
            logger.info(
                "early stop after epoch %d: no validation gain for %d epochs",
                len(scores),
                self.patience,
            )
            control.should_training_stop = True


class _Checkpointed(_Hooks):
    """Logs each checkpoint as written (the resume tests wait for it) and mirrors it to object
    storage when the run has a checkpoint URL."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.url:
            stored.mirror(Path(args.output_dir), self.url)
        logger.info("checkpoint %s written (epoch-%03d)", folder, round(state.epoch or 0))


# --- which checkpoint resumes ----------------------------------------------------------------


def _config_key(config: BaseTrainConfig) -> dict[str, Any]:
    """The settings a checkpoint must agree on to be resumed (not threads or logging)."""
    skip = {"num_threads", "log_every"}
    return json.loads(json.dumps({k: v for k, v in asdict(config).items() if k not in skip}))


KEY_FILE = "intentflow_config.json"


def _write_config_key(root: Path, config: BaseTrainConfig) -> None:
    (root / KEY_FILE).write_text(json.dumps(_config_key(config)), encoding="utf-8")


def _resumable_checkpoint(root: Path, config: BaseTrainConfig) -> Path | None:
    """The latest complete checkpoint under `root`, when made with these settings; one made
    with others is removed (the run starts over) rather than mixed into this one."""
    found = stored.complete(root)
    if not found:
        return None
    key = root / KEY_FILE
    saved = json.loads(key.read_text(encoding="utf-8")) if key.is_file() else None
    if saved != _config_key(config):
        logger.warning("checkpoints in %s were made with other settings: starting over", root)
        if distributed.current().main:
            for folder in root.glob("checkpoint-*"):
                shutil.rmtree(folder, ignore_errors=True)
        distributed.barrier(distributed.current())
        return None
    return found[-1]


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict (per-class detail and latency left out)."""
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float) and not k.startswith(("latency", "throughput"))
    }

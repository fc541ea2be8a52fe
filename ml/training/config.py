"""The settings every task type's training shares: what each means, its default and why.

A task's config (intent's TrainConfig, entities', answers') extends BaseTrainConfig and
overrides a default only where the task needs another. The resolved config is written into the
artifact's train_config.json.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(frozen=True)
class Tunable:
    """A training setting that the DAG form and `intentflow train` offer: described once, here,
    on its config field (dags/model_retrain.py builds Params from it, ml/cli the options)."""

    name: str
    kind: type  # int, float or str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    format: str | None = None  # JSON-schema format of a string setting, e.g. "date"


def tunable(
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> dict[str, Any]:
    """Field metadata marking a config field as tunable, with its help text and limits."""
    return {"tunable": (help, minimum, maximum, exclusive_minimum)}


@dataclass
class BaseTrainConfig:
    """The settings every task's training shares, with their defaults (intent's, measured on
    Banking77 with MiniLM-L6). A task's config extends it and overrides a default only where
    the task needs another. Serialized, resolved, into the artifact's train_config.json."""

    # None: the packaged MiniLM-L6 (ml.config.default_base_model()). Else a local checkpoint dir.
    base_model: str | None = field(
        default=None,
        metadata=tunable(
            "Local Hugging Face checkpoint directory; default: INTENTFLOW_BASE_MODEL or the packaged MiniLM-L6."
        ),
    )
    # Banking77 (77 intents, 8k examples) is still improving at epoch 5; 6 epochs of MiniLM-L6
    # fit the 15-minute budget on 2 CPU cores (~10 min measured as CPU time / threads).
    epochs: int = field(
        default=6,
        metadata=tunable("Training epochs; default: the task's default.", minimum=1, maximum=100),
    )
    # MiniLM-L6 is small and shallow, and its [CLS] pooler was not trained for sentences: at
    # 1e-4 Banking77 reaches 62% validation accuracy after epoch 1, at 2e-4 74.5%.
    learning_rate: float = field(
        default=2e-4,
        metadata=tunable(
            "Peak AdamW learning rate; default: the task's default.",
            minimum=0,
            exclusive_minimum=True,
            maximum=1,
        ),
    )
    # Fits comfortably in CPU memory at max_length 128 and keeps AdamW steps stable.
    batch_size: int = field(
        default=32,
        metadata=tunable(
            "Examples per step; default: the task's default.", minimum=1, maximum=1024
        ),
    )
    # Longer texts are truncated to this many tokens (customer turns rarely exceed it); it is
    # also capped at the checkpoint's max_position_embeddings.
    max_length: int = field(
        default=128,
        metadata=tunable(
            "Tokens kept per text (longer ones are truncated); default: the task's default.",
            minimum=8,
            maximum=8192,
        ),
    )
    # A short warmup keeps the randomly initialised head from wrecking pretrained weights early.
    warmup_ratio: float = 0.1
    # Standard AdamW decay; not applied to biases and LayerNorm weights.
    weight_decay: float = 0.01
    # Gradients are clipped to this global L2 norm before each step (transformers' default):
    # one outlier batch cannot throw the pretrained weights far.
    max_grad_norm: float = 1.0
    # Seeds random, numpy and torch (head init, dropout, batch order): same seed, same model.
    seed: int = field(
        default=42,
        metadata=tunable(
            "Seed of head initialisation, dropout and batch order; default: 42.", minimum=0
        ),
    )
    # One optimizer step every this many batches: a larger effective batch in the same memory.
    gradient_accumulation_steps: int = field(
        default=1,
        metadata=tunable("Batches per optimizer step; default: 1 (no accumulation).", minimum=1),
    )
    # Stop after this many optimizer steps in total (tests, smoke runs). None: run all epochs.
    max_steps: int | None = field(
        default=None,
        metadata=tunable(
            "Stop after this many optimizer steps (smoke runs); default: run every epoch.",
            minimum=1,
        ),
    )
    # torch intra-op threads. None: the CPUs this process may use, shared out among torchrun's
    # processes (ml.threads, which also makes idle OpenMP threads sleep rather than spin).
    num_threads: int | None = None
    # Outside a terminal, a progress line every this many optimizer steps (ml.progress).
    log_every: int = 20
    # Stop when the task's validation metric has not improved for this many epochs (the best
    # epoch is kept either way). None: always run every epoch.
    early_stopping_patience: int | None = field(
        default=2,
        metadata=tunable(
            "Epochs without validation gain before stopping; default: the task's default.",
            minimum=1,
        ),
    )

    # Any other transformers.TrainingArguments option, as a JSON object or a dict (e.g.
    # {"gradient_checkpointing": true, "torch_compile": true, "report_to": ["mlflow"]});
    # applied over the recipe's arguments (ml.training.loop) and recorded as given. Options the
    # settings above own (learning_rate, ...) or the recipe needs (eval/save strategy) are refused.
    trainer_args: dict[str, Any] | None = field(
        default=None,
        metadata=tunable(
            'Extra transformers TrainingArguments as a JSON object, e.g. {"report_to": ["tensorboard"]}; default: none.'
        ),
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> Self:
        """A config from DAG params / CLI options naming its fields; None and "" mean the
        default, keys of other settings (e.g. window_days, another task's) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in (params or {}).items() if k in names and v not in (None, "")}
        return cls(**given)

    def __post_init__(self) -> None:
        if isinstance(self.trainer_args, str):
            try:
                self.trainer_args = (
                    json.loads(self.trainer_args) if self.trainer_args.strip() else None
                )
            except json.JSONDecodeError as exc:
                raise ValueError(f"training setting trainer_args is not JSON: {exc}") from exc
        if self.trainer_args is not None and not isinstance(self.trainer_args, dict):
            raise ValueError("training setting trainer_args must be a JSON object")
        for setting in tunables():
            check_limits(setting, getattr(self, setting.name))

    def accumulation_steps(self) -> int:
        """Batches per optimizer step (the loop's reading of gradient_accumulation_steps)."""
        return max(1, self.gradient_accumulation_steps)


def tunables(config_type: type[BaseTrainConfig] | None = None) -> list[Tunable]:
    """The tunable settings of a config class (BaseTrainConfig's: those every task shares)."""
    found = []
    for f in dataclasses.fields(config_type or BaseTrainConfig):
        if "tunable" in f.metadata:
            help_, minimum, maximum, exclusive = f.metadata["tunable"]
            kind = {"int": int, "float": float}.get(str(f.type).split(" |")[0], str)
            found.append(Tunable(f.name, kind, help_, minimum, maximum, exclusive))
    return found


def json_schema(setting: Tunable, nullable: bool = True) -> dict[str, Any]:
    """The setting as JSON-schema keywords (what an Airflow Param takes); `nullable`: an empty
    form field means the default."""
    kind = {int: "integer", float: "number", str: "string"}[setting.kind]
    schema: dict[str, Any] = {"type": ["null", kind] if nullable else kind}
    schema["description"] = setting.help
    if setting.format:
        schema["format"] = setting.format
    if setting.minimum is not None:
        key = "exclusiveMinimum" if setting.exclusive_minimum else "minimum"
        schema[key] = setting.minimum
    if setting.maximum is not None:
        schema["maximum"] = setting.maximum
    return schema


def check_limits(setting: Tunable, value: Any) -> None:
    """ValueError naming the setting when `value` is outside its limits (None: the default)."""
    if value is None or setting.kind not in (int, float):
        return
    low, high = setting.minimum, setting.maximum
    below = low is not None and (value <= low if setting.exclusive_minimum else value < low)
    if below or (high is not None and value > high):
        bound = f"{'>' if setting.exclusive_minimum else '>='} {low}" if low is not None else ""
        upper = f"<= {high}" if high is not None else ""
        raise ValueError(
            f"training setting {setting.name}={value!r} is out of range "
            f"(must be {' and '.join(b for b in (bound, upper) if b)})"
        )

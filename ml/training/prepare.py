"""What every task type's fine_tune does before its first batch, written once.

Refuse an artifact directory that is not empty, read the snapshot's snapshot.json, check the
base model (a local safetensors checkpoint with the head the task puts on it), give torch its
threads (ml.threads) and seed every generator; then, once the model is loaded, record the
config as trained (base model, threads, max_length capped at the model's positions) and time
the whole run for metrics.json's wall_seconds. Intent (ml.tasks.intent.train), entities and
answers all start with::

    with prepare(snapshot_dir, out_dir, config, head="token-classification") as run:
        model = ...  # load run.base_model
        resolved = run.resolve(config, model.config.max_position_embeddings)
        ...
    write the artifact with run.snapshot and run.wall_seconds()

torch and transformers are imported inside functions: DAG files import the task modules at
parse time, and the scheduler must not pay for torch on every parse.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from ml.artifact.files import check_out_dir, read_json
from ml.config import default_base_model
from ml.threads import threads_for, torch_threads
from ml.training import distributed
from ml.training.config import BaseTrainConfig

# The head a task puts on the base model: sequence-classification (intent), token-classification
# (entities), feature-extraction (answers: the bare encoder).
Head = Literal["sequence-classification", "token-classification", "feature-extraction"]
Config = TypeVar("Config", bound=BaseTrainConfig)


@dataclass(frozen=True)
class Prepared:
    """What a fine_tune knows once prepared."""

    # The snapshot's snapshot.json (its hash and window go into the artifact).
    snapshot: dict[str, Any]
    # The checked base model: an absolute local checkpoint directory.
    base_model: str
    # torch intra-op threads of this process while the block runs.
    threads: int
    # This process among torchrun's (size 1 without torchrun): only the main one writes.
    world: distributed.World
    # time.perf_counter() when preparation began.
    started: float

    def resolve(self, config: Config, max_positions: int, **changes: Any) -> Config:
        """`config` as trained, for train_config.json: the base model and threads used and
        max_length capped at the model's `max_positions` (a longer one would fail in the
        position embeddings), plus `changes` (answers caps its answer_max_length too)."""
        return replace(
            config,
            base_model=self.base_model,
            num_threads=self.threads,
            max_length=min(config.max_length, max_positions),
            **changes,
        )

    def wall_seconds(self) -> float:
        """Seconds since preparation began: metrics.json's wall_seconds."""
        return time.perf_counter() - self.started


@contextmanager
def prepare(
    snapshot_dir: Path, out_dir: Path, config: BaseTrainConfig, head: Head
) -> Iterator[Prepared]:
    """Check `out_dir` and the base model, read the snapshot, then run the block on the
    config's threads (ml.threads.threads_for, shared out among torchrun's processes) with
    every generator seeded; torch's thread count is restored afterwards.

    Raises FileExistsError when `out_dir` exists and is not empty, FileNotFoundError without
    snapshot.json, and ValueError for a base model that is not a local safetensors checkpoint
    with a `head` in transformers, all before any model is loaded.
    """
    started = time.perf_counter()
    world = distributed.current()
    check_out_dir(Path(out_dir))
    snapshot = read_json(Path(snapshot_dir) / "snapshot.json")
    base_model = resolve_base_model(config.base_model, head)
    threads = threads_for(config.num_threads, world.size)
    with torch_threads(threads):
        set_seed(config.seed)
        yield Prepared(snapshot, base_model, threads, world, started)


def resolve_base_model(base_model: str | None, head: Head = "sequence-classification") -> str:
    """The absolute path of `base_model` (None: the packaged MiniLM-L6), checked to be a local
    checkpoint directory with safetensors weights whose config maps to a model with `head`."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    mapping = {
        "sequence-classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
        "token-classification": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING,
        "feature-extraction": modeling_auto.MODEL_MAPPING,
    }[head]

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
    if type(model_config) not in mapping:
        raise ValueError(
            f"base model {path} is a {model_config.model_type!r} checkpoint, which has no "
            f"{head} head in transformers"
        )
    return str(path.absolute())


def set_seed(seed: int) -> None:
    """Seed random, numpy and torch: same seed, same head init, dropout and batch order."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device

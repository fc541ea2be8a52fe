"""Writing a model artifact directory: the files every task type's artifact holds, and how.

Every task (ml.tasks.intent.train for intent, ml.tasks.entities, ml.tasks.answers) writes its artifact the same way:
weights (safetensors only), tokenizer and task.json, the resolved train_config.json, a
metrics.json of the training outcome and a model card, all into a hidden sibling that is
renamed into place at the end. Kept here, in one place, so the artifacts stay alike; the
evaluation reports (metrics.json) and the retrain steps' summaries are written by the same
write_json.

torch and transformers are imported inside functions (DAG files import this at parse time).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.artifact.integrity import assert_safetensors_only, directory_sha256
from ml.artifact.optimised import write_onnx

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# Written into every artifact: {"task": "<task type>"} (ml.tasks.contract.artifact_task).
TASK_FILE = "task.json"
LABELS_FILE = "labels.json"
TRAIN_CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "README.md"
# Intent models' out-of-scope detector (ml.tasks.intent.out_of_scope): method, threshold and
# target as JSON; the Mahalanobis statistics (whitening matrix, class means) as safetensors.
OOS_FILE = "out_of_scope.json"
OOS_STATS_FILE = "out_of_scope.safetensors"
# What artifact_summary copies from metrics.json (train_loss is added after them).
SUMMARY_KEYS = ("validation", "samples_per_second", "wall_seconds", "epochs_run", "best_epoch")


def check_out_dir(out_dir: Path) -> None:
    """Refuse an `out_dir` that exists and is not an empty directory (FileExistsError):
    training never overwrites an artifact."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"artifact directory {out_dir} exists and is not empty")


def read_json(path: Path) -> Any:
    """A JSON file of a snapshot or an artifact; FileNotFoundError names the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a dataset snapshot directory?")
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, payload: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """The one writer of JSON files: an artifact's, an evaluation report's (metrics.json), a
    retrain step's summary. Indented with a final newline, keys in insertion order (people read
    these); `default` turns what JSON cannot hold into something it can (None: a TypeError).

    Written to a hidden sibling, then renamed over `path`, its folder created if missing: a
    reader, or a task retried after a kill, never finds half a file."""
    path = Path(path)
    text = json.dumps(payload, indent=2, sort_keys=False, default=default) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def library_versions() -> dict[str, Any]:
    """The torch, transformers and accelerate versions, recorded in train_config.json for
    lineage (the Trainer's behaviour depends on all three)."""
    import accelerate
    import torch
    import transformers

    return {
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
        }
    }


def write_staged(out_dir: Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write into a hidden sibling, then rename it: no half-written artifacts."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        fill(staging)
        if out_dir.exists():
            out_dir.rmdir()  # checked empty up front
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_model_files(
    staging: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: str | dict[str, Any],
) -> None:
    """Weights (safetensors only), tokenizer and task.json: what every task's artifact holds,
    and its optimised CPU form (ml.artifact.optimised) unless switched off.

    `task` is the task type, or the whole task.json when a task records more (answers: pooling).
    """
    model.save_pretrained(staging)  # transformers 5 writes safetensors only
    tokenizer.save_pretrained(staging)
    assert_safetensors_only(staging)
    # Inside the folder before it is hashed: the registered sha256 covers it.
    write_onnx(staging, model, tokenizer)
    write_json(staging / TASK_FILE, {"task": task} if isinstance(task, str) else task)


def write_training_record(
    staging: Path,
    config: Any,  # the task's resolved training config (a dataclass)
    snapshot: dict[str, Any],
    outcome: dict[str, Any],
) -> None:
    """train_config.json (the resolved config, snapshot hash, library versions) and
    metrics.json (the training outcome's record, ml.training.loop.Outcome.record)."""
    write_json(
        staging / TRAIN_CONFIG_FILE,
        {**asdict(config), "snapshot_hash": snapshot.get("hash"), **library_versions()},
    )
    write_json(staging / METRICS_FILE, outcome)


def artifact_summary(out_dir: Path, config_type: type, **extra: Any) -> dict[str, Any]:
    """What a task's fine_tune returns, read back from a finished artifact (a retried task
    reuses it): path, sha256, `extra` (e.g. labels or task), the outcome's headline keys,
    train loss, base model and the config fields of `config_type`."""
    out_dir = Path(out_dir)
    metrics = read_json(out_dir / METRICS_FILE)
    config = read_json(out_dir / TRAIN_CONFIG_FILE)
    return {
        "artifact_dir": str(out_dir),
        "artifact_sha256": directory_sha256(out_dir),
        **extra,
        **{k: metrics[k] for k in SUMMARY_KEYS},
        "train_loss": metrics["train_loss"],
        "base_model": config["base_model"],
        "config": {f.name: config[f.name] for f in fields(config_type) if f.name in config},
    }

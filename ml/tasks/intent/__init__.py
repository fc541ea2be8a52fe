"""The `intent` task type: the contract of ml.tasks.contract, and nothing else.

What it is made of, one concern a module: model (loading an artifact, logits, calibrated
probabilities, predict), out_of_scope (the out-of-scope score, its calibrated threshold and
metrics), metrics (classification metrics, top-k accuracy, confusion matrix and the promotion
metric), evaluation (scoring a labeled file, the report) and train (TrainConfig, fine_tune). Intent models train from the lake by default (ml.snapshots.lake_window.make_snapshot, by
ml.retrain.steps); build_dataset below is for a configured labeled file instead.

No submodule is named like a contract function: importing ml.tasks.intent.evaluate would set
this package's `evaluate` to that module, over the function below.

train and evaluation load inside the functions below; nothing here imports torch until a model
is trained or loaded (DAG files import ml.tasks.contract at parse time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.storage import Location
from ml.tasks.intent.metrics import PROMOTION_METRIC
from ml.tasks.intent.model import TASK, load, predict, predict_loaded

__all__ = [
    "TASK",
    "PROMOTION_METRIC",
    "build_dataset",
    "fine_tune",
    "evaluate",
    "predict",
    "load",
    "predict_loaded",
]


def build_dataset(
    source: str,
    out_root: Location,
    text_column: str = "text",
    label_column: str = "label",
    test_fraction: float | None = 0.1,
    test_data: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """A snapshot of one labeled file (ml.snapshots.labeled.snapshot_from_file) under `out_root`, a
    folder or an fsspec URL; options of other tasks are ignored. `test_fraction` of the file is
    the test split (a configured source's default: 0.1, as the lake's), or `test_data` is."""
    from ml.snapshots.labeled import snapshot_from_file

    return snapshot_from_file(
        Path(source),
        out_root,
        text_column,
        label_column,
        test_fraction,
        Path(test_data) if test_data else None,
    )


def fine_tune(
    snapshot_dir: Path,
    out_dir: Path,
    config: dict[str, Any],
    checkpoint_dir: Path | None = None,
    checkpoint_url: str | None = None,
) -> dict[str, Any]:
    """ml.tasks.intent.train.fine_tune with a TrainConfig from `config` (DAG params / CLI
    options naming its fields; None and "" mean the default, other keys are ignored)."""
    from ml.tasks.intent.train import TrainConfig
    from ml.tasks.intent.train import fine_tune as train

    return train(
        Path(snapshot_dir),
        Path(out_dir),
        TrainConfig.from_params(config),
        checkpoint_dir,
        checkpoint_url,
    )


def evaluate(
    artifact_dir: Path,
    data: Path,
    expected_sha256: str | None = None,
    report_dir: Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    **_: Any,
) -> dict[str, Any]:
    """The test metrics of `data` (a labeled file, or a snapshot's test split); options of other
    tasks are ignored."""
    from ml.tasks.intent.evaluation import evaluate_model

    return evaluate_model(
        Path(artifact_dir), Path(data), expected_sha256, text_column, label_column, report_dir
    )

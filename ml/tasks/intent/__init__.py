"""The `intent` task type: the contract of ml.tasks.contract over ml.tasks.intent.train and ml.tasks.intent.evaluate (no fork).

Intent models train from the lake by default (ml.snapshots.build.make_snapshot, by ml.retrain.steps); this
module's build_dataset is for a configured labeled file instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.config import DEFAULT_PROMOTION_METRIC
from ml.storage import Location

TASK = "intent"
PROMOTION_METRIC = DEFAULT_PROMOTION_METRIC  # macro_f1


def build_dataset(
    source: str,
    out_root: Location,
    text_column: str = "text",
    label_column: str = "label",
    **_: Any,
) -> dict[str, Any]:
    """A snapshot of one labeled file (ml.snapshots.build.snapshot_from_file) under `out_root`, a
    folder or an fsspec URL; options of other tasks are ignored."""
    from ml.snapshots.build import snapshot_from_file

    return snapshot_from_file(Path(source), out_root, text_column, label_column)


def train_config(params: dict[str, Any]) -> Any:
    """A TrainConfig from params naming its fields; None/"" mean the default, others are ignored."""
    from ml.tasks.intent.train import TrainConfig

    return TrainConfig.from_params(params)


def fine_tune(
    snapshot_dir: Path, out_dir: Path, config: dict[str, Any], checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    from ml.tasks.intent import train

    return train.fine_tune(Path(snapshot_dir), Path(out_dir), train_config(config), checkpoint_dir)


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
    from ml.tasks.intent.evaluate import evaluate_model

    return evaluate_model(
        Path(artifact_dir), Path(data), expected_sha256, text_column, label_column, report_dir
    )


def predict(
    artifact_dir: Path, texts: list[str], top_k: int = 5, expected_sha256: str | None = None
) -> list[dict[str, Any]]:
    """Label, probability and the top-k labels per text."""
    from ml.tasks.intent.evaluate import Classifier

    classifier = Classifier.load(Path(artifact_dir), expected_sha256)
    probs = classifier.predict_proba(texts)
    out = []
    for text, row in zip(texts, probs, strict=True):
        order = row.argsort()[::-1][:top_k]
        best = int(order[0])
        out.append(
            {
                "text": text,
                "intent": classifier.labels[best],
                "probability": round(float(row[best]), 4),
                "top_k": [
                    {"intent": classifier.labels[i], "probability": round(float(row[i]), 4)}
                    for i in order
                ],
            }
        )
    return out

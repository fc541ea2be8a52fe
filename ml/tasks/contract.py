"""Task types: which `ml` module trains, evaluates and serves each kind of model.

A task type is one package (docs/task-types.md, "The task contract") exposing
TASK, PROMOTION_METRIC, build_dataset, fine_tune, evaluate and predict, and for a process that
keeps a model loaded (ml.serving) load and predict_loaded. The retrain steps
(ml.retrain.steps) and the CLI dispatch through here, by the model's configured task type or by the
`task.json` an artifact carries, so adding a task type is a package plus one line below.

Callers pass a task's options by keyword and never ask which task it is:
`build_dataset(source, out_root, **options)` gets a configured model's `options` (with the
CLI's --text-column / --label-column / --answer-column when given), and `evaluate(artifact_dir,
data, expected_sha256=None, report_dir=None, **options)` the CLI's, or a golden set's. Each
task reads the options it understands (intent: text_column, label_column; entities:
text_column, abcd; answers: text_column, answer_column, label_column, columns, span_columns)
and ignores the others. `evaluate` reads a labeled file as `build_dataset` reads its source,
scores every usable record, and counts the others (`records_read`, `records_quarantined`;
their quarantine.parquet in `report_dir`).

Light on purpose: DAG files import it at parse time; task modules load only when asked for.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

from ml.artifact.files import TASK_FILE

# task type -> module implementing the contract.
TASK_MODULES: dict[str, str] = {
    "intent": "ml.tasks.intent",
    "entities": "ml.tasks.entities",
    "answers": "ml.tasks.answers",
}
CONTRACT = (
    "TASK",
    "PROMOTION_METRIC",
    "build_dataset",
    "fine_tune",
    "evaluate",
    "predict",
    "load",
    "predict_loaded",
)


class UnknownTaskError(ValueError):
    """A task type no module is configured for."""


def task_module(task: str) -> ModuleType:
    """The module for `task`, checked against the contract."""
    if task not in TASK_MODULES:
        raise UnknownTaskError(
            f"unknown task type {task!r}: known task types are {', '.join(sorted(TASK_MODULES))}"
        )
    module = importlib.import_module(TASK_MODULES[task])
    missing = [name for name in CONTRACT if not hasattr(module, name)]
    if missing or module.TASK != task:
        raise UnknownTaskError(
            f"{module.__name__} does not implement task type {task!r} "
            f"(missing: {', '.join(missing) or '-'}; TASK={getattr(module, 'TASK', None)!r})"
        )
    return module


def artifact_task(artifact_dir: Path | str) -> str:
    """The task type an artifact directory was trained for (its task.json)."""
    path = Path(artifact_dir) / TASK_FILE
    if not path.is_file():
        # Every task's fine_tune writes one (ml.artifact.files.save_model_files).
        raise UnknownTaskError(
            f"{artifact_dir} has no {TASK_FILE}: not an intentflow model artifact"
        )
    task = json.loads(path.read_text(encoding="utf-8")).get("task")
    if not isinstance(task, str) or not task:
        raise UnknownTaskError(f"{path} names no task type")
    return task

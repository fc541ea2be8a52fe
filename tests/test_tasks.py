"""Task types (ml.tasks) and the models configuration (ml.models)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from ml.config import ConfigError, settings
from ml.models import configured_models, model_spec
from ml.tasks import TASK_MODULES, UnknownTaskError, artifact_task, task_module


@pytest.mark.parametrize("task", sorted(TASK_MODULES))
def test_every_task_module_implements_the_contract(task: str) -> None:
    if importlib.util.find_spec(TASK_MODULES[task]) is None:
        pytest.skip(f"{TASK_MODULES[task]} is not in this tree yet")
    module = task_module(task)
    assert module.TASK == task and isinstance(module.PROMOTION_METRIC, str)


def test_unknown_task_type_is_a_clear_error() -> None:
    with pytest.raises(UnknownTaskError, match="unknown task type 'sentiment'.*entities"):
        task_module("sentiment")


def test_artifact_task_reads_task_json_and_defaults_to_intent(
    tiny_artifact: dict[str, Any], tmp_path: Path
) -> None:
    assert artifact_task(tiny_artifact["artifact_dir"]) == "intent"
    assert json.loads(Path(tiny_artifact["artifact_dir"], "task.json").read_text()) == {
        "task": "intent"
    }
    assert artifact_task(tmp_path) == "intent"  # an artifact from before task types
    (tmp_path / "task.json").write_text('{"task": "entities"}')
    assert artifact_task(tmp_path) == "entities"


def test_intent_adapter_predicts_with_top_k(tiny_artifact: dict[str, Any]) -> None:
    [pred] = task_module("intent").predict(Path(tiny_artifact["artifact_dir"]), ["lost card"], 2)
    assert pred["intent"] == pred["top_k"][0]["intent"] and len(pred["top_k"]) == 2


def test_default_models_keep_intent_as_it_was(intentflow_home: Path) -> None:
    intent = model_spec()
    assert (intent.name, intent.task, intent.dag_id) == ("intent", "intent", "intent_retrain")
    assert intent.from_lake and intent.schedule == "0 3 * * *"
    assert intent.promotion_metric == settings().promotion_metric == "macro_f1"
    entities = model_spec("entities")
    assert entities.task == "entities" and not entities.from_lake
    assert entities.promotion_metric is None  # the task's micro_f1
    with pytest.raises(ConfigError, match="no configured model 'ghost'"):
        model_spec("ghost")


def test_models_file_errors_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "models.json"
    monkeypatch.setenv("INTENTFLOW_MODELS_FILE", str(path))
    for payload, message in [
        ({"name": "x"}, "expected a JSON list"),
        ([{"name": "x"}], "needs at least 'name' and 'task'"),
        ([{"name": "x", "task": "entities", "cron": "@daily"}], r"unknown keys \['cron'\]"),
        ([{"name": "x", "task": "entities"}] * 2, r"duplicate name \['x'\]"),
    ]:
        path.write_text(json.dumps(payload))
        with pytest.raises(ConfigError, match=message):
            configured_models()

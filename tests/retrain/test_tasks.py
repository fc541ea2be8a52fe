"""Task types (ml.tasks.contract) and the models configuration (ml.retrain.specs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from answer_pairs import pairs_csv

from ml.config import ConfigError, settings
from ml.retrain.specs import configured_models, model_spec
from ml.tasks.contract import TASK_MODULES, UnknownTaskError, artifact_task, task_module


@pytest.mark.parametrize("task", sorted(TASK_MODULES))
def test_every_task_module_implements_the_contract(task: str) -> None:
    module = task_module(task)
    assert module.TASK == task and isinstance(module.PROMOTION_METRIC, str)


def test_unknown_task_type_is_a_clear_error() -> None:
    with pytest.raises(UnknownTaskError, match="unknown task type 'sentiment'.*entities"):
        task_module("sentiment")


def test_artifact_task_reads_task_json(tiny_artifact: dict[str, Any], tmp_path: Path) -> None:
    assert artifact_task(tiny_artifact["artifact_dir"]) == "intent"
    assert json.loads(Path(tiny_artifact["artifact_dir"], "task.json").read_text()) == {
        "task": "intent"
    }
    with pytest.raises(UnknownTaskError, match="has no task.json: not an intentflow model"):
        artifact_task(tmp_path)
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


def test_answers_is_a_configured_model_with_its_own_dag(intentflow_home: Path) -> None:
    answers = model_spec("answers")
    assert (answers.task, answers.dag_id, answers.from_lake) == (
        "answers",
        "answers_retrain",
        False,
    )
    assert task_module("answers").PROMOTION_METRIC == "mrr"


@pytest.mark.slow
def test_answers_trains_registers_and_serves_through_the_generic_pipeline(
    intentflow_home: Path, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`intentflow train --task answers` → ml.tasks.answers through the generic retrain steps;
    predict/evaluate dispatch by the artifact's task.json."""
    from typer.testing import CliRunner

    from ml.cli.main import app
    from ml.registry.store import Registry

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "5")
    data = pairs_csv(tmp_path / "pairs.csv", per_intent=42)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    trained = json.loads(
        invoke(
            "train", "--task", "answers", "--data", str(data), "--epochs", "1",
            "--batch-size", "16", "--learning-rate", "0.003", "--json",
        )
    )  # fmt: skip
    assert (trained["model"], trained["task"], trained["metric"]) == ("answers", "answers", "mrr")
    assert trained["alias"] == "champion" and 0.0 <= trained["test"]["mrr"] <= 1.0
    # The first version: no champion to compare with; the policy sizes the test set by `n`.
    assert trained["version"] == 1 and trained["reasons"] == [
        f"test set has {trained['test']['n']} examples (>= 5)",
        "no champion yet",
    ]
    version = Registry(settings().registry_url).get("answers", alias="champion")
    assert version.task_type == "answers"

    [pred] = json.loads(
        invoke("predict", "--model", "answers@champion", "where is my order 1003", "--json")
    )
    assert len(pred["answers"]) == 5 and {"answer_id", "answer", "score"} <= set(pred["answers"][0])
    shown = invoke("predict", "--model", "answers@champion", "--top-k", "2", "where is my order")
    assert len(shown.strip().splitlines()) == 3  # the text, then two ranked answers

    test_split = str(Path(version.lineage["snapshot_path"]) / "test.parquet")
    metrics = json.loads(invoke("evaluate", "--model", "answers:1", "--data", test_split, "--json"))
    assert metrics["task"] == "answers" and metrics["mrr"] == trained["test"]["mrr"]

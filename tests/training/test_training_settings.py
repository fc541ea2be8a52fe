"""Each training setting is described once (ml.training.config): the retrain DAG's form and
`intentflow train` offer the same settings with the same help and limits, and a config refuses
a value outside them whoever gives it (form, command line, models file)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ml.cli.main import app
from ml.tasks.answers.train import AnswersConfig
from ml.tasks.entities.train import TrainConfig as EntitiesConfig
from ml.tasks.intent.train import TrainConfig as IntentConfig
from ml.training.config import BaseTrainConfig, json_schema, tunables


def _train_options() -> dict[str, Any]:
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def test_the_cli_offers_every_tunable_setting_with_its_help_and_limits() -> None:
    options = _train_options()
    for setting in tunables():
        option = options[setting.name]
        assert option.help == setting.help
        assert option.default is None  # unset: the model's configured default, else the task's
        if setting.kind is int and setting.minimum is not None:
            assert option.min == setting.minimum
        if setting.maximum is not None:
            assert option.max == setting.maximum


def test_the_dag_form_is_built_from_the_same_descriptions() -> None:
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[2] / "dags" / "model_retrain.py"
    form = DagBag(dag_folder=str(dags)).dags["intent_retrain"].params
    for setting in tunables():
        param = form.get_param(setting.name)
        assert {**param.schema, "description": param.description} == json_schema(setting)
    assert {s.name for s in tunables()} <= set(form.keys())


def test_every_task_config_has_the_tunable_settings() -> None:
    names = {s.name for s in tunables()}
    for config in (IntentConfig, EntitiesConfig, AnswersConfig):
        assert names <= {f.name for f in dataclasses.fields(config)}, config


@pytest.mark.parametrize(
    ("setting", "value"),
    [("epochs", 0), ("learning_rate", 0.0), ("learning_rate", 2.0), ("batch_size", 0)],
)
def test_a_value_outside_its_limits_is_refused_by_every_task_config(
    setting: str, value: float
) -> None:
    for config in (BaseTrainConfig, IntentConfig, EntitiesConfig, AnswersConfig):
        with pytest.raises(ValueError, match=f"training setting {setting}="):
            config.from_params({setting: value})


@pytest.mark.parametrize(
    ("option", "value"), [("--epochs", "0"), ("--learning-rate", "0"), ("--batch-size", "0")]
)
def test_the_cli_refuses_an_out_of_range_setting_before_any_work(
    intentflow_home, option: str, value: str
) -> None:
    out = CliRunner().invoke(app, ["train", option, value, "--json"])
    assert out.exit_code == 2 and option in out.output, out.output
    assert not (intentflow_home / "snapshots").exists()


# --- the Trainer's arguments -------------------------------------------------------------------


def _arguments(config: BaseTrainConfig, tmp_path: Any) -> Any:
    from ml.training.loop import LoopTask, training_arguments

    task = LoopTask(collate=list, validate=dict, metric="accuracy")
    return training_arguments(config, tmp_path, task, 100, keep_optimizer=True)


def test_the_recipe_reaches_the_trainers_arguments(tmp_path: Any) -> None:
    config = IntentConfig.from_params({"learning_rate": 1e-4, "batch_size": 16, "epochs": 3})
    args = _arguments(config, tmp_path)
    assert (args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs) == (
        1e-4,
        16,
        3,
    )
    assert args.max_grad_norm == 1.0, "gradients are clipped"
    assert args.optim == "adamw_torch_fused"
    assert args.label_smoothing_factor == config.label_smoothing
    assert args.warmup_steps == config.warmup_ratio, "a float below 1: a share of the steps"
    assert args.report_to in ("none", [], None), "no tracking unless configured"
    assert args.load_best_model_at_end and args.metric_for_best_model == "score"


def test_trainer_args_come_as_json_from_the_form_and_cli_and_reach_the_trainer(
    tmp_path: Any,
) -> None:
    given = '{"gradient_checkpointing": true, "adam_beta2": 0.98, "report_to": ["tensorboard"]}'
    config = EntitiesConfig.from_params({"trainer_args": given})
    assert config.trainer_args == {
        "gradient_checkpointing": True,
        "adam_beta2": 0.98,
        "report_to": ["tensorboard"],
    }
    assert dataclasses.asdict(config)["trainer_args"] == config.trainer_args, "recorded as given"
    args = _arguments(dataclasses.replace(config, trainer_args={"adam_beta2": 0.98}), tmp_path)
    assert args.adam_beta2 == 0.98
    with pytest.raises(ValueError, match="not JSON"):
        IntentConfig.from_params({"trainer_args": "{gradient_checkpointing"})
    with pytest.raises(ValueError, match="does not know.*no_such_option"):
        _arguments(IntentConfig(trainer_args={"no_such_option": 1}), tmp_path)
    with pytest.raises(ValueError, match="owns.*learning_rate"):
        _arguments(IntentConfig(trainer_args={"learning_rate": 1.0}), tmp_path)
    assert "trainer_args" in _train_options(), "intentflow train --trainer-args"

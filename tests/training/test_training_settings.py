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

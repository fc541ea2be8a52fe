"""Model and alias names are one safe path segment, wherever a name enters (ml.registry.names).

A model's name is a folder of its artifacts and snapshots: `a/../../x` or `../x` as a name
would put them anywhere. Each entry point refuses such names before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.cli.main import app
from ml.config import ConfigError, settings
from ml.registry.errors import RegistryError
from ml.registry.names import check_name
from ml.registry.store import Registry, parse_ref
from ml.retrain.specs import ModelSpec

BAD_NAMES = [
    "../x",
    "a/../../x",
    "a/b",
    "..",
    ".",
    "",
    ".hidden",
    "a\0b",
    "a\\b",
    "..\\x",
    "/abs",
    "a b",
    "intent\n",
    "x" * 201,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_refuses_what_is_not_one_safe_segment(name: str) -> None:
    with pytest.raises(RegistryError, match="invalid model name"):
        check_name("model", name)


@pytest.mark.parametrize("name", ["intent", "entities", "intent-v2", "a.b_c", "7up", "x" * 200])
def test_plain_names_pass(name: str) -> None:
    assert check_name("alias", name) == name


@pytest.mark.parametrize("name", ["a/../../x", "a/b", "team/intent"])
def test_the_registry_refuses_names_with_a_separator(intentflow_home: Path, name: str) -> None:
    registry = Registry(settings().registry_url)
    common = {
        "artifact_uri": "/models/x",
        "artifact_sha256": "0" * 64,
        "base_model": "b",
        "data_snapshot_hash": "h",
        "params": {},
        "lineage": {},
        "metrics": {"test": {"accuracy": 0.9}},
    }
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register_version(name, **common)
    registry.register_version("intent", **common)
    with pytest.raises(RegistryError, match="invalid alias name"):
        registry.set_alias("intent", name, 1, actor="a", reason="r")
    assert [v.model for v in registry.list_versions()] == ["intent"]
    assert registry.audit("intent") and all(r["alias"] is None for r in registry.audit("intent"))


@pytest.mark.parametrize("ref", ["a/b@champion", "../x:1", "intent@a/b", "intent@.."])
def test_references_with_unsafe_names_are_refused(ref: str) -> None:
    with pytest.raises(RegistryError, match="invalid (model|alias) name"):
        parse_ref(ref)


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/b", ""])
def test_configured_models_and_the_model_name_setting_refuse_unsafe_names(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    with pytest.raises(ConfigError, match="invalid model name"):
        ModelSpec(name=name, task="intent", source="/data/x.csv")
    monkeypatch.setenv("INTENTFLOW_MODEL_NAME", name)
    with pytest.raises(ConfigError, match="INTENTFLOW_MODEL_NAME: invalid model name"):
        settings()


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--model", "../../escaped", "--task", "intent", "--data", "{data}"],
        ["registry", "list", "--model", "a/b"],
        ["registry", "promote", "intent:1", "--alias", "../x", "--reason", "r"],
        ["registry", "rollback", "../x", "--reason", "r"],
    ],
)
def test_cli_name_options_refuse_unsafe_names_before_anything_is_written(
    intentflow_home: Path, tmp_path: Path, args: list[str]
) -> None:
    data = tmp_path / "labeled.csv"
    data.write_text("text,label\n" + "".join(f"hello {i},greet\n" for i in range(20)))
    result = CliRunner().invoke(app, [a.replace("{data}", str(data)) for a in args])
    assert result.exit_code == 2, result.output
    assert "invalid" in result.output and "name" in result.output
    assert not (tmp_path / "escaped").exists()  # <home>/snapshots/../../escaped

"""`intentflow` commands, run in-process through Typer's runner on real files and models."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_help_lists_every_command() -> None:
    out = invoke("--help")
    for command in ("generate", "ingest", "train", "evaluate", "predict", "registry", "report"):
        assert command in out


def test_generate_then_ingest_json(intentflow_home: Path) -> None:
    raw = intentflow_home / "raw"
    out = invoke(
        "generate", "--days", "2", "--per-day", "50", "--start", "2026-11-20", "--out", str(raw)
    )
    assert "2026-11-20" in out and "2026-11-21" in out
    result = json.loads(invoke("ingest", "--date", "2026-11-21", "--json"))
    assert result["rows_read"] == 50 == result["rows_written"] + result["rows_quarantined"]
    for key in ("partition", "quarantine_file", "validation_report"):
        assert Path(result[key]).exists()
    assert "2026-11-21" in invoke("report")


def test_ingest_of_a_day_without_data_fails_clearly(intentflow_home: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "--date", "2026-11-21", "--source", str(intentflow_home / "none")]
    )
    assert result.exit_code == 2
    assert "failed validation" in result.output and "validation.html" in result.output


@pytest.fixture
def labeled_csv(tmp_path: Path) -> Path:
    words = {
        "refund_request": "refund money back",
        "lost_card": "lost card stolen",
        "order_status": "where order track",
    }
    rows = ["text,label"] + [
        f"{w} please {i},{label}" for label, w in words.items() for i in range(100)
    ]
    path = tmp_path / "labeled.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_predict_evaluate_list(
    intentflow_home: Path, tiny_bert_dir: Path, labeled_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    trained = json.loads(invoke("train", "--data", str(labeled_csv), "--epochs", "1", "--json"))
    assert (trained["model"], trained["version"], trained["alias"]) == ("intent", 1, "champion")
    assert trained["reasons"]

    [row] = json.loads(invoke("registry", "list", "--json"))
    assert row["aliases"] == ["champion"] and row["version"] == 1
    assert row["test_accuracy"] == trained["test"]["accuracy"]

    preds = json.loads(
        invoke("predict", "--model", "intent@champion", "my card was stolen", "--json")
    )
    assert preds[0]["intent"] in {"refund_request", "lost_card", "order_status"}
    assert 0.0 < preds[0]["probability"] <= 1.0

    metrics = json.loads(
        invoke("evaluate", "--model", "intent:1", "--data", str(labeled_csv), "--json")
    )
    assert metrics["n"] == 300 and set(metrics["per_class"]) == {
        "refund_request",
        "lost_card",
        "order_status",
    }


def test_bad_model_reference_and_tampered_artifact_are_refused(
    intentflow_home: Path, tiny_bert_dir: Path, labeled_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["predict", "--model", "intent@champion", "hello"])
    assert result.exit_code == 2 and "intent" in result.output

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    invoke("train", "--data", str(labeled_csv), "--epochs", "1")
    from ml.config import settings
    from ml.registry import Registry

    artifact = Registry(settings().registry_url).get("intent", version=1).artifact_uri
    labels = Path(artifact) / "labels.json"
    labels.write_text(labels.read_text().replace("lost_card", "lost_cart"))
    result = runner.invoke(app, ["predict", "--model", "intent:1", "hello"])
    assert result.exit_code == 2 and "sha256" in result.output


def test_train_on_an_empty_window_fails_clearly(intentflow_home: Path) -> None:
    result = runner.invoke(
        app, ["train", "--window-days", "3", "--end-date", date(2026, 11, 22).isoformat()]
    )
    assert result.exit_code == 2 and "ingest those days first" in result.output

"""The monitoring DAG on real Airflow (dag.test() against the session's migrated metadata DB),
the real tiny champion and real Delta prediction days; the CLI that runs the same function;
the retrain DAG scheduling on the drift Asset when configured."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alert_receiver import connections
from traffic import NEW_INTENT, day_texts
from typer.testing import CliRunner

from ml.cli.main import app
from ml.config import settings
from ml.monitoring.run import run_days
from ml.monitoring.store import monitoring_days

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _dag(path: str, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / path)).dags[dag_id]


def test_every_task_has_a_time_limit_and_the_run_one_too() -> None:
    dag = _dag("model_monitoring.py", "model_monitoring")
    assert all(t.execution_timeout for t in dag.tasks) and dag.dagrun_timeout
    assert dag.get_task("monitor").is_mapped
    assert dag.timetable.timetable.expression == "30 1 * * *"
    assert dag.timetable.asset_condition.name == "predictions"
    assert dag.doc_md and "Model monitoring" in dag.doc_md


def test_the_days_a_run_looks_at() -> None:
    after = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    assert run_days(None, [], after) == ["2026-11-21"]
    assert run_days("2026-11-03", ["2026-11-20"], after) == ["2026-11-03"]
    assert run_days(None, ["2026-11-20", None, "2026-11-19", "2026-11-20"], after) == [
        "2026-11-19",
        "2026-11-20",
    ]


@pytest.mark.slow
def test_the_dag_flags_a_shifted_day_alerts_and_emits_the_drift_asset(
    airflow_db: Path,
    champion: Any,
    write_day: Callable[..., int],
    receiver: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.state import DagRunState

    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)
    monkeypatch.setenv("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", "true")
    write_day("2026-11-20", day_texts(300, seed=1))
    write_day("2026-11-21", day_texts(300, seed=2, new_share=0.4))
    dag = _dag("model_monitoring.py", "model_monitoring")

    # A scheduled run looks at the day before it: the shifted day.
    run = dag.test(logical_date=datetime(2026, 11, 22, 1, 30, tzinfo=UTC))
    assert run.state == DagRunState.SUCCESS
    [mapped] = [ti for ti in run.get_task_instances() if ti.task_id == "monitor"]
    assert mapped.rendered_map_index == "intent"
    [row] = monitoring_days(settings().registry_url, "intent")
    assert (row["day"], row["status"]) == ("2026-11-21", "drift")
    # One alert per channel: the model, the day's count and the checks, never a message.
    [(path, alert)] = [(p, b) for p, b in got.posts if p == "/dq"]
    assert alert["kind"] == "drift" and "intent drifted on 1 day(s)" in alert["title"]
    assert "2026-11-21: 300 predictions; past threshold: " in alert["error"]
    assert alert["report_url"].endswith("/monitoring/intent/2026-11-21.html")
    sent = json.dumps(got.posts) + json.dumps([m[1].as_string() for m in got.mails])
    assert not any(w in sent for w in NEW_INTENT if w in ("pizza", "pepperoni", "cheese"))
    assert [e[:3] for e in _asset_events(run.run_id)] == [
        ("intent_drift", "monitor", "model://intent/drift")
    ]
    got.posts.clear(), got.mails.clear()

    # By hand, an ordinary day: its row, no alert, no drift event; a rerun replaces the row.
    for _ in range(2):
        run = dag.test(run_conf={"day": "2026-11-20"})
        assert run.state == DagRunState.SUCCESS
    rows = monitoring_days(settings().registry_url, "intent")
    assert [(r["day"], r["status"]) for r in rows] == [
        ("2026-11-20", "ok"),
        ("2026-11-21", "drift"),
    ]
    assert got.posts == [] and _asset_events(run.run_id) == []


def test_the_retrain_schedules_on_drift_only_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", raising=False)
    intent = _dag("model_retrain.py", "intent_retrain")
    assert intent.timetable.asset_condition.name == "transcripts"
    monkeypatch.setenv("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", "on")
    intent = _dag("model_retrain.py", "intent_retrain")
    names = {a.name for a in intent.timetable.asset_condition.objects}
    assert names == {"transcripts", "intent_drift"}
    # Other task types are not monitored: their schedule does not change.
    assert _dag("model_retrain.py", "entities_retrain").timetable.expression == "0 4 * * 0"


def test_a_drift_triggered_retrain_goes_on_whatever_the_new_rows(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """enough_new_data's callable with the context an asset-triggered run gives it (such runs
    need a scheduler, which dag.test() is not: the run and its events are stand-ins here)."""
    from types import SimpleNamespace

    from airflow.sdk import Asset

    monkeypatch.setenv("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", "on")
    task = _dag("model_retrain.py", "intent_retrain").get_task("enough_new_data")
    run = SimpleNamespace(run_type="asset_triggered")
    drift = Asset(name="intent_drift", uri="model://intent/drift")
    transcripts = Asset(name="transcripts", uri=settings().lake.as_uri())
    assert task.python_callable(dag_run=run, triggering_asset_events={drift: []}) is True
    # Started by new transcripts alone: the new-row count decides (none here: skipped).
    events = {transcripts: []}
    assert (
        task.python_callable(dag_run=run, inlet_events=events, triggering_asset_events=events)
        is False
    )


def test_the_cli_monitors_a_day(champion: Any, write_day: Callable[..., int]) -> None:
    write_day("2026-11-20", day_texts(200, seed=1))
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "--model", "intent", "--day", "2026-11-20", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["status"], answer["predictions"], answer["version"]) == ("ok", 200, 1)
    text = runner.invoke(app, ["monitor", "--model", "intent", "--day", "2026-11-20"]).stdout
    assert "intent 2026-11-20: ok (200 predictions" in text and "label_psi" in text
    bad = runner.invoke(app, ["monitor", "--model", "intent", "--day", "yesterday"])
    assert bad.exit_code == 2 and "not a date" in bad.output


def _asset_events(run_id: str) -> list[tuple]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetModel.name, AssetEvent.source_task_id, AssetModel.uri, AssetEvent.extra)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetEvent.source_run_id == run_id)
    )
    with create_session() as session:
        return [tuple(row) for row in session.execute(query)]

"""Operating Intentflow the Airflow way (#22), on real Airflow runs.

- A drop that never comes: one "missing data" alert, no data-quality failure (`dag.test()`).
- Under `airflow standalone` (scheduler, triggerer, dag-processor, API server; LocalExecutor on
  SQLite), with the OpenLineage provider writing its events to a file: the day's ingest waits for its drop deferred in the triggerer, its `transcripts`
  event starts the retrain (AssetOrTimeSchedule) which skips below the minimum of new rows; a
  manual retrain of a model that requires approval waits in Required Actions, misses its
  Deadline Alert meanwhile, is rejected through the REST API with a reason, and the registry
  named by the `intentflow_registry` connection (not INTENTFLOW_REGISTRY_URL) audits who
  rejected it and why; the lineage events chain source → lake → snapshot → model artifact.

What the tests of tests/dags/test_dags.py already run (asset extras, model Assets, timeouts,
not-promoted alerts) is not repeated here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow_cluster import free_port
from airflow_standalone import airflow, query, standalone, standalone_env, wait
from alert_receiver import connections

from ml.synthetic.generate import generate

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_drop_that_never_comes_alerts_missing_data_once(
    airflow_db: Path, intentflow_home: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)
    (intentflow_home / "raw").mkdir(parents=True)
    dag = DagBag(dag_folder=str(REPO / "dags" / "transcripts_ingest.py")).dags["transcripts_ingest"]
    # 2026-11-10's deadline (6 h after the day) is long past: no waiting, missing data now.
    run = dag.test(logical_date=datetime(2026, 11, 10, tzinfo=UTC))
    assert run.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert (states["wait_for_drop"], states["discover"]) == ("failed", "upstream_failed")
    assert states["validate"] == "upstream_failed"
    [(path, alert)] = [(p, b) for p, b in got.posts if p == "/dq"]
    assert (alert["kind"], alert["task_id"], alert["failed"]) == (
        "missing_data",
        "wait_for_drop",
        [],
    )
    assert alert["title"].endswith("missing data for 2026-11-10")
    assert "by 2026-11-11 06:00 UTC" in alert["error"]
    assert len(got.mails) == 1 and "missing data" in got.mails[0][1]["Subject"]


def _ti_state(db: Path, dag_id: str, run_id: str, task_id: str) -> str | None:
    rows = query(
        db,
        "SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
        dag_id,
        run_id,
        task_id,
    )
    return rows[0][0] if rows else None


@pytest.mark.slow
def test_operated_under_a_real_scheduler_and_triggerer(
    tmp_path: Path, tiny_bert_dir: Path, receiver: Any
) -> None:
    from ml.registry.store import Registry

    got, base, _ = receiver
    home, af_home = tmp_path / "intentflow", tmp_path / "airflow"
    af_home.mkdir(parents=True)
    (home / "raw").mkdir(parents=True)
    port = free_port()
    (af_home / "passwords.json").write_text(json.dumps({"admin": "admin-pw"}))
    models = [
        {
            "name": "intent",
            "task": "intent",
            "dag_id": "intent_retrain",
            # A nightly time with no occurrence since the start date (29 February): unpausing
            # schedules no run, only data and people start one.
            "schedule": "0 3 29 2 *",
            "params": {"window_days": 1},
            "require_approval": True,
        }
    ]
    (home / "models.json").write_text(json.dumps(models))
    conn_registry, env_registry = home / "conn-registry.db", home / "env-registry.db"
    env = standalone_env(
        af_home,
        port,
        REPO / "dags",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(af_home / "passwords.json"),
        AIRFLOW__API__BASE_URL=f"http://localhost:{port}",
        INTENTFLOW_HOME=str(home),
        INTENTFLOW_SOURCE=str(home / "raw"),
        INTENTFLOW_MODELS_FILE=str(home / "models.json"),
        INTENTFLOW_BASE_MODEL=str(tiny_bert_dir),
        INTENTFLOW_PROMOTION_MIN_TEST_SIZE="1",
        INTENTFLOW_DROP_POKE_SECONDS="2",
        INTENTFLOW_RETRAIN_MIN_NEW_ROWS="1000000",
        INTENTFLOW_RETRAIN_DEADLINE_MINUTES="0.1",
        INTENTFLOW_RETRAIN_RETRIES="0",
        # The tasks must use the connection; the environment is the CLI's fallback.
        AIRFLOW_CONN_INTENTFLOW_REGISTRY=json.dumps(
            {"conn_type": "sqlite", "host": str(conn_registry)}
        ),
        INTENTFLOW_REGISTRY_URL=f"sqlite:///{env_registry}",
        AIRFLOW_CONN_INTENTFLOW_WEBHOOK=json.dumps({"conn_type": "http", "host": f"{base}/dq"}),
        HF_HUB_OFFLINE="1",
        # 8: Airflow's OpenLineage provider writes every task's events to a file.
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(tmp_path / "openlineage.jsonl"), "append": True}
        ),
        AIRFLOW__OPENLINEAGE__NAMESPACE="intentflow-test",
    )
    # Metadata, the pool and both registries ready before the scheduler starts: both
    # registries are current, only one is used.
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "gpu", "1", "fine-tuning")
    for url in (conn_registry, env_registry):
        subprocess.run(
            [sys.executable, "-m", "ml.cli", "registry", "upgrade"],
            env={**env, "INTENTFLOW_REGISTRY_URL": f"sqlite:///{url}"},
            check=True,
            capture_output=True,
        )
    log_path = tmp_path / "standalone.log"
    with standalone(env, log_path) as db:
        for dag_id in ("transcripts_ingest", "intent_retrain"):
            wait(
                f"{dag_id} serialized",
                lambda d=dag_id: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id=?", d),
                180,
                log_path,
            )
        api = wait("the API server", lambda: _client(port), 120, log_path)
        for dag_id in ("transcripts_ingest", "intent_retrain"):
            api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

        # 2: the day's ingest waits for its drop, deferred (no worker slot), then goes on. The
        # run is the one unpausing scheduled (its day: today, UTC); a second ingest run of the
        # same day would publish a second `transcripts` event.
        [(ingest, logical)] = wait(
            "the scheduled ingest run",
            lambda: query(
                db,
                "SELECT run_id, logical_date FROM dag_run WHERE dag_id='transcripts_ingest' "
                "AND run_type='scheduled'",
            ),
            120,
            log_path,
        )
        today = date.fromisoformat(str(logical)[:10])
        wait(
            "wait_for_drop to defer",
            lambda: _ti_state(db, "transcripts_ingest", ingest, "wait_for_drop") == "deferred",
            120,
            log_path,
        )
        generate(tmp_path / "incoming", days=1, per_day=60, start=today, seed=3)
        shutil.move(tmp_path / "incoming" / today.isoformat(), home / "raw" / today.isoformat())
        assert _run_state(api, "transcripts_ingest", ingest, log_path) == "success"

        # 1: its `transcripts` event (with extras) started the retrain, which skipped: far
        # fewer new rows than INTENTFLOW_RETRAIN_MIN_NEW_ROWS.
        [(extra,)] = query(db, "SELECT extra FROM asset_event WHERE source_run_id=?", ingest)
        assert json.loads(extra)["day"] == today.isoformat() and json.loads(extra)["rows"] > 0
        [(by_data,)] = wait(
            "the asset-triggered retrain",
            lambda: query(
                db,
                "SELECT run_id FROM dag_run WHERE dag_id='intent_retrain' "
                "AND run_type='asset_triggered'",
            ),
            120,
            log_path,
        )
        assert _run_state(api, "intent_retrain", by_data, log_path) == "success"
        assert _ti_state(db, "intent_retrain", by_data, "enough_new_data") == "success"
        assert _ti_state(db, "intent_retrain", by_data, "snapshot") == "skipped"

        # 5: a manual retrain of a model that requires approval waits for a person...
        conf = {"end_date": today.isoformat(), "epochs": 1, "batch_size": 16}
        manual = _trigger(api, "intent_retrain", conf)
        wait(
            "the approval request",
            lambda: _ti_state(db, "intent_retrain", manual, "approve") == "awaiting_input",
            300,
            log_path,
        )
        # 3: ... past its Deadline Alert (6 s after it was queued): the triggerer notified.
        wait(
            "the deadline alert",
            lambda: [b for p, b in got.posts if b.get("kind") == "deadline_missed"],
            120,
            log_path,
        )
        assert manual in {b["run_id"] for _, b in got.posts if b["kind"] == "deadline_missed"}
        # Answer once the scheduler has taken the parking task's exit from the executor: an
        # answer before that (no person is that fast) races it in Airflow 3.3.2, whose
        # scheduler then fails the resumed task ("finished with state success, but the task
        # instance's state attribute is queued").
        wait(
            "the scheduler to see the approval task park",
            lambda: any(
                "Received executor event" in line and "task_id='approve'" in line and manual in line
                for line in log_path.read_text(errors="replace").splitlines()
            ),
            60,
            log_path,
        )
        path = f"/dags/intent_retrain/dagRuns/{manual}/taskInstances/approve/-1/hitlDetails"
        detail = api.get(path).raise_for_status().json()
        assert detail["subject"] == "Make intent v1 the champion?"
        assert "| accuracy |" in detail["body"] and "no champion yet" in detail["body"]
        assert f"http://localhost:{port}/intentflow/?model=intent&version=1" in detail["body"]
        reason = "refund_request recall too low for the holiday peak"
        api.patch(
            path, json={"chosen_options": ["Reject"], "params_input": {"reason": reason}}
        ).raise_for_status()
        state = _run_state(api, "intent_retrain", manual, log_path)
        assert state == "success", _explain(db, af_home, "intent_retrain", manual)

        # Rejected: no champion; the audit names the approver and the reason, in the registry
        # the connection names (6); the environment's registry saw nothing.
        registry = Registry(f"sqlite:///{conn_registry}")
        [version] = registry.list_versions("intent")
        assert version.aliases == ("challenger",)
        [rejected] = [a for a in registry.audit("intent") if a["action"] == "promotion_rejected"]
        assert (rejected["actor"], rejected["version"]) == ("admin", 1)
        assert rejected["reason"] == f"promotion rejected: {reason}"
        assert Registry(f"sqlite:///{env_registry}").list_versions("intent") == []
        # 4: the not-promoted alert says who rejected it.
        [note] = [b for _, b in got.posts if b.get("kind") == "not_promoted"]
        assert f"promotion rejected by admin: {reason}" in note["error"]

        # 8: the lineage a backend draws: the day's source → the lake → the snapshot → model.
        io = _lineage(tmp_path / "openlineage.jsonl", {ingest, manual})
        lake_dir = str((home / "lake" / "transcripts").absolute())
        source_day = str((home / "raw" / today.isoformat()).absolute())
        assert io["transcripts_ingest.publish"] == ({source_day}, {lake_dir})
        snap_in, snap_out = io["intent_retrain.snapshot"]
        assert snap_in == {lake_dir} and len(snap_out) == 1
        tune_in, tune_out = io["intent_retrain.fine_tune"]
        assert tune_in == snap_out | {str(tiny_bert_dir.absolute())}
        [artifact] = tune_out
        assert artifact.startswith(str((home / "artifacts" / "intent").absolute()))


def _lineage(events_file: Path, run_ids: set[str]) -> dict[str, tuple[set[str], set[str]]]:
    """task (dag.task) -> (input names, output names) of the completed task runs of `run_ids`,
    from an OpenLineage file transport's events."""
    io: dict[str, tuple[set[str], set[str]]] = {}
    for line in events_file.read_text().splitlines():
        # A task event names its DAG run in its facets.
        if not line.strip() or not any(run_id in line for run_id in run_ids):
            continue
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].count(".") == 1:
            io[event["job"]["name"]] = (
                {d["name"] for d in event.get("inputs", [])},
                {d["name"] for d in event.get("outputs", [])},
            )
    return io


def _explain(db: Path, af_home: Path, dag_id: str, run_id: str) -> str:
    """A failed run's task states and its failed tasks' log tails."""
    states = query(
        db, "SELECT task_id, state FROM task_instance WHERE dag_id=? AND run_id=?", dag_id, run_id
    )
    logs = [
        f"--- {log}\n{log.read_text(errors='replace')[-3000:]}"
        for task, state in states
        if state == "failed"
        for log in (af_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").glob(
            f"task_id={task}/**/*.log"
        )
    ]
    return f"{states}\n" + "\n".join(logs)


def _client(port: int) -> httpx.Client | None:
    base = f"http://localhost:{port}"
    token = httpx.post(
        f"{base}/auth/token", json={"username": "admin", "password": "admin-pw"}, timeout=10
    )
    if not token.is_success:
        return None
    return httpx.Client(
        base_url=f"{base}/api/v2",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )


def _trigger(api: httpx.Client, dag_id: str, conf: dict[str, Any]) -> str:
    made = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    made.raise_for_status()
    return made.json()["dag_run_id"]


def _run_state(api: httpx.Client, dag_id: str, run_id: str, log: Path) -> str:
    def done() -> str | None:
        state = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    return wait(f"{dag_id} {run_id} to finish", done, 300, log)


def test_deadline_limit_and_new_rows_arithmetic() -> None:
    """The drop's deadline, fine_tune's data-sized limit (capped), new rows counted once a day."""
    from datetime import timedelta

    from ml.config import OpsSettings
    from ml.ingest.arrival import drop_deadline
    from ml.retrain.ops import fine_tune_timeout, new_rows

    assert drop_deadline(date(2026, 12, 1), 6) == datetime(2026, 12, 2, 6, tzinfo=UTC)
    ops = OpsSettings(fine_tune_min_samples_per_second=10, fine_tune_overhead_minutes=1)
    snap = {"counts": {"train": 800, "validation": 100, "test": 100}}
    assert fine_tune_timeout(snap, {"epochs": 2}, ops) == timedelta(seconds=60 + 900 * 2 / 10)
    assert fine_tune_timeout(snap, {}, ops) == timedelta(seconds=60 + 900 * 6 / 10)
    capped = OpsSettings(fine_tune_min_samples_per_second=0.001, fine_tune_max_hours=2)
    assert fine_tune_timeout(snap, {}, capped) == timedelta(hours=2)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    events = [
        (t0, {"day": "2026-11-29", "rows": 500}),
        (t0 + timedelta(hours=1), {"day": "2026-11-30", "rows": 300}),
        (t0 + timedelta(hours=2), {"day": "2026-11-30", "rows": 320}),  # republished: newest
    ]
    assert new_rows(events, None) == 820
    assert new_rows(events, t0) == 320


def test_connections_stand_for_the_registry_and_object_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two connections as the task environment they stand for; none: nothing (the
    environment applies). The standalone test above runs a retrain on the registry connection."""
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    from intentflow_connections import connection_env

    monkeypatch.delenv("AIRFLOW_CONN_INTENTFLOW_REGISTRY", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_INTENTFLOW_STORAGE", raising=False)
    assert connection_env() == {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_REGISTRY",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db",
                "port": 5432,
                "login": "reg",
                "password": "p@ss/w:rd",
                "schema": "intentflow",
            }
        ),
    )
    extra = {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_STORAGE",
        json.dumps({"conn_type": "aws", "login": "AKIA1", "password": "s3cr3t", "extra": extra}),
    )
    assert connection_env() == {
        "INTENTFLOW_REGISTRY_URL": "postgresql+psycopg2://reg:p%40ss%2Fw%3Ard@db:5432/intentflow",
        "AWS_ACCESS_KEY_ID": "AKIA1",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }

"""The scale-out path for real: CeleryExecutor, PostgreSQL metadata and registry, Redis broker.

One Airflow on this machine (api-server, scheduler, dag-processor, a `default`-queue and a
`gpu`-queue Celery worker, each its own process), driven only through the REST API v2 with
token auth, as an operator would. Every process is stopped by PID at the end.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow_cluster import Cluster, Process, start_redis, wait_for
from pg import make_pg_database_fixture, unavailable

from ml.registry.store import Registry
from ml.synthetic.generate import generate

pytestmark = pytest.mark.slow

metadata_db = make_pg_database_fixture("metadata_db", "intentflow_af")
registry_db = make_pg_database_fixture("registry_db", "intentflow_reg")

DAY = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)  # ingested by the fault test only
RETRAIN_CONF = {"window_days": 1, "end_date": DAY.isoformat(), "epochs": 1, "batch_size": 16}
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def cluster(
    metadata_db: str,
    registry_db: str,
    tiny_bert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (the Celery broker)")
    root = tmp_path_factory.mktemp("celery-cluster")
    data = root / "intentflow"
    redis: Process | None = None
    cl: Cluster | None = None
    try:
        redis, broker = start_redis(root / "redis")
        cl = Cluster.create(
            root / "airflow",
            metadata_db,
            broker,
            {
                "INTENTFLOW_HOME": str(data),
                "INTENTFLOW_REGISTRY_URL": registry_db,
                "INTENTFLOW_BASE_MODEL": str(tiny_bert_dir),
                # Only the runs the test triggers: no cron runs racing them.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                # Let queued retrains be active together, so only the `gpu` pool serialises them.
                "INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS": "2",
                "OMP_NUM_THREADS": "1",
            },
        )
        cl.broker, redis = redis, None  # the cluster stops (and may restart) it from now on
        # Two slots on the gpu worker: the one-slot pool, not the worker, must serialise training.
        cl.boot(registry_db, {"concurrency": 2})
        generate(data / "raw", days=2, per_day=150, start=DAY, seed=3)
        yield cl
    finally:
        if cl is not None:
            cl.stop_all()
        if redis is not None:
            redis.stop()


def _ready(client: httpx.Client, dag_id: str) -> None:
    wait_for(lambda: client.get(f"/dags/{dag_id}").is_success, 120, f"{dag_id} parsed")
    client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()


def _trigger(client: httpx.Client, dag_id: str, conf: dict[str, Any]) -> str:
    made = client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert made.is_success, made.text
    return made.json()["dag_run_id"]


def _wait_run(cl: Cluster, client: httpx.Client, dag_id: str, run_id: str) -> str:
    def done() -> str | None:
        state = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    return wait_for(done, RUN_TIMEOUT, f"{dag_id} {run_id}", 2.0, cl.logs)


def _tasks(client: httpx.Client, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    body = client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def ingested(cluster: Cluster) -> str:
    """The day ingested through the API (every retrain here trains on it); its run id."""
    with cluster.client() as client:
        for dag_id in ("transcripts_ingest", "intent_retrain"):
            _ready(client, dag_id)
        ingest = _trigger(client, "transcripts_ingest", {"day": DAY.isoformat()})
        assert _wait_run(cluster, client, "transcripts_ingest", ingest) == "success", cluster.logs()
    return ingest


def test_ingest_and_retrain_on_celery_queues(
    cluster: Cluster, ingested: str, registry_db: str
) -> None:
    started = time.monotonic()
    ingest = ingested
    with cluster.client() as client:
        retrain = _trigger(client, "intent_retrain", RETRAIN_CONF)
        assert _wait_run(cluster, client, "intent_retrain", retrain) == "success", cluster.logs()

        ran = {
            **{f"ingest.{k}": v for k, v in _tasks(client, "transcripts_ingest", ingest).items()},
            **_tasks(client, "intent_retrain", retrain),
        }
    assert len(ran) == 14
    # No golden set is configured: the mapped evaluate_golden has nothing to map, so no worker.
    assert {t for t, ti in ran.items() if ti["state"] == "skipped"} == {"evaluate_golden"}
    # hostname: the worker that ran it (tests/worker_hostname.py); queue: where it was sent.
    placed = {t: (ti["queue"], ti["hostname"]) for t, ti in ran.items() if ti["state"] != "skipped"}
    assert placed.pop("fine_tune") == ("gpu", "worker-gpu")
    assert ran["fine_tune"]["pool"] == "gpu"
    assert set(placed.values()) == {("default", "worker-default")}, placed

    registry = Registry(registry_db)
    [version] = [v for v in registry.list_versions("intent") if v.run_id == retrain]
    # Whichever test of this module runs first: every retrain here trains on the same day
    # with the same params and seed, so it scores as the champion does (or there is none
    # yet), and no worse is enough. The DAG's promote task moved the alias.
    assert version.aliases == ("champion",)
    [moved] = [a for a in registry.audit("intent") if a["version"] == version.version][1:]
    assert (moved["action"], moved["actor"]) == ("promote", "airflow:intent_retrain")
    print(f"ingest + retrain on Celery: {time.monotonic() - started:.0f}s")


def test_queued_retrains_share_one_gpu_slot(
    cluster: Cluster, ingested: str, registry_db: str
) -> None:
    """Two retrains active at once; the one-slot `gpu` pool runs their fine_tunes in turn."""
    with cluster.client() as client:
        before = len(Registry(registry_db).list_versions("intent"))
        runs = [_trigger(client, "intent_retrain", RETRAIN_CONF) for _ in range(2)]
        for run in runs:
            assert _wait_run(cluster, client, "intent_retrain", run) == "success", cluster.logs()
        spans = sorted(
            (_ts(ti["start_date"]), _ts(ti["end_date"]))
            for ti in (_tasks(client, "intent_retrain", run)["fine_tune"] for run in runs)
        )
    (first_start, first_end), (second_start, second_end) = spans
    assert first_end <= second_start, f"fine_tune runs overlapped: {spans}"
    assert len(Registry(registry_db).list_versions("intent")) == before + 2


def test_broker_restart_keeps_queued_tasks(
    cluster: Cluster, ingested: str, registry_db: str
) -> None:
    """fine_tune waits in Redis (no gpu worker up) while Redis restarts; it is not lost."""
    [gpu] = [p for p in cluster.processes if p.name == "worker-gpu" and p.alive()]
    gpu.stop()
    with cluster.client() as client:
        run = _trigger(client, "intent_retrain", RETRAIN_CONF)

        def waiting() -> bool:
            ti = _tasks(client, "intent_retrain", run).get("fine_tune", {})
            return ti.get("state") == "queued" and cluster.queued_messages("gpu") == 1

        wait_for(waiting, 120, "fine_tune queued in the broker", 1.0, cluster.logs)
        cluster.restart_broker()
        assert cluster.queued_messages("gpu") == 1, "the queued task was lost with the broker"
        cluster.start_worker("worker-gpu", "gpu")
        assert _wait_run(cluster, client, "intent_retrain", run) == "success", cluster.logs()
        fine_tune = _tasks(client, "intent_retrain", run)["fine_tune"]
    # Run from the message that survived, not from a retry or a re-queue after a timeout.
    assert (fine_tune["hostname"], fine_tune["try_number"]) == ("worker-gpu", 1)


def test_worker_killed_mid_task_is_retried_on_another(cluster: Cluster, ingested: str) -> None:
    """A default-queue worker dies (SIGKILL, its task with it); the retry runs on the other."""
    spare = cluster.start_worker("worker-default-2", "default")
    wait_for(lambda: " ready." in spare.log.read_text(errors="replace"), 90, "second worker")
    workers = {p.name: p for p in cluster.processes if p.name.startswith("worker-default")}
    with cluster.client() as client:
        run = _trigger(client, "transcripts_ingest", {"day": DAY2.isoformat()})

        # `validate` imports Great Expectations (seconds): long enough to be caught running.
        def running() -> str | None:
            ti = _tasks(client, "transcripts_ingest", run).get("validate", {})
            return ti.get("hostname") if ti.get("state") == "running" else None

        victim = wait_for(running, 120, "validate running", 0.2, cluster.logs)
        workers[victim].kill_tree()
        [survivor] = set(workers) - {victim}
        assert _tasks(client, "transcripts_ingest", run)["validate"]["state"] != "success", (
            "validate finished before its worker was killed: nothing was tested"
        )
        assert _wait_run(cluster, client, "transcripts_ingest", run) == "success", cluster.logs()
        validate = _tasks(client, "transcripts_ingest", run)["validate"]
    assert not workers[victim].alive()
    assert validate["try_number"] == 2
    assert validate["hostname"] == survivor

"""The Celery cluster of tests/dags/test_distributed.py with the lake and artifacts on S3.

The `default` and `gpu` workers get different INTENTFLOW_HOME folders, as two machines would:
the only storage they share is the bucket (moto's S3 server stands in for S3, see
tests/s3_server.py) and the PostgreSQL registry. Ingest and retrain run through the REST API;
the snapshot the default worker wrote reaches the gpu worker's fine_tune, and the model it
uploads reaches the default worker's evaluate, only through the bucket.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_cluster import Cluster, Process, start_redis
from pg import make_pg_database_fixture, unavailable
from s3_server import make_bucket, moto_server, s3_env
from test_distributed import DAY, RETRAIN_CONF, _ready, _tasks, _trigger, _wait_run

from ml import lake, storage
from ml.registry.store import Registry
from ml.synthetic.generate import generate

pytestmark = pytest.mark.slow

metadata_db = make_pg_database_fixture("metadata_db", "intentflow_af_s3")
registry_db = make_pg_database_fixture("registry_db", "intentflow_reg_s3")


@pytest.fixture(scope="module")
def s3_cluster(
    metadata_db: str,
    registry_db: str,
    tiny_bert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, str, Path, Path]]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (the Celery broker)")
    root = tmp_path_factory.mktemp("celery-s3")
    home, gpu_home = root / "default-host", root / "gpu-host"
    redis: Process | None = None
    cl: Cluster | None = None
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for key, value in s3_env(endpoint).items():
            mp.setenv(key, value)
        bucket = make_bucket()
        try:
            redis, broker = start_redis(root / "redis")
            cl = Cluster.create(
                root / "airflow",
                metadata_db,
                broker,
                {
                    **s3_env(endpoint),
                    "INTENTFLOW_HOME": str(home),
                    "INTENTFLOW_DATA_URL": f"{bucket}/data",
                    "INTENTFLOW_ARTIFACTS_URL": f"{bucket}/models",
                    "INTENTFLOW_SOURCE": str(home / "raw"),
                    "INTENTFLOW_REGISTRY_URL": registry_db,
                    "INTENTFLOW_BASE_MODEL": str(tiny_bert_dir),
                    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                    "OMP_NUM_THREADS": "1",
                },
            )
            cl.broker, redis = redis, None
            cl.boot(registry_db, {"env": {"INTENTFLOW_HOME": str(gpu_home)}})
            generate(home / "raw", days=1, per_day=150, start=DAY, seed=3)
            yield cl, bucket, home, gpu_home
        finally:
            if cl is not None:
                cl.stop_all()
            if redis is not None:
                redis.stop()


def test_ingest_and_retrain_with_lake_and_artifacts_on_s3(
    s3_cluster: tuple[Cluster, str, Path, Path], registry_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cl, bucket, home, gpu_home = s3_cluster
    with cl.client() as client:
        for dag_id in ("transcripts_ingest", "intent_retrain"):
            _ready(client, dag_id)
        ingest = _trigger(client, "transcripts_ingest", {"day": DAY.isoformat()})
        assert _wait_run(cl, client, "transcripts_ingest", ingest) == "success", cl.logs()
        retrain = _trigger(client, "intent_retrain", RETRAIN_CONF)
        assert _wait_run(cl, client, "intent_retrain", retrain) == "success", cl.logs()
        ran = _tasks(client, "intent_retrain", retrain)
    assert ran["fine_tune"]["hostname"] == "worker-gpu"
    ran_elsewhere = {
        t: ti for t, ti in ran.items() if t != "fine_tune" and ti["state"] != "skipped"
    }
    assert set(ran) - set(ran_elsewhere) == {"fine_tune", "evaluate_golden"}  # no golden set here
    assert {ti["hostname"] for ti in ran_elsewhere.values()} == {"worker-default"}

    assert lake.list_partitions(f"{bucket}/data/lake/transcripts") == [DAY]
    [version] = [v for v in Registry(registry_db).list_versions("intent") if v.run_id == retrain]
    assert version.aliases == ("champion",)
    assert version.artifact_uri.startswith(f"{bucket}/models/intent/")
    assert storage.exists(f"{version.artifact_uri}/model.safetensors")
    # Neither "machine" holds the lake or the artifacts: each has only its own cache.
    for host in (home, gpu_home):
        assert not (host / "lake").exists() and not (host / "artifacts").exists()
    assert list((gpu_home / "cache" / "snapshots").iterdir())  # fetched from the bucket
    assert (home / "cache" / "artifacts" / version.artifact_sha256).is_dir()  # for evaluate

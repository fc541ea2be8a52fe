"""A retried fine_tune on another worker resumes from the checkpoints on the artifact store.

Two workers are two INTENTFLOW_HOMEs (each its own cache and run folder) sharing the artifacts
on a moto S3 server: the first is SIGKILLed after its second epoch's checkpoint, the retry runs
on the second and resumes there, and ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import read_until
from s3_server import make_bucket, moto_server, s3_env

from ml import storage
from ml.tasks.intent.train import TrainConfig

TRAIN = """
import json, logging, sys
from ml.retrain.steps import train_step
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
print(json.dumps(train_step({"path": sys.argv[1]}, json.loads(sys.argv[2]), sys.argv[3])))
"""


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    with moto_server() as endpoint:
        env = s3_env(endpoint)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield make_bucket(), env


def test_a_retry_on_another_worker_resumes_from_the_stores_checkpoints(
    bucket: tuple[str, dict[str, str]],
    make_snapshot: Callable[..., Path],
    tiny_train_config: TrainConfig,
    tiny_bert_dir: Path,
    tmp_path: Path,
) -> None:
    url, s3 = bucket
    snapshot = make_snapshot(n_per_label=24)
    config = dataclasses.replace(tiny_train_config, epochs=6, early_stopping_patience=6)
    params = {k: v for k, v in dataclasses.asdict(config).items() if k != "base_model"}

    def worker(name: str, run_key: str) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            **s3,
            "INTENTFLOW_HOME": str(tmp_path / name),
            "INTENTFLOW_ARTIFACTS_URL": f"{url}/models",
            "INTENTFLOW_BASE_MODEL": str(tiny_bert_dir),
        }
        command = [sys.executable, "-c", TRAIN, str(snapshot), json.dumps(params), run_key]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    victim = worker("worker-a", "run-1")
    read_until(victim, "written (epoch-002)")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stored = f"{url}/models/intent/run-1/checkpoints"
    assert storage.exists(f"{stored}/latest.json"), "the checkpoint reached the store"

    retry = worker("worker-b", "run-1")  # an empty home: nothing of worker-a's disk
    out, _ = retry.communicate()
    assert retry.returncode == 0, out
    assert "fetched checkpoints" in out and "resuming from" in out
    assert "(epoch 2, step" in out, out
    resumed = json.loads(out.strip().splitlines()[-1])
    assert not storage.exists(stored), "the finished artifact supersedes the checkpoints"

    straight = worker("worker-c", "run-2")
    out, _ = straight.communicate()
    assert straight.returncode == 0, out
    uninterrupted = json.loads(out.strip().splitlines()[-1])
    assert resumed["validation"] == uninterrupted["validation"]
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    weights: list[Any] = [
        storage.read_bytes(f"{url}/models/intent/{run}/model/model.safetensors")
        for run in ("run-1", "run-2")
    ]
    assert weights[0] == weights[1]

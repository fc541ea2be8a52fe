"""One training in several torchrun processes (DDP), run for real on CPU processes (gloo).

No GPU here: the gloo backend stands in for NCCL; sharding, gradient all-reduce, rank-0-only
writing, checkpoints and resume are the same code the GPUs run.
"""

import dataclasses
import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from processes import read_until

from ml.retrain.launcher import launch
from ml.tasks.intent.evaluation import evaluate_model
from ml.tasks.intent.train import TrainConfig
from ml.training.distributed import DistributedTrainingError

MakeSnapshot = Callable[..., Path]


def test_two_process_training_writes_one_artifact_and_resumes(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=48)
    # Passed as DAG params are (a dict, where None means the default): patience 6 runs every
    # epoch, as the tiny config's None does in process.
    config = replace(tiny_train_config, epochs=6, early_stopping_patience=6)
    checkpoints = tmp_path / "checkpoints"

    out = tmp_path / "model"
    result = launch("intent", snapshot, out, dataclasses.asdict(config), checkpoints, 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["steps"] == 6 * 9, "3 labels x 48 / batch 8 = 18 batches: 9 per rank per epoch"
    assert not list(tmp_path.glob(".*partial*")), "only rank 0 writes; no staging left"
    state = json.loads((checkpoints / "checkpoint-54" / "trainer_state.json").read_text())
    assert state["epoch"] == 6, "rank 0 checkpointed after the last epoch"
    losses = [epoch["train_loss"] for epoch in metrics["history"]]
    assert losses[-1] < 0.85 < losses[0], "the all-reduced gradients trained the model"
    scored = evaluate_model(out, snapshot / "test.parquet", result["artifact_sha256"])
    assert scored["accuracy"] > 0.5, "better than chance (1/3)"

    # Killed after its second checkpoint, torchrun and its processes at once (a lost worker),
    # then retried: both processes resume there and end with the uninterrupted run's weights.
    killed = tmp_path / "killed-checkpoints"
    victim = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(snapshot), str(tmp_path / "killed"), str(killed)]
        + [json.dumps(dataclasses.asdict(config))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    read_until(victim, "written (epoch-002)")
    tree = psutil.Process(victim.pid)
    for proc in [tree, *tree.children(recursive=True)]:
        proc.send_signal(signal.SIGKILL)
    victim.wait()
    left = [json.loads(p.read_text())["epoch"] for p in killed.glob("*/trainer_state.json")]
    assert left and max(left) < 6, "killed with epochs left to train"
    again = launch("intent", snapshot, tmp_path / "retried", dataclasses.asdict(config), killed, 2)
    assert again["epochs_run"] == 6 and again["best_epoch"] == result["best_epoch"]
    assert again["validation"] == result["validation"]
    weights = [directory / "model.safetensors" for directory in (out, tmp_path / "retried")]
    assert _sha256(weights[0]) == _sha256(weights[1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


LAUNCH = """
import json, logging, sys
from pathlib import Path
from ml.retrain.launcher import launch
logging.basicConfig(level=logging.INFO)
launch("intent", Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[4]), Path(sys.argv[3]), 2)
"""


def test_gpus_per_training_reaches_the_launcher(
    intentflow_home: Path,
    make_snapshot: MakeSnapshot,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """INTENTFLOW_GPUS_PER_TRAINING=2 on a gpu worker: train_step leases two GPUs and runs the
    training in two torchrun processes (the DAG's side, pool_slots: test_dags.py).

    No GPUs here: the worker's CUDA (the device check and the device count) is mocked, and the
    two processes are told of no GPU (gloo on CPUs); the leases and the launch are real."""
    import torch

    from ml.retrain import launcher
    from ml.retrain.steps import train_step
    from ml.training import device

    monkeypatch.setenv("INTENTFLOW_GPUS_PER_TRAINING", "2")
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    monkeypatch.setattr(device, "training_device", lambda require_gpu: "cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    launched: list[tuple[int, dict[str, str] | None]] = []
    launch_for_real = launcher.launch

    def on_cpus(*args: Any) -> dict[str, Any]:
        *rest, processes, env, url = args
        launched.append((processes, env))
        cpus = {**(env or {}), "CUDA_VISIBLE_DEVICES": ""}
        return launch_for_real(*rest, processes, cpus, url)

    monkeypatch.setattr(launcher, "launch", on_cpus)
    snapshot = make_snapshot(n_per_label=8)
    trained = train_step({"path": str(snapshot)}, {"epochs": 1}, "run-on-2-gpus")
    assert launched == [(2, {"CUDA_VISIBLE_DEVICES": "0,1"})]
    assert json.loads(Path(trained["artifact_dir"], "metrics.json").read_text())["processes"] == 2


def test_a_failing_rank_fails_the_training_with_a_clear_error(
    tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    missing: Any = tmp_path / "no-snapshot"
    with pytest.raises(DistributedTrainingError, match="2 processes exited with code"):
        launch(
            "intent", missing, tmp_path / "model", dataclasses.asdict(tiny_train_config), None, 2
        )


@pytest.mark.parametrize("task", ["entities", "answers"])
def test_every_task_type_trains_in_two_processes(
    task: str, tiny_bert_dir: Path, tmp_path: Path, write_bitext: Any
) -> None:
    """torchrun serves entities and answers as it serves intent: one artifact, from rank 0,
    with each rank's half of the batches (half the steps of one process)."""
    from answer_pairs import pairs_csv

    from ml.tasks.contract import task_module

    if task == "entities":
        source = tmp_path / "bitext.csv"
        write_bitext(source, 90, broken=False)
    else:
        source = pairs_csv(tmp_path / "pairs.csv")
    module = task_module(task)
    snapshot = Path(module.build_dataset(str(source), tmp_path / "snaps")["path"])
    config = {
        "base_model": str(tiny_bert_dir),
        "epochs": 2,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "num_threads": 1,
        "early_stopping_patience": 2,
    }
    one = module.fine_tune(snapshot, tmp_path / "one", config)
    two = launch(task, snapshot, tmp_path / "two", config, tmp_path / "ckpt", 2)
    metrics = [json.loads(Path(r["artifact_dir"], "metrics.json").read_text()) for r in (one, two)]
    assert metrics[1]["processes"] == 2
    assert metrics[1]["steps"] == pytest.approx(metrics[0]["steps"] / 2, abs=2)
    assert not list(tmp_path.glob(".*partial*")), "only rank 0 writes; no staging left"

"""One training in several torchrun processes (DDP), run for real on CPU processes (gloo).

No GPU here: the gloo backend stands in for NCCL; sharding, gradient all-reduce, rank-0-only
writing, checkpoints and resume are the same code the GPUs run.
"""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ml.distributed import DistributedTrainingError, World, launch, shard, shard_count
from ml.evaluate import evaluate_model
from ml.train import TrainConfig

MakeSnapshot = Callable[..., Path]


@pytest.mark.parametrize("batches,size", [(10, 2), (11, 2), (7, 3), (1, 2), (5, 1)])
def test_shards_are_equal_disjoint_and_cover_all_but_a_remainder(batches: int, size: int) -> None:
    epoch = [[i] for i in range(batches)]
    shares = [shard(epoch, World(rank=r, size=size)) for r in range(size)]
    assert {len(s) for s in shares} == {shard_count(batches, World(size=size))}, "equal counts"
    taken = [b[0] for s in shares for b in s]
    if batches >= size:
        assert len(taken) == len(set(taken)), "no batch runs twice in an epoch"
        assert len(taken) == batches - batches % size
    else:
        assert set(taken) == set(range(batches)), "fewer batches than ranks: ranks repeat"


def test_two_process_training_writes_one_artifact_and_resumes(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = make_snapshot(n_per_label=48)
    config = replace(tiny_train_config, epochs=6)
    checkpoints = tmp_path / "checkpoints"

    out = tmp_path / "model"
    result = launch(snapshot, out, config, checkpoints, 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["steps"] == 6 * 9, "3 labels x 48 / batch 8 = 18 batches: 9 per rank per epoch"
    assert not list(tmp_path.glob(".*partial*")), "only rank 0 writes; no staging left"
    state = json.loads(next(checkpoints.glob("epoch-*/state.json")).read_text())
    assert state["run"]["epoch"] == 6 and state["run"]["step"] == 54, "rank 0 checkpointed"
    losses = [epoch["train_loss"] for epoch in metrics["history"]]
    assert losses[-1] < 0.85 < losses[0], "the all-reduced gradients trained the model"
    scored = evaluate_model(out, snapshot / "test.parquet", result["artifact_sha256"])
    assert scored["accuracy"] > 0.5, "better than chance (1/3)"

    # A retried task: both processes load the last checkpoint; nothing is left to train.
    again = launch(snapshot, tmp_path / "retried", config, checkpoints, 2)
    assert again["epochs_run"] == 6 and again["best_epoch"] == result["best_epoch"]
    assert again["validation"] == result["validation"]


def test_a_failing_rank_fails_the_training_with_a_clear_error(
    tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    missing: Any = tmp_path / "no-snapshot"
    with pytest.raises(DistributedTrainingError, match="2 processes exited with code"):
        launch(missing, tmp_path / "model", tiny_train_config, None, 2)

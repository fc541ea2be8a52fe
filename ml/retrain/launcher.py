"""Distributed training on one machine, any task type: torchrun starts N processes of its fine_tune.

`launch` is what the retrain step calls; `main` is each process's entry point
(`python -m ml.retrain.launcher`). The primitives the processes share are in
ml.training.distributed.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ml.training.distributed import DistributedTrainingError, setup

logger = logging.getLogger(__name__)


def launch(
    task: str,
    snapshot_dir: Path,
    out_dir: Path,
    config: dict[str, Any],
    checkpoint_dir: Path | None,
    processes: int,
    env: dict[str, str] | None = None,
    checkpoint_url: str | None = None,
) -> dict[str, Any]:
    """Run `task`'s fine_tune in `processes` torchrun processes on this machine; its artifact
    summary. `config` is its DAG params / CLI options (a dict, as fine_tune takes them).

    `env` adds to the children's environment (CUDA_VISIBLE_DEVICES: the leased GPUs).
    """
    from ml.tasks.contract import TASK_MODULES, task_module

    task_module(task)  # an unknown task type fails here, not in N processes
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle, default=str)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "ml.retrain.launcher",
        task,
        str(snapshot_dir),
        str(out_dir),
        handle.name,
        str(checkpoint_dir or ""),
        checkpoint_url or "",
    ]
    logger.info("launching %d training processes: %s", processes, " ".join(command))
    try:
        # noqa: S603 below: the command is torchrun and our own module, built here.
        done = subprocess.run(command, env={**os.environ, **(env or {})}, check=False)  # noqa: S603
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise DistributedTrainingError(
            f"torchrun training with {processes} processes exited with code {done.returncode}; "
            "the failing rank's traceback is above in this log"
        )
    train = importlib.import_module(f"{TASK_MODULES[task]}.train")
    return train.artifact_summary(Path(out_dir))


def main(argv: list[str]) -> None:
    """torchrun's entry point:
    `python -m ml.retrain.launcher TASK SNAPSHOT OUT CONFIG_JSON [CHECKPOINTS [CHECKPOINT_URL]]`."""
    import torch.distributed as dist

    from ml.tasks.contract import task_module

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    task, snapshot, out, config_file, checkpoints, url = (argv + ["", ""])[:6]
    config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    world = setup()
    try:
        task_module(task).fine_tune(
            Path(snapshot),
            Path(out),
            config,
            Path(checkpoints) if checkpoints else None,
            checkpoint_url=url or None,
        )
    finally:
        if world.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])

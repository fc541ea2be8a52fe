"""One training on several GPUs: torchrun processes with DistributedDataParallel.

`ml.retrain.steps.train_step` runs `torchrun --standalone --nproc-per-node=N -m ml.retrain.launcher ...`
when a training of any task type is given N > 1 GPUs (INTENTFLOW_GPUS_PER_TRAINING). The
Trainer (ml.training.loop) shards the batches and all-reduces the gradients; every process
validates (identical weights give identical metrics, so all agree on early stopping without
talking), and rank 0 alone writes checkpoints and the artifact.

The same code runs CPU processes on the gloo backend: that is how the tests exercise it on a
machine without GPUs. torch is imported inside functions, as everywhere in ml/.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class DistributedTrainingError(RuntimeError):
    """A torchrun training exited with an error; its processes' output is in the task log."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's environment)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> World:
    """The world torchrun set up for this process; a single process outside torchrun."""
    return World(
        rank=int(os.environ.get("RANK", "0")),
        size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def setup() -> World:
    """Join the process group (NCCL on GPUs, gloo on CPUs); pin this process to its GPU."""
    import torch
    import torch.distributed as dist

    world = current()
    if world.size > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if not world.main:
        logging.getLogger("ml").setLevel(logging.WARNING)  # one progress log, rank 0's
    return world


def barrier(world: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    import torch.distributed as dist

    if world.size > 1 and dist.is_initialized():
        dist.barrier()

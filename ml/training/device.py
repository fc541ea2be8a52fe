"""Where training runs: CUDA when the worker has a GPU, the CPU only where configuration allows.

A `gpu`-queue worker whose GPU is missing (driver gone, no device reservation, a CPU build of
torch) would otherwise train on its CPU, silently and many times slower. With
INTENTFLOW_REQUIRE_GPU set, training refuses instead and says why; the embedded default
allows the CPU.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class GPUUnavailableError(RuntimeError):
    """A GPU is required (INTENTFLOW_REQUIRE_GPU) and torch sees none."""


def training_device(require_gpu: bool) -> str:
    """ "cuda" or "cpu", checked before any training starts; raises GPUUnavailableError."""
    import torch

    if torch.cuda.is_available():
        log.info(
            "training on CUDA: %d GPU(s) visible, %s",
            torch.cuda.device_count(),
            torch.cuda.get_device_name(0),
        )
        return "cuda"
    detail = (
        f"no CUDA GPU visible on {socket.gethostname()} (torch {torch.__version__}, "
        f"built for CUDA {torch.version.cuda or 'none'}, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    )
    if require_gpu:
        raise GPUUnavailableError(
            f"{detail} and INTENTFLOW_REQUIRE_GPU is set: refusing to train on the CPU. "
            "Check the worker's GPU reservation and driver, or unset INTENTFLOW_REQUIRE_GPU "
            "to allow CPU training."
        )
    log.warning("%s: training on the CPU (INTENTFLOW_REQUIRE_GPU=true fails instead)", detail)
    return "cpu"


@contextmanager
def gpu_lease(
    device_count: int, lock_dir: Path | None = None, count: int = 1
) -> Iterator[list[int]]:
    """Hold `count` GPU indices for this process while training; [] when there are no GPUs.

    A gpu worker with N GPUs runs N // count trainings at once (its concurrency and the gpu
    pool's slots say how many); without this each would take CUDA device 0. An exclusive lock
    file per GPU, released by the OS when the process dies, gives each training its own
    devices. Fewer free GPUs than `count` raises GPUUnavailableError (and holds none).
    """
    if device_count <= 0:
        yield []
        return
    if count > device_count:
        raise GPUUnavailableError(
            f"a training asks for {count} GPUs (INTENTFLOW_GPUS_PER_TRAINING) but "
            f"{socket.gethostname()} has {device_count}"
        )
    folder = lock_dir or Path(tempfile.gettempdir())
    held: list[tuple[int, IO[str]]] = []
    try:
        for index in range(device_count):
            if len(held) == count:
                break
            handle = open(folder / f"intentflow-gpu-{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            held.append((index, handle))
        if len(held) < count:
            raise GPUUnavailableError(
                f"{count} GPU(s) wanted but only {len(held)} of {device_count} on "
                f"{socket.gethostname()} are free; the others are held by other trainings: "
                "the gpu worker's concurrency (and the gpu pool) must not exceed its GPUs"
            )
        indices = [index for index, _ in held]
        log.info("holding GPU(s) %s of %d", indices, device_count)
        yield indices
    finally:
        for _, handle in held:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def visible_devices(indices: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for child processes: `indices` count within this process's view."""
    parent = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if parent:
        seen = [d.strip() for d in parent.split(",") if d.strip()]
        return ",".join(seen[i] for i in indices)
    return ",".join(str(i) for i in indices)


def torch_device() -> torch.device:
    """CUDA when present, else the CPU: training and its checkpoints load onto this."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA where supported, fp16 on older GPUs, none on CPU (inference)."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

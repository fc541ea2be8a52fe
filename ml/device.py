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
from pathlib import Path

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
def gpu_lease(device_count: int, lock_dir: Path | None = None) -> Iterator[int | None]:
    """Hold one GPU index for this process while training; None when there are no GPUs.

    A gpu worker with N GPUs runs N trainings at once (concurrency N, N pool slots); without
    this each would take CUDA device 0. An exclusive lock file per GPU, released by the OS
    when the process dies, gives each training its own device.
    """
    if device_count <= 0:
        yield None
        return
    folder = lock_dir or Path(tempfile.gettempdir())
    for index in range(device_count):
        handle = open(folder / f"intentflow-gpu-{index}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            log.info("holding GPU %d of %d", index, device_count)
            yield index
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise GPUUnavailableError(
        f"all {device_count} GPUs on {socket.gethostname()} are held by other trainings: "
        "the gpu worker's concurrency (and the gpu pool) must not exceed its GPUs"
    )

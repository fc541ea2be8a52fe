"""Where training runs: CUDA when the worker has a GPU, the CPU only where configuration allows.

A `gpu`-queue worker whose GPU is missing (driver gone, no device reservation, a CPU build of
torch) would otherwise train on its CPU, silently and many times slower. With
INTENTFLOW_REQUIRE_GPU set, training refuses instead and says why; the embedded default
allows the CPU.
"""

from __future__ import annotations

import logging
import os
import socket

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

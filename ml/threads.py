"""How many CPU threads torch uses, and how idle ones wait: the thread policy of training.

Why: an Airflow worker (LocalExecutor parallelism 4, several Celery slots) runs other tasks
beside a training. torch's CPU wheel parallelises with GNU OpenMP, whose idle threads spin
at every barrier before they sleep; with a busy neighbour on the cores, a spinning thread
holds a core while the thread it waits for queues for one, and training collapsed (7 against
90 samples/s in the demo's retrain log; bench/threads.py measures it). Two rules:

- OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE): an idle thread sleeps and gives
  its core away, so training slows in proportion to the CPU it gets instead of collapsing.
  OpenMP reads the variable once, when torch loads its runtime, so it is set on importing
  `ml` (ml/__init__.py), before any of ml's modules imports torch; a value already in the
  environment (even empty: OpenMP's default) is left alone.
- As many threads as CPUs this process may use (its affinity mask, capped by a cgroup CPU
  quota), shared out among torchrun's processes; not os.cpu_count(), which counts the
  host's CPUs when a container is given a few of them.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

WAIT_POLICY = "PASSIVE"


# True when this process loaded torch before `ml` set the policy: too late for OpenMP.
_policy_late = False


def apply_wait_policy() -> None:
    """OMP_WAIT_POLICY=PASSIVE for this process and its children, unless already set.

    Called when `ml` is imported (ml/__init__.py). A process that loaded torch before that
    keeps OpenMP's default; threads_for warns about it."""
    global _policy_late
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        _policy_late = "torch" in sys.modules


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_quota()
    return max(1, min(cpus or 1, math.ceil(quota) if quota else cpus or 1))


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of the cgroup's CPU quota (v2 cpu.max, v1 cfs_quota); None when unlimited."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def threads_for(requested: int | None, processes: int = 1) -> int:
    """torch intra-op threads for one of `processes` training processes: `requested` (a
    config's num_threads), else this process's CPUs shared out among them."""
    if _policy_late:
        log.warning(
            "torch was imported before ml: OpenMP threads keep their default wait policy "
            "(set OMP_WAIT_POLICY=PASSIVE in the environment, or import ml first)"
        )
    return requested or max(available_cpus() // processes, 1)


@contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """torch runs on `threads` intra-op threads inside the block, then as before."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)

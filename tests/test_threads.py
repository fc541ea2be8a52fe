"""The thread policy of training (ml.threads): passive OpenMP waits and threads = the CPUs the
process may use. Its effect on speed is measured in bench/threads.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml import threads

REPO = Path(__file__).resolve().parent.parent


def python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(REPO), **env},
        check=True,
    )
    return done.stdout.strip()


def test_importing_ml_makes_openmp_threads_wait_passively() -> None:
    # Set before torch loads OpenMP, and handed to child processes (torchrun's ranks).
    code = "import ml.tasks.intent.train, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    assert python(code) == "PASSIVE False"
    assert python(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"  # a deliberate choice stays


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to restrict to one")
def test_training_uses_the_cpus_the_process_may_use(
    tmp_path: Path, tiny_bert_dir: Path, make_snapshot
) -> None:
    """Pinned to one CPU of several, training takes one thread (os.cpu_count() would be all)."""
    snapshot = make_snapshot()
    code = (
        "import os; from pathlib import Path\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from ml.tasks.intent.train import TrainConfig, fine_tune\n"
        f"out = fine_tune(Path({str(snapshot)!r}), Path({str(tmp_path / 'model')!r}), "
        f"TrainConfig(base_model={str(tiny_bert_dir)!r}, epochs=1, max_steps=2))\n"
        "print(out['config']['num_threads'])"
    )
    assert python(code, INTENTFLOW_PROGRESS="off") == "1"


def test_available_cpus_is_capped_by_the_cgroup_quota(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert threads._cgroup_quota(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_quota(v1) == 0.5
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads._cgroup_quota(v1) is None
    assert threads._cgroup_quota(tmp_path / "none") is None


def test_threads_are_shared_out_among_training_processes() -> None:
    cpus = threads.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    assert threads.threads_for(None) == cpus
    assert threads.threads_for(None, processes=cpus * 2) == 1
    assert threads.threads_for(3, processes=2) == 3  # a config's num_threads wins

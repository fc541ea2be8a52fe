"""A gpu worker without its GPU: fine_tune's step says so, and uses the CPU only if allowed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from ci import HAS_CUDA, NEEDS_CUDA

from ml.config import settings
from ml.retrain.steps import train_step
from ml.training.device import GPUUnavailableError, gpu_lease, training_device, visible_devices

# The only skips CI allows (tests/ci.py).
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason=HAS_CUDA)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("true", True), ("1", True), ("False", False), ("off", False)],
)
def test_require_gpu_setting(
    value: str | None, expected: bool, intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("INTENTFLOW_REQUIRE_GPU", raising=False)
    else:
        monkeypatch.setenv("INTENTFLOW_REQUIRE_GPU", value)
    assert settings().require_gpu is expected


def test_require_gpu_rejects_a_typo(intentflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTFLOW_REQUIRE_GPU", "ture")
    with pytest.raises(ValueError, match="INTENTFLOW_REQUIRE_GPU must be true or false"):
        settings()


@no_gpu
def test_cpu_allowed_by_default_and_said(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ml.training.device"):
        assert training_device(require_gpu=False) == "cpu"
    assert "no CUDA GPU visible" in caplog.text and "training on the CPU" in caplog.text


@no_gpu
def test_required_gpu_missing_fails_before_training(
    intentflow_home: Path, make_snapshot, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTFLOW_REQUIRE_GPU", "true")
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    snapshot = make_snapshot(n_per_label=4)
    with pytest.raises(GPUUnavailableError, match="INTENTFLOW_REQUIRE_GPU is set") as err:
        train_step({"path": str(snapshot)}, {"epochs": 1}, "run-1")
    assert "refusing to train on the CPU" in str(err.value)
    assert not (intentflow_home / "artifacts").exists(), "nothing may be written"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NEEDS_CUDA)
def test_gpu_present_is_used() -> None:
    assert training_device(require_gpu=True) == "cuda"


def test_concurrent_trainings_each_hold_their_own_gpu(tmp_path: Path) -> None:
    """A gpu worker with concurrency 2 on 2 GPUs: each training leases a different device."""
    with gpu_lease(2, tmp_path) as first, gpu_lease(2, tmp_path) as second:
        assert sorted(first + second) == [0, 1]
        with pytest.raises(GPUUnavailableError, match="only 0 of 2"), gpu_lease(2, tmp_path):
            pass
    with gpu_lease(2, tmp_path) as again:
        assert again == [0], "a finished training gives its GPU back"
    with gpu_lease(0, tmp_path) as none:
        assert none == []


def test_a_multi_gpu_training_leases_all_its_gpus_or_none(tmp_path: Path) -> None:
    """4 GPUs, trainings of 2: two fit at once; a third fails without keeping a half lease."""
    with gpu_lease(4, tmp_path, count=2) as first, gpu_lease(4, tmp_path, count=2) as second:
        assert first == [0, 1] and second == [2, 3]
    with gpu_lease(4, tmp_path, count=3) as held:
        with pytest.raises(GPUUnavailableError, match="only 1 of 4"):
            with gpu_lease(4, tmp_path, count=2):
                pass
        with gpu_lease(4, tmp_path, count=1) as last:
            assert held == [0, 1, 2] and last == [3], "the failed lease released GPU 3"
    with pytest.raises(GPUUnavailableError, match="asks for 8 GPUs"), gpu_lease(4, tmp_path, 8):
        pass


def test_child_processes_see_the_leased_gpus_through_the_parents_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_devices([1, 2]) == "1,2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # a worker given GPUs 4-7
    assert visible_devices([1, 2]) == "5,6"

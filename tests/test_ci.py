"""tests/ci.py: CI is truthy in any spelling, and under CI a skip fails unless it is CUDA's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ci import HAS_CUDA, NEEDS_CUDA, datasets_dir, in_ci

HERE = Path(__file__).resolve().parent

SKIPPING = f"""
import pytest

def test_missing_service():
    pytest.skip("no server here")

@pytest.mark.skipif(True, reason={NEEDS_CUDA!r})
def test_gpu():
    pass

@pytest.mark.skipif(True, reason={HAS_CUDA!r})
def test_cpu_only():
    pass

def test_runs():
    pass
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes ", True)]
    + [("", False), ("0", False), ("false", False), ("no", False), (None, False)],
)
def test_ci_is_truthy_in_any_case(
    value: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_datasets_dir_is_beside_the_repo_unless_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("INTENTFLOW_SHARED", raising=False)
    assert datasets_dir() == HERE.parent.parent / "shared" / "datasets"
    monkeypatch.setenv("INTENTFLOW_SHARED", str(tmp_path))
    assert datasets_dir() == tmp_path / "datasets"


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """A pytest run of SKIPPING with only the ci plugin loaded (no conftest, no Airflow)."""
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci", "-rs", "-p", "no:cacheprovider"]
        + ["--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_under_ci_only_the_cuda_skips_pass(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "Yes")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 2 skipped" in done.stdout
    assert "skipped under CI, where only the CUDA skips are allowed: no server here" in done.stdout
    # -rs names the reasons of the skips that remain.
    assert NEEDS_CUDA in done.stdout and HAS_CUDA in done.stdout


def test_outside_ci_a_skip_is_a_skip_with_its_reason(tmp_path: Path) -> None:
    done = _pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped" in done.stdout and "no server here" in done.stdout

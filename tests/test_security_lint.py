"""The lint CI runs (`make test` starts with `ruff check .`) includes bandit's security rules:
a new eval, pickle load, shell command or SQL built from strings fails it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).with_name("ruff")

PROBE = """
import pickle
import subprocess


def run(cmd: str, blob: bytes, table: str) -> object:
    subprocess.call(cmd, shell=True)
    query = "SELECT * FROM " + table + " WHERE id = 1"
    return pickle.loads(blob), eval(cmd), query
"""


@pytest.fixture
def ruff() -> str:
    found = str(RUFF) if RUFF.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is installed with the test extras (pyproject.toml)")
    return found


def test_a_new_security_finding_in_the_library_fails_the_lint(ruff: str) -> None:
    probe = ROOT / "ml" / "_security_probe.py"
    probe.write_text(PROBE)
    try:
        done = subprocess.run(
            [ruff, "check", "--no-cache", "--output-format", "concise", str(probe)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        probe.unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    for rule in ("S602", "S301", "S307", "S608"):
        assert rule in done.stdout, (rule, done.stdout)


def test_the_tree_has_no_unreviewed_security_finding(ruff: str) -> None:
    done = subprocess.run(
        [ruff, "check", "--no-cache", "--select", "S", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def test_ci_runs_the_lint_before_the_tests() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "ruff check ." in test_target
    assert "make test" in (ROOT / ".ci" / "run").read_text()

"""Under CI a missing dependency is a broken setup, not a reason to pass.

Locally, a test whose server, browser or public dataset is missing skips with its reason; when
`CI` is truthy (true/1/yes, any case) the same test fails instead. A pytest plugin too (loaded
by conftest.py): under CI any skip but the CUDA ones fails its test, whatever raised it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
# The only skips CI allows: a GPU test on a machine without one, and a CPU-only test on a GPU
# machine. test_device.py uses these reasons.
NEEDS_CUDA = "needs a CUDA GPU"
HAS_CUDA = "this machine has a CUDA GPU"
ALLOWED_SKIPS = frozenset({NEEDS_CUDA, HAS_CUDA})


def in_ci() -> bool:
    """True when the CI environment variable is true, 1 or yes (any case)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with `reason`; fail it instead under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this test must run)", pytrace=False)
    pytest.skip(reason)


def datasets_dir() -> Path:
    """The public datasets: $INTENTFLOW_SHARED/datasets, by default ../shared/datasets beside
    the repository (never copied into it). The benchmarks read the same variable."""
    return Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"


def dataset(relative: str) -> Path:
    """A file or folder under datasets_dir(); skips the test when absent (fails under CI)."""
    path = datasets_dir() / relative
    if not path.exists():
        skip_or_fail(f"public dataset {relative} not found under {datasets_dir()}")
    return path


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def unexpected_skip(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip CI does not allow, else None (not a skip, an xfail, or CUDA's)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = _skip_reason(report)
    return None if reason in ALLOWED_SKIPS else reason


def _fail_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = unexpected_skip(report) if in_ci() else None
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where only the CUDA skips are allowed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    _fail_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_under_ci(outcome.get_result())

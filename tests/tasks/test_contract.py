"""A task package keeps its contract whatever of it has been imported (ml.tasks.contract)."""

from __future__ import annotations

import importlib
import pkgutil
from types import FunctionType

import pytest

from ml.tasks.contract import CONTRACT, TASK_MODULES, task_module


@pytest.mark.parametrize("task", sorted(TASK_MODULES))
def test_contract_functions_survive_importing_every_submodule(task: str) -> None:
    """Importing a package's submodule sets the package attribute of its name: a submodule
    named like a contract function (say intent/evaluate.py) would replace `evaluate` with a
    module, and the retrain's evaluate step would fail with "'module' object is not callable"."""
    package = task_module(task)
    for sub in pkgutil.iter_modules(getattr(package, "__path__", [])):
        importlib.import_module(f"{package.__name__}.{sub.name}")
    for name in CONTRACT:
        if name not in ("TASK", "PROMOTION_METRIC"):
            assert isinstance(getattr(package, name), FunctionType), f"{task}.{name}"
    assert task_module(task).TASK == task

"""ml.tasks.answers as a package: the task contract and nothing else at its top, contract names
that stay functions whichever submodule loads, and no torch or transformers at import."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import FunctionType

from ml.tasks.contract import CONTRACT, task_module

SUBMODULES = ("bank", "data", "evaluation", "metrics", "model", "train")


def test_the_package_exports_the_contract_and_it_survives_its_submodules() -> None:
    package = task_module("answers")
    assert sorted(package.__all__) == sorted(CONTRACT)
    for name in SUBMODULES:
        importlib.import_module(f"ml.tasks.answers.{name}")
    # A submodule named like a contract function would replace it on the package when loaded.
    for name in ("build_dataset", "fine_tune", "evaluate", "predict"):
        assert isinstance(getattr(package, name), FunctionType), name


def test_importing_the_task_loads_no_torch_or_transformers() -> None:
    """The CLI and the retrain steps import the task module before they know what they run."""
    code = (
        "import sys, ml.tasks.answers; "
        + "; ".join(f"import ml.tasks.answers.{m}" for m in SUBMODULES)
        + "; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

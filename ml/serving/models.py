"""A registered version, loaded to serve: through the registry's record, the artifact fetched and
sha256-checked (ml.artifact.store), its task's `load` (ml.tasks.contract), on a runtime
(ml.serving.runtime). `intentflow predict` loads the same way, once per command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ml.serving.runtime import use_runtime

if TYPE_CHECKING:
    from ml.config import Settings
    from ml.registry.store import VersionInfo

# A text the model sees once before it serves: the first call pays lazy initialisation.
WARM_UP = "hello, I need some help with my account"
# On a CPU a micro-batch runs in chunks of this many texts of similar length: padding a batch
# to its longest text cost more than the batch saved (Banking77: 32 texts took about 2x the
# CPU in one call than in length-sorted chunks of 8; bench/serve.py). A GPU takes the whole
# batch at once.
CPU_CHUNK = 8


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    task: str
    sha256: str
    runtime: str
    loaded: Any  # the task's loaded model (ml.tasks.<task>.load)
    module: ModuleType  # the task module, for predict_loaded
    chunk: int | None = None  # texts per call (CPU_CHUNK on a CPU); None: all at once
    loaded_at: float = field(default_factory=time.time)

    def predict(self, texts: list[str], top_k: int) -> list[dict[str, Any]]:
        """The task's predictions, one dict per text, in order (ml.tasks.contract's
        predict_loaded), run in chunks of texts of similar length (by characters)."""
        if self.chunk is None or len(texts) <= self.chunk:
            return self.module.predict_loaded(self.loaded, texts, top_k)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[dict[str, Any]] = [{}] * len(texts)
        for start in range(0, len(order), self.chunk):
            picked = order[start : start + self.chunk]
            answers = self.module.predict_loaded(self.loaded, [texts[i] for i in picked], top_k)
            for i, answer in zip(picked, answers, strict=True):
                out[i] = answer
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "task": self.task,
            "runtime": self.runtime,
            "artifact_sha256": self.sha256,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        }


def load_served(version: VersionInfo, cfg: Settings, runtime: str, threads: int) -> ServedModel:
    """`version` loaded and warmed up. Raises what loading raises (load_errors())."""
    from ml.artifact.store import fetch_registered
    from ml.tasks.contract import UnknownTaskError, task_module

    artifact, task = fetch_registered(version.artifact_uri, version.artifact_sha256, cfg.cache)
    if task != version.task_type:
        raise UnknownTaskError(
            f"{version.model}:{version.version} is registered as a {version.task_type!r} model "
            f"but its artifact is a {task!r} model"
        )
    module = task_module(task)
    loaded = module.load(artifact, version.artifact_sha256)
    on_cpu = next(loaded.model.parameters()).device.type == "cpu"
    used = use_runtime(loaded, artifact, runtime, threads)
    served = ServedModel(
        version.model,
        version.version,
        task,
        version.artifact_sha256,
        used,
        loaded,
        module,
        CPU_CHUNK if on_cpu else None,
    )
    served.predict([WARM_UP], 1)
    return served


def load_errors() -> tuple[type[Exception], ...]:
    """What loading a registered version raises for a reason an operator can act on (the CLI's
    predict refuses the same); anything else is a bug and is raised as it is."""
    from ml.artifact.integrity import ArtifactIntegrityError
    from ml.registry.errors import RegistryError
    from ml.tasks.contract import UnknownTaskError

    return (RegistryError, ArtifactIntegrityError, UnknownTaskError, ValueError, OSError)

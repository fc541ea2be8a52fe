"""How a served model computes: torch (a GPU when present), or on a CPU the ONNX Runtime graph
with int8 weights its artifact carries (ml.artifact.optimised), chosen by
INTENTFLOW_SERVE_RUNTIME (ml.config.serve_settings).

The ONNX graph stands in for the transformers model inside the task's loaded object (its
`.model`), so the task's own tokenisation, batching and decoding run unchanged: the service
answers exactly what `intentflow predict` answers, up to int8 rounding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ml.artifact.optimised import ONNX_FILE

log = logging.getLogger(__name__)

TORCH = "torch"
ONNX_INT8 = "onnx-int8"


def set_threads(threads: int) -> None:
    """CPU threads of this process's inference (torch; ONNX sessions take theirs when made)."""
    import torch

    torch.set_num_threads(threads)


def use_runtime(loaded: Any, artifact: Path, runtime: str, threads: int) -> str:
    """Put `loaded` (a task's loaded model, holding the transformers model as `.model`) on
    `runtime` where it applies; returns the runtime it runs on: torch on a GPU host, or when
    the artifact has no ONNX form (trained before it, or with INTENTFLOW_ONNX_EXPORT=off)."""
    onnx = Path(artifact) / ONNX_FILE
    if runtime != ONNX_INT8:
        return TORCH
    device = next(loaded.model.parameters()).device
    if device.type != "cpu":
        return TORCH
    if not onnx.is_file():
        log.warning("artifact %s has no %s: served by torch", artifact, ONNX_FILE)
        return TORCH
    detector = getattr(loaded, "detector", None)
    if detector is not None and detector.needs_features:
        # The graph gives logits only; a mahalanobis out-of-scope score needs the encoder's
        # hidden states (ml.tasks.intent.out_of_scope).
        log.warning(
            "artifact %s scores out of scope by %s: served by torch", artifact, detector.method
        )
        return TORCH
    # The artifact's hash was verified by the task's load, this file with it.
    loaded.model = OnnxModel(onnx, loaded.model.config, threads)
    return ONNX_INT8


class OnnxModel:
    """An ONNX Runtime session answering as a transformers model does where the tasks call it:
    `model(**batch)` with `.logits` / `.last_hidden_state`, `.config`, `.parameters()` (for
    the device), `.eval()`."""

    def __init__(self, path: Path, config: Any, threads: int) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning, as torch's do (ml/threads.py): spinning
        # doubled the CPU a batch took beside busy neighbours (bench/README.md, "serving").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = config
        self._device_marker = torch.zeros(0)

    def __call__(self, **batch: Any) -> SimpleNamespace:
        import torch

        feed = {name: batch[name].cpu().numpy() for name in self.inputs}
        out = torch.from_numpy(self.session.run(None, feed)[0])
        return SimpleNamespace(logits=out, last_hidden_state=out)

    def parameters(self) -> Any:
        return iter([self._device_marker])

    def eval(self) -> OnnxModel:
        return self

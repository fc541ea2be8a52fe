"""The optimised CPU form of a model, written into its artifact: an ONNX graph with int8 weights.

Why this form (bench/serve.py on Banking77, bench/README.md "serving"): ONNX Runtime with int8
weights quantised per channel keeps test accuracy within 0.2 point of the torch weights and
takes 2-4x less CPU a call; torch's own dynamic int8 quantisation lost 0.3-0.7 point, saved
less and is deprecated (torch.ao.quantization).

Why at training time: the file lies inside the artifact folder before it is hashed, so the
sha256 the registry records covers it and every load verifies it with the weights
(ml.artifact.integrity). A file added after registration would break that hash, and a
separately kept one would need a hash of its own somewhere trusted; this needs neither.

INTENTFLOW_ONNX_EXPORT=off skips it (the artifact is then served by torch). The export never
fails a training: an architecture the exporter cannot trace is logged and served by torch.

torch, onnx and onnxruntime are imported inside the function (DAG files import this package).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# In the artifact folder: the graph's inputs are the tokenizer's model_input_names, its one
# output (named OUTPUT) the model's first (logits, or the token states of an encoder).
ONNX_FILE = "model.int8.onnx"
OUTPUT = "output"
# The opset the graph is written in (ONNX Runtime 1.32 runs up to 23).
OPSET = 18


def write_onnx(staging: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Write ONNX_FILE into `staging` (an artifact being written); False, with a warning,
    when the export is switched off or the model cannot be exported."""
    from ml.config import onnx_export

    if not onnx_export():
        return False
    try:
        _export(Path(staging) / ONNX_FILE, model, tokenizer)
    except Exception as exc:  # an optional form: torch serves the artifact without it
        log.warning("no ONNX form written (served by torch instead): %s", exc)
        (Path(staging) / ONNX_FILE).unlink(missing_ok=True)
        return False
    return True


def _export(path: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    import copy

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = list(tokenizer.model_input_names)
    # A CPU fp32 copy: training may have left the model on a GPU.
    cpu = copy.deepcopy(model).to("cpu", dtype=torch.float32).eval()
    example = tokenizer(["an example", "a longer example of a message"], padding=True)
    args = tuple(torch.tensor(example[name]) for name in names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with tempfile.TemporaryDirectory(prefix="intentflow-onnx-") as tmp, _quiet():
        fp32 = Path(tmp) / "model.onnx"
        program = torch.onnx.export(
            _first_output(cpu, names).eval(),
            args,
            dynamo=True,
            input_names=names,
            output_names=[OUTPUT],
            # One entry: forward(*inputs) takes the inputs as one tuple.
            dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
        program.save(str(fp32))
        # Per-channel int8 weights: on Banking77 per-tensor scales cost 0.1 point more.
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's and quantiser's advice (warnings, log lines) off a training's log: none
    of it is about this model."""
    advice = logging.Filter("intentflow.quiet")
    advice.filter = lambda record: not record.getMessage().startswith("Please consider")  # type: ignore[method-assign]
    root, exporter = logging.getLogger(), logging.getLogger("torch.onnx")
    level = exporter.level
    root.addFilter(advice)
    exporter.setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(advice)
        exporter.setLevel(level)


def _first_output(model: Any, names: list[str]) -> Any:
    """`model` as a module of positional tensors (the tokenizer's order, as the exporter traces
    them) returning its first output."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True)))[0]

    return FirstOutput()

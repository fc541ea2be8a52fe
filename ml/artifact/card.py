"""Model cards as the Hugging Face Hub reads them: huggingface_hub.ModelCard, its YAML header
with the model-index metadata (the metrics per split: validation, and test when the snapshot
has one), then the task's own text.

Each task writes its card's body; this gives it the header every tool (the Hub, `evaluate`,
model registries) parses, so its figures need no scraping from Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The Hub's pipeline tag (and model-index task type) of each of our task types.
PIPELINE_TAGS = {
    "intent": "text-classification",
    "entities": "token-classification",
    "answers": "sentence-similarity",
}


def model_card(
    body: str,
    *,
    task: str,
    base_model: str | None,
    snapshot_hash: str | None,
    metrics: Sequence[str],
    validation: dict[str, Any],
    test: dict[str, Any] | None,
) -> str:
    """The card's text: the YAML header (model-index with one entry per split, validation and
    test, and each of `metrics` the split has) and `body`.

    Only numbers are recorded; a split without rows (n == 0) or not scored is left out."""
    results = {
        split: {k: m[k] for k in metrics if k in m}
        for split, m in (("validation", validation), ("test", test))
        if m
    }
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    tag = PIPELINE_TAGS[task]
    dataset = f"intentflow snapshot {snapshot_hash or 'unknown'}"
    evals = [
        EvalResult(
            task_type=tag,
            dataset_type="intentflow-snapshot",
            dataset_name=dataset,
            dataset_split=split,
            metric_type=name,
            metric_value=float(value),
        )
        for split, metrics in results.items()
        if metrics and metrics.get("n", 1)
        for name, value in metrics.items()
        if name != "n" and isinstance(value, int | float) and not isinstance(value, bool)
    ]
    data = ModelCardData(
        model_name=f"intentflow-{task}",
        # The checkpoint's folder name: its local path says nothing to a reader elsewhere.
        base_model=Path(base_model).name if base_model else None,
        library_name="transformers",
        pipeline_tag=tag,
        tags=["intentflow", task],
        eval_results=evals or None,
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}"))


def card_results(card_text: str) -> dict[str, dict[str, float]]:
    """The metrics per split read back from a card's model-index (tests, reports)."""
    from huggingface_hub import ModelCard

    found: dict[str, dict[str, float]] = {}
    for result in ModelCard(card_text).data.eval_results or []:
        found.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    return found

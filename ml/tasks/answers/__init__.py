"""The `answers` task type: rank approved agent replies from an answer bank for a customer message.

The contract of ml.tasks.contract over the modules that implement it:

- data: question → answer pairs of a source frozen as a snapshot, split by question group,
  bad records quarantined (build_dataset);
- bank: the deduplicated answer bank and its content ids;
- model: the bi-encoder (mean-pooled, L2-normalised embeddings) and the Retriever that ranks
  an artifact's stored bank (predict);
- metrics: MRR and recall@k of the gold answer and of the query's intent (PROMOTION_METRIC);
- train: in-batch-negatives fine-tuning and the artifact (fine_tune);
- evaluation: an artifact against a labeled set, with per-query latency (evaluate).

torch and transformers are imported inside functions (DAG parse time).
"""

from __future__ import annotations

from ml.tasks.answers.data import build_dataset
from ml.tasks.answers.evaluation import evaluate
from ml.tasks.answers.metrics import PROMOTION_METRIC
from ml.tasks.answers.model import TASK, load, predict, predict_loaded
from ml.tasks.answers.train import fine_tune

__all__ = [
    "PROMOTION_METRIC",
    "TASK",
    "build_dataset",
    "evaluate",
    "fine_tune",
    "predict",
    "load",
    "predict_loaded",
]

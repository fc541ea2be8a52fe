"""The `entities` task type: BIO tagging of order ids, invoice ids, account types, person names,
cities, countries and amounts in customer turns, on a BERT token-classification head.

This module is the task contract of ml.tasks.contract; the task itself lives in:

- spans: the entity types, character spans and their checks, BIO tags on word pieces, decoding;
- data: the labeled sources (Bitext spans, ABCD weak labels) frozen into a snapshot, with the
  records that fail a check quarantined (never the lake: its transcripts are PII-redacted);
- metrics: entity-level exact-span precision/recall/F1 and the promotion metric;
- model: the tagger an artifact loads into, and predict;
- train: the entities training config, fine_tune (ml.training.loop's loop) and the model card;
- evaluate: span metrics and latency of an artifact on a split.
"""

from __future__ import annotations

from ml.tasks.entities.data import build_dataset
from ml.tasks.entities.evaluation import evaluate
from ml.tasks.entities.metrics import PROMOTION_METRIC
from ml.tasks.entities.model import TASK, load, predict, predict_loaded
from ml.tasks.entities.train import fine_tune

__all__ = [
    "TASK",
    "PROMOTION_METRIC",
    "build_dataset",
    "fine_tune",
    "evaluate",
    "predict",
    "load",
    "predict_loaded",
]

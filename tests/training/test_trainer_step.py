"""The Trainer's step as ml.training.loop sets it up (#21).

Gradient clipping: the fused AdamW divides the gradients by the clipping factor as it steps
(LoopTrainer._clip_grad_norm) instead of the Trainer rewriting them first; the update must be
the Trainer's own clipping, and the clipping must bind."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from ml.tasks.intent.train import TrainConfig
from ml.training.loop import LoopTask, train_epochs

TEXTS = {
    0: ["my card is lost", "i lost my card today", "lost card please help"],
    1: ["i want a refund", "refund my payment please", "where is my refund"],
    2: ["reset my password", "forgot password help", "password reset link please"],
}


class _Split:
    def __init__(self, tokenizer: Any) -> None:
        self.rows = [
            {**tokenizer(text), "labels": label} for label, texts in TEXTS.items() for text in texts
        ] * 4
        self.lengths = [len(r["input_ids"]) for r in self.rows]

    def examples(self, ids: list[int]) -> list[dict[str, Any]]:
        return [self.rows[i] for i in ids]


def _loop(tokenizer: Any, validation_seconds: float = 0.0) -> LoopTask:
    from transformers import DataCollatorWithPadding

    def validate(model: Any) -> dict[str, Any]:
        time.sleep(validation_seconds)
        return {"n": 0, "accuracy": 0.0}

    return LoopTask(
        collate=DataCollatorWithPadding(tokenizer), validate=validate, metric="accuracy"
    )


def _train(model: Any, split: _Split, config: TrainConfig, tokenizer: Any) -> dict[str, Any]:
    model = copy.deepcopy(model)
    train_epochs(model, split, config, _loop(tokenizer))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _config(tiny_bert_dir: Path, **changes: Any) -> TrainConfig:
    config = TrainConfig(
        base_model=str(tiny_bert_dir),
        epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        label_smoothing=0.0,
        num_threads=1,
        early_stopping_patience=None,
    )
    return dataclasses.replace(config, **changes)


def test_the_fused_clipping_is_the_trainers_and_binds(tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    split = _Split(tokenizer)
    # max_grad_norm far below the tiny model's gradient norms: every step clips.
    config = _config(tiny_bert_dir, max_grad_norm=0.05)
    fused = _train(model, split, config, tokenizer)
    # The Trainer's clipping (norm, then every gradient rewritten) before an unfused AdamW.
    trainers = _train(
        model, split, dataclasses.replace(config, trainer_args={"optim": "adamw_torch"}), tokenizer
    )
    unclipped = _train(model, split, dataclasses.replace(config, max_grad_norm=1e6), tokenizer)
    for name, weights in fused.items():
        assert torch.allclose(weights, trainers[name], atol=1e-5), name
    moved = max((fused[k] - unclipped[k]).abs().max().item() for k in fused)
    assert moved > 1e-3, "clipping changed nothing: it did not bind"


def test_samples_per_second_times_the_training_not_the_validation(tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    split = _Split(tokenizer)
    # 2 epochs of 36 examples (a few seconds on a busy CPU); a 5 s validation after each.
    outcome = train_epochs(model, split, _config(tiny_bert_dir), _loop(tokenizer, 5.0))
    seconds = 2 * len(split.lengths) / outcome.samples_per_second
    assert seconds < 10.0, f"{seconds:.1f} s timed: the validations' 10 s were counted"


def test_the_kept_epoch_is_the_lowest_loss_when_lower_is_better(tiny_bert_dir: Path) -> None:
    """A scripted validation figure by epoch; the kept weights must be that epoch's."""
    from transformers import AutoTokenizer, BertForSequenceClassification, DataCollatorWithPadding

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    base = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    figures = [0.9, 0.4, 0.6]  # by epoch: the lowest is epoch 2, the highest epoch 1

    def kept(greater_is_better: bool) -> tuple[int, bool]:
        model = copy.deepcopy(base)
        seen: list[torch.Tensor] = []

        def validate(m: Any) -> dict[str, Any]:
            seen.append(m.classifier.weight.detach().clone())
            return {"n": 9, "loss": figures[len(seen) - 1]}

        loop = LoopTask(
            collate=DataCollatorWithPadding(tokenizer),
            validate=validate,
            metric="loss",
            greater_is_better=greater_is_better,
        )
        outcome = train_epochs(model, _Split(tokenizer), _config(tiny_bert_dir, epochs=3), loop)
        weights = seen[outcome.best_epoch - 1]
        return outcome.best_epoch, torch.equal(model.classifier.weight, weights)

    assert kept(greater_is_better=False) == (2, True)
    assert kept(greater_is_better=True) == (1, True)

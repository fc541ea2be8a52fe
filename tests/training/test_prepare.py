"""The preparation every task's fine_tune starts with (ml.training.prepare), on the tiny BERT
checkpoint and a real snapshot; each task's own tests train through it end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from ml.tasks.answers.train import AnswersConfig
from ml.tasks.intent.train import TrainConfig
from ml.threads import available_cpus
from ml.training.prepare import prepare, resolve_base_model

MakeSnapshot = Callable[..., Path]


def test_prepare_reads_the_snapshot_checks_the_base_model_and_sets_threads_and_seed(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    snapshot = make_snapshot(n_per_label=4)
    config = replace(tiny_train_config, num_threads=2, max_length=4096, seed=11)
    threads_before = torch.get_num_threads()

    with prepare(snapshot, tmp_path / "model", config, head="sequence-classification") as run:
        assert torch.get_num_threads() == 2
        first = torch.rand(3)
        time.sleep(0.01)
        max_positions = AutoConfig.from_pretrained(run.base_model).max_position_embeddings
        resolved = run.resolve(config, max_positions)

    assert torch.get_num_threads() == threads_before  # restored after the block
    assert run.snapshot == json.loads((snapshot / "snapshot.json").read_text())
    assert run.base_model == str(Path(tiny_train_config.base_model or "").absolute())
    assert run.threads == 2 and run.world.size == 1 and run.world.main
    assert run.wall_seconds() >= 0.01
    # The config as trained: what train_config.json records.
    assert resolved == replace(config, base_model=run.base_model, num_threads=2, max_length=128)
    assert isinstance(resolved, TrainConfig)
    assert not (tmp_path / "model").exists()  # preparing writes nothing

    with prepare(snapshot, tmp_path / "model", config, head="sequence-classification"):
        assert torch.equal(torch.rand(3), first)  # same seed, same draws


def test_resolve_caps_a_task_s_other_lengths_too(
    make_snapshot: MakeSnapshot, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    config = AnswersConfig(base_model=str(tiny_bert_dir), num_threads=1, answer_max_length=512)
    with prepare(make_snapshot(), tmp_path / "model", config, head="feature-extraction") as run:
        resolved = run.resolve(config, 128, answer_max_length=min(config.answer_max_length, 128))
    assert (resolved.max_length, resolved.answer_max_length) == (min(config.max_length, 128), 128)
    assert resolved.num_threads == 1 and resolved.base_model == str(tiny_bert_dir.absolute())


def test_threads_default_to_the_cpus_this_process_may_use(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    config = replace(tiny_train_config, num_threads=None)
    with prepare(make_snapshot(), tmp_path / "model", config, "sequence-classification") as run:
        assert run.threads == available_cpus() == torch.get_num_threads()


def test_a_non_empty_out_dir_or_a_missing_snapshot_is_refused_before_the_block(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    entered: list[Any] = []
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("a previous run")
    with pytest.raises(FileExistsError, match="not empty"):
        with prepare(make_snapshot(), out, tiny_train_config, "sequence-classification") as run:
            entered.append(run)
    with pytest.raises(FileNotFoundError, match="snapshot.json"):
        with prepare(
            tmp_path / "nowhere", tmp_path / "new", tiny_train_config, "token-classification"
        ) as run:
            entered.append(run)
    assert entered == []


def test_the_base_model_must_be_a_local_safetensors_checkpoint_with_the_task_s_head(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    from transformers import CLIPVisionConfig

    for head in ("sequence-classification", "token-classification", "feature-extraction"):
        assert resolve_base_model(str(tiny_bert_dir), head) == str(tiny_bert_dir.absolute())

    # A real config of an image encoder: a bare encoder (answers), but no text-classifier head.
    vision = tmp_path / "vision"
    CLIPVisionConfig().save_pretrained(vision)
    (vision / "model.safetensors").write_bytes(b"")
    assert resolve_base_model(str(vision), "feature-extraction") == str(vision.absolute())
    for head in ("sequence-classification", "token-classification"):
        with pytest.raises(ValueError, match=f"no {head} head"):
            resolve_base_model(str(vision), head)

    (vision / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="no .safetensors weights"):
        resolve_base_model(str(vision), "feature-extraction")
    (vision / "config.json").unlink()
    with pytest.raises(ValueError, match="no config.json"):
        resolve_base_model(str(vision), "feature-extraction")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_base_model(str(tmp_path / "missing"), "feature-extraction")

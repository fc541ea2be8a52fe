"""Shared fixtures. Tests never touch the network: Hugging Face is forced offline at import."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

# Before anything imports transformers / huggingface_hub, which read these once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# Each training's ONNX export (ml.artifact.optimised) takes seconds even for the tiny BERT:
# off unless a test asks for it; the pipeline state's artifacts (tests/pipeline_state.py),
# which the service tests serve, carry it.
os.environ["INTENTFLOW_ONNX_EXPORT"] = "off"

# Airflow reads its configuration once, at import: point it at a throwaway home (SQLite
# metadata) and this repository's dags/ before any test imports it.
REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="intentflow-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Each test parses the DAGs against its own INTENTFLOW_HOME (the `transcripts` Asset's URI is its
# lake): a serialized DAG must not be kept for 30 s from an earlier test's parse.
os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] = "0"
os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
# dag.test() of Airflow 3.3.2 fails a successful run of a DAG with a Deadline Alert (it looks
# the alerts up by their serialized form): the retrain DAGs' alert is off unless a test sets
# it (tests/dags/test_operations.py runs it under a real scheduler).
os.environ["INTENTFLOW_RETRAIN_DEADLINE_MINUTES"] = "0"

# Under CI a skip other than the CUDA ones fails its test (tests/ci.py).
# alert_receiver: the `receiver` fixture (alert tests).
# Fixtures of the feedback and monitoring tests: plugins, not conftest.py files in their folders
# (a second module named `conftest` would shadow this one for `from conftest import ...`).
pytest_plugins = ("ci", "alert_receiver", "feedback_fixtures", "monitoring_fixtures")

from pipeline_state import HOME_ENV  # noqa: E402 (after the settings above)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) with the `gpu` pool the retrain DAG uses."""
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], check=True, capture_output=True)
    subprocess.run(
        [*airflow, "pools", "set", "gpu", "1", "fine-tuning"], check=True, capture_output=True
    )
    return AIRFLOW_HOME


@pytest.fixture(autouse=True)
def _assets_of_this_test(request: pytest.FixtureRequest) -> None:
    """A test that runs DAGs has a lake of its own, so a `transcripts` Asset with its own URI:
    the metadata DB's earlier ones (other tests' lakes) are retired first, as a scheduler
    retires an asset no DAG refers to any more; else Airflow keeps the first one active and
    refuses the new one in a task's outlets."""
    if "airflow_db" not in request.fixturenames:
        return
    request.getfixturevalue("airflow_db")
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    # dag.test() activates an asset only when it creates it: earlier tests' go, rows and all.
    with create_session() as session:
        session.execute(delete(AssetActive))
        session.execute(delete(AssetModel))


@pytest.fixture
def intentflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh INTENTFLOW_HOME (lake, registry, artifacts) for one test."""
    home = tmp_path / "intentflow"
    monkeypatch.setenv("INTENTFLOW_HOME", str(home))
    for name in HOME_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def task_versions(
    intentflow_home: Path,
    pipeline_state: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, dict]:
    """The `intent`, `entities` and `answers` models (the default models' names and task
    types) as real retrains and `intentflow train --data` registered them
    (tests/pipeline_state.py): model -> test metrics of its latest version. Settings point at
    that state, with a private copy of its registry."""
    from pipeline_state import use_state

    from ml.registry.store import Registry

    use_state(pipeline_state, tmp_path / "task-versions", monkeypatch)
    with Registry(pipeline_state.registry_url) as registry:
        latest = {v.model: v for v in registry.list_versions()}
    return {task: latest[task].metrics["test"] for task in ("intent", "entities", "answers")}


# --- models ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT (~1M params, mostly embeddings) plus the MiniLM tokenizer.

    Same architecture family and tokenizer as the real base model, so training code paths are
    identical, but a training step takes milliseconds.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ml.config import default_base_model

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_base_model())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)  # the same tiny model in every session
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def pipeline_state(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A pipeline_state.PipelineState: what real ingests and retrains (tiny BERT) wrote, built
    once per session. Read-only: tests that change the registry use registry_copy()."""
    from pipeline_state import build

    return build(tmp_path_factory.mktemp("pipeline") / "intentflow", tiny_bert_dir)


# --- data ------------------------------------------------------------------------------------

DEFAULT_LABELS = ("lost_card", "refund_request", "password_reset")
# Filler shared by every label, so the model has to find the label's own words.
NOISE_WORDS = "hello please help i need my the today thanks again with an issue about it".split()
SPLIT_SIZES = {"train": 1.0, "validation": 0.5, "test": 0.5}  # relative to n_per_label


def _text_for(label: str, rng: random.Random) -> str:
    """Easy to learn: the label's words (e.g. `lost`, `card`) among shared filler words."""
    words = label.split("_") + rng.sample(NOISE_WORDS, k=rng.randint(2, 6))
    rng.shuffle(words)
    return " ".join(words)


def _id_in(split: str, base: str) -> str:
    """An id `base-k` that ml.snapshots.writer's split rule puts in `split`."""
    from ml.snapshots.writer import split_of

    return next(f"{base}-{k}" for k in range(10_000) if split_of(f"{base}-{k}") == split)


def write_snapshot(
    folder: Path,
    labels: Sequence[str] = DEFAULT_LABELS,
    n_per_label: int = 16,
    extra_eval_labels: Sequence[str] = (),
    seed: int = 0,
) -> Path:
    """A snapshot written by ml.snapshots.writer itself (snapshot_from_file) from a labeled JSONL file in
    `folder`; returns the snapshot's folder. Ids are picked so that its split rule gives each
    label `n_per_label` train rows and half as many (at least one) validation and test rows.

    `extra_eval_labels` appear in validation and test only (a label the model never saw).
    """
    from ml.snapshots.labeled import snapshot_from_file

    rng = random.Random(seed)
    rows = []
    for split, share in SPLIT_SIZES.items():
        split_labels = list(labels) + (list(extra_eval_labels) if split != "train" else [])
        n = n_per_label if split == "train" else max(round(n_per_label * share), 1)
        rows += [
            {
                "conversation_id": _id_in(split, f"{split}-{label}-{i}"),
                "text": _text_for(label, rng),
                "intent": label,
            }
            for label in split_labels
            for i in range(n)
        ]
    rng.shuffle(rows)
    folder.mkdir(parents=True)
    source = folder / "labeled.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return Path(snapshot_from_file(source, folder)["path"])


@pytest.fixture
def make_snapshot(tmp_path: Path) -> Callable[..., Path]:
    """make_snapshot(labels=..., n_per_label=..., extra_eval_labels=..., seed=...) -> snapshot dir."""
    made = 0

    def make(**kwargs: Any) -> Path:
        nonlocal made
        made += 1
        return write_snapshot(tmp_path / f"snapshot-{made}", **kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_train_config(tiny_bert_dir: Path) -> Any:
    """A TrainConfig for the tiny BERT; derive variants with dataclasses.replace, never mutate."""
    from ml.tasks.intent.train import TrainConfig

    return TrainConfig(
        base_model=str(tiny_bert_dir),
        epochs=6,
        learning_rate=3e-3,  # high: the tiny model's weights start from noise
        batch_size=8,
        warmup_ratio=0.0,
        num_threads=1,  # tiny matrices gain nothing from threads; leave a core to the rest
        early_stopping_patience=None,  # tests expect every epoch to run unless they say so
    )


@pytest.fixture(scope="session")
def tiny_artifact(
    tiny_train_config: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """fine_tune's result for the tiny BERT on a small snapshot with a label unseen in training.

    Trained once per session, plus "snapshot_dir"; treat the artifact directory as read-only.
    """
    from dataclasses import replace

    from ml.tasks.intent.train import fine_tune

    root = tmp_path_factory.mktemp("tiny-artifact")
    # Seed 3, 10 epochs: the tiny BERT learns the three labels (validation accuracy 0.75, the
    # most with the unseen label, from epoch 7, validation loss still falling at 10); after 6
    # it is still at 0.5 with the loss at 0.9 of the 1.1 of chance.
    snapshot = write_snapshot(
        root / "snapshot", n_per_label=24, extra_eval_labels=("other",), seed=3
    )
    result = fine_tune(snapshot, root / "model", replace(tiny_train_config, epochs=10))
    return {**result, "snapshot_dir": snapshot}


# --- entity data (Bitext's CSV shape) ---------------------------------------------------------

BITEXT_FIELDS = [
    "instruction",
    "intent",
    "entity_type",
    "entity_value",
    "start_offset",
    "end_offset",
]
TEMPLATES = [
    ("cancel order {}", "order_id", lambda r: str(r.randint(10**7, 10**10))),
    ("where is my purchase {} please", "order_id", lambda r: str(r.randint(10**7, 10**10))),
    ("check invoice {}", "invoice_id", lambda r: f"#{r.randint(10000, 99999)}"),
    (
        "I need the bill from {}",
        "person_name",
        lambda r: r.choice(["Mr. Jones", "Ms. Lee", "Ana Ruiz"]),
    ),
    ("do you ship to {}", "delivery_city", lambda r: r.choice(["Valencia", "Toronto", "Seattle"])),
    (
        "can I order from {} now",
        "delivery_country",
        lambda r: r.choice(["Canada", "Mexico", "Spain"]),
    ),
    ("open a {} account", "account_type", lambda r: r.choice(["gold", "platinum", "free"])),
    ("refund ${} to me", "refund_amount", lambda r: str(r.randint(2, 900))),
    ("i want to talk to a person", "", None),
]


OPENERS = ["", "hi", "hello there", "please", "hey, can you", "I need to", "help me", "urgent:"]
CLOSERS = ["", "thanks", "asap", "please help", "ok?", "today", "thank you so much"]


def _write_bitext(path: Path, n: int, seed: int = 0, broken: bool = True) -> int:
    """A Bitext-shaped CSV of `n` good rows (+3 broken ones); returns the broken count."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        template, kind, value = TEMPLATES[i % len(TEMPLATES)]
        # Many phrasings per template, as in Bitext, so a split by template has every split.
        template = f"{rng.choice(OPENERS)} {template} {rng.choice(CLOSERS)}".strip()
        if value is None:
            rows.append({"instruction": template, "intent": "x", "entity_type": ""})
            continue
        v = value(rng)
        text = template.format(v)
        start = text.index(v)
        rows.append(
            {
                "instruction": text,
                "intent": "x",
                "entity_type": kind,
                "entity_value": v,
                "start_offset": start,
                "end_offset": start + len(v),
            }
        )
    bad = [
        {
            "instruction": "track order 3707955617",
            "entity_type": "order_id",
            "start_offset": 12,
            "end_offset": 24,
        },
        {
            "instruction": "see order113542617735902",
            "entity_type": "order_id",
            "start_offset": 9,
            "end_offset": 24,
        },
        {
            "instruction": "refund $1",
            "entity_type": "refund_amount",
            "start_offset": "x",
            "end_offset": 9,
        },
    ]
    if broken:
        rows[3:3] = bad
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, BITEXT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(bad) if broken else 0


@pytest.fixture
def write_bitext() -> Callable[..., int]:
    """write_bitext(path, n, seed=0, broken=True) -> broken rows written (Bitext-shaped CSV)."""
    return _write_bitext

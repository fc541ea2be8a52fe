"""What a real ingest and retrain leave in INTENTFLOW_HOME, made by the pipeline's own code.

Built once per session (conftest's `pipeline_state`) on tiny synthetic data: `ml.synthetic.generate`
drops, `ml.ingest.steps.ingest_day` for each day (the last one, a feed that shrank, is rejected by
the volume expectation and never published), the retrain steps the DAG runs (snapshot →
fine_tune on the tiny BERT → evaluate → register → promote) twice, and `intentflow train
--data` on labeled files (FILE_MODEL, an intent model; the entities and answers models).
Tests that read pipeline outputs (the registry page, the CLI) use it instead of hand-made
reports, manifests and registry rows.

The registry, lake, reports and artifacts hold absolute paths into this home, so it cannot be
moved: tests read its files as they are and mutate only a copy of the registry
(`registry_copy`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

START = date(2026, 11, 20)
PUBLISHED_DAYS = 3  # enough history for the volume expectation to apply to the next day
PER_DAY = 40
SHRUNK_DAY = 6  # fewer than half the trailing mean: the volume expectation fails
RUN_PARAMS = {"epochs": 1, "learning_rate": 3e-3, "num_threads": 1}
BATCH_SIZES = {1: 16, 2: 8}  # intent version -> its run's batch size: a param that differs
# The configured promotion policy (INTENTFLOW_PROMOTION_*), for tiny data: a first version is
# trusted on a test split of a handful of rows; a later one must gain a whole point of its
# metric, which it cannot, so it stays challenger whatever the tiny model scores.
PROMOTION_ENV = {
    "INTENTFLOW_PROMOTION_MIN_TEST_SIZE": "1",
    "INTENTFLOW_PROMOTION_MIN_IMPROVEMENT": "1",
}
FILE_MODEL = "faq"  # an unconfigured intent model trained from a file
FILE_LABELS = {"lost_card": "lost card stolen", "refund_request": "refund money back"}
# Question and reply templates of the answers model's file, one reply family per intent.
ANSWER_TOPICS = {
    "track_order": ("where is my order {n}", "Your parcel {n} ships from our depot tomorrow."),
    "get_refund": ("i want my money back for {n}", "A refund for {n} reaches your card in days."),
    "reset_password": ("cannot log in account {n}", "Reset the password of {n} on the login page."),
}
ANSWER_PHRASINGS = ["", "please ", "hi, ", "urgent: ", "hello, ", "help "]
# Settings a test's fresh INTENTFLOW_HOME starts without (conftest's intentflow_home).
# Storage and model-file settings stay: fixtures that use intentflow_home set them first.
HOME_ENV = (
    "INTENTFLOW_REGISTRY_URL",
    "INTENTFLOW_SOURCE",
    "INTENTFLOW_SOURCES_FILE",
    "INTENTFLOW_SOURCE_ROOTS",
    "INTENTFLOW_BASE_MODEL",
    "INTENTFLOW_LABELS",
    "AIRFLOW_CONN_INTENTFLOW_REGISTRY",
    "INTENTFLOW_PROMOTION_METRIC",
    "INTENTFLOW_PROMOTION_MIN_IMPROVEMENT",
    "INTENTFLOW_PROMOTION_MAX_CLASS_REGRESSION",
    "INTENTFLOW_PROMOTION_MIN_TEST_SIZE",
    "INTENTFLOW_PROMOTION_MIN_CLASS_SUPPORT",
    "INTENTFLOW_REQUIRE_GPU",
)
# What a test run may have set that would change where or how the pipeline writes.
INTENTFLOW_ENV = (
    *HOME_ENV,
    "INTENTFLOW_MODELS_FILE",
    "INTENTFLOW_MODEL_NAME",
    "INTENTFLOW_DATA_URL",
    "INTENTFLOW_ARTIFACTS_URL",
    "INTENTFLOW_GOLDEN_SETS",
)


@dataclass(frozen=True)
class PipelineState:
    home: Path
    published: tuple[date, ...]  # days in the lake, oldest first
    rejected: date  # the day the validation gate refused
    rejected_failures: tuple[str, ...]  # its failed expectations, as ingest reported them
    runs: dict[int, str]  # intent version -> the retrain run that registered it
    windows: dict[int, tuple[date, ...]]  # intent version -> the lake days it trained on
    labeled_file: Path  # what `intentflow train --data` read for FILE_MODEL:1

    @property
    def registry_url(self) -> str:
        return f"sqlite:///{self.home / 'registry.db'}"


@contextmanager
def pipeline_env(home: Path, base_model: Path | None = None) -> Iterator[None]:
    """INTENTFLOW_HOME at `home` and nothing else of a test's settings (process-wide)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in INTENTFLOW_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("INTENTFLOW_HOME", str(home))
        if base_model is not None:
            mp.setenv("INTENTFLOW_BASE_MODEL", str(base_model))
        yield


def build(home: Path, base_model: Path) -> PipelineState:
    with pipeline_env(home, base_model), pytest.MonkeyPatch.context() as mp:
        for name, value in PROMOTION_ENV.items():
            mp.setenv(name, value)
        # Artifacts as training writes them by default: with their ONNX form (tests/serving).
        mp.setenv("INTENTFLOW_ONNX_EXPORT", "on")
        published, rejected, failures = _ingest()
        runs, windows = _retrain(published)
        labeled = _train_from_file(home)
        _train_other_tasks(home)
    return PipelineState(home, published, rejected, failures, runs, windows, labeled)


def _ingest() -> tuple[tuple[date, ...], date, tuple[str, ...]]:
    from ml.config import settings
    from ml.ingest.steps import ingest_day
    from ml.ingest.validation import DataQualityError
    from ml.synthetic.generate import generate

    raw = settings().source
    generate(Path(raw), PUBLISHED_DAYS, PER_DAY, start=START)
    days = tuple(START + timedelta(days=i) for i in range(PUBLISHED_DAYS))
    for day in days:
        ingest_day(day)
    [shrunk] = generate(Path(raw), 1, SHRUNK_DAY, start=days[-1] + timedelta(days=1))
    try:
        ingest_day(shrunk.day)
    except DataQualityError as exc:
        failed = tuple(
            f"{f['expectation']}({f['column']})" if f["column"] else f["expectation"]
            for f in exc.failed
        )
    else:
        raise AssertionError(f"{shrunk.day} ({SHRUNK_DAY} rows) passed the volume expectation")
    return days, shrunk.day, failed


def _retrain(days: tuple[date, ...]) -> tuple[dict[int, str], dict[int, tuple[date, ...]]]:
    """intent:1 on the first two days, intent:2 on all three, as the retrain DAG runs them."""
    from ml.retrain import steps as retrain

    runs, windows = {}, {}
    for version, window in ((1, days[:2]), (2, days)):
        run_id = f"scheduled__{window[-1] + timedelta(days=1)}T03:00:00+00:00"
        snap = retrain.snapshot_step(window[-1], len(window))
        params = {**RUN_PARAMS, "batch_size": BATCH_SIZES[version]}
        trained = retrain.train_step(snap, params, run_id)
        evaluation = retrain.evaluate_step(snap, trained)
        lineage = {"dag_id": "intent_retrain", "run_id": run_id, "actor": "airflow:intent_retrain"}
        registered = retrain.register_step(snap, trained, evaluation, lineage)
        promoted = retrain.promote_step(registered, evaluation, actor="airflow:intent_retrain")
        expected = "champion" if version == 1 else "challenger"
        assert (promoted["version"], promoted["alias"]) == (version, expected), promoted
        runs[version], windows[version] = run_id, window
    return runs, windows


def _train(data: Path, task: str, model: str | None = None) -> None:
    """`intentflow train --data DATA --task TASK [--model MODEL]`, one epoch."""
    from typer.testing import CliRunner

    from ml.cli.main import app

    args = ["train", "--data", str(data), "--task", task, "--epochs", "1", "--batch-size", "16"]
    if task == "intent":  # a held-out test: the version is compared and promoted on it
        args += ["--test-fraction", "0.1"]
    result = CliRunner().invoke(app, [*args, *(["--model", model] if model else [])])
    assert result.exit_code == 0, result.output


def _train_from_file(home: Path) -> Path:
    """FILE_MODEL:1 (champion: the first version) from a labeled CSV."""
    labeled = home / "labeled.csv"
    rows = [
        f"{words} please {i},{label}" for label, words in FILE_LABELS.items() for i in range(30)
    ]
    labeled.write_text("text,label\n" + "\n".join(rows) + "\n")
    _train(labeled, "intent", FILE_MODEL)
    return labeled


def _train_other_tasks(home: Path) -> None:
    """entities:1 from a Bitext-shaped CSV and answers:1 from question/reply pairs."""
    import csv

    from conftest import _write_bitext

    _write_bitext(home / "entities.csv", 90, broken=False)
    _train(home / "entities.csv", "entities")
    pairs = []
    for intent, (question, reply) in ANSWER_TOPICS.items():
        for i in range(30):
            asked = ANSWER_PHRASINGS[i % len(ANSWER_PHRASINGS)] + question.format(n=1000 + i)
            start = asked.index(str(1000 + i))
            answer = reply.format(n=1000 + i) + f" Variant {i % 7}."
            pairs.append([asked, intent, start, start + 4, answer])
    with (home / "answers.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["instruction", "intent", "start_offset", "end_offset", "response"])
        writer.writerows(pairs)
    _train(home / "answers.csv", "answers")


def use_state(state: PipelineState, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point a test's settings at the state, with a private copy of its registry in `folder`."""
    for name in INTENTFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTENTFLOW_HOME", str(state.home))
    monkeypatch.setenv("INTENTFLOW_REGISTRY_URL", registry_copy(state, folder))


def registry_copy(state: PipelineState, folder: Path) -> str:
    """A private copy of the state's registry (SQLite URL) for a test that changes it."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "registry.db"
    shutil.copyfile(state.home / "registry.db", copy)
    return f"sqlite:///{copy}"

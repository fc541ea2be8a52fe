"""Golden sets of every task type through the retrain steps the DAGs run (ml.retrain.steps):
configured per model in the models file (ml.retrain.specs), any labeled file its task's
evaluate reads, scored for the challenger (and the champion), stored as `golden:NAME`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from answer_pairs import TOPICS, pairs_csv

from ml.config import ConfigError, settings
from ml.registry.store import Registry
from ml.retrain import steps
from ml.retrain.specs import ModelSpec, golden_sets, model_spec

SECRET = "zebra-4417"  # in the refused golden records: never in a report


def _entities_golden(path: Path, write_bitext: Any) -> Path:
    """Held-out spans as JSON lines with the text under `message`, and one record whose spans
    are not a list."""
    from ml.tasks.entities.data import read_examples

    source = path.with_suffix(".csv")
    write_bitext(source, 30, seed=7, broken=False)
    examples, _, _ = read_examples(str(source))
    lines = [json.dumps({"message": e["text"], "spans": e["spans"]}) for e in examples]
    lines.append(json.dumps({"message": f"order {SECRET}", "spans": SECRET}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _answers_golden(path: Path) -> Path:
    """Held-out questions as Parquet with their own column names; one without a reply."""
    rows = [
        {"question": f"hey {q.format(n=5000 + i)}", "reply": r.format(n=5000 + i), "topic": t}
        for t, (q, r) in TOPICS.items()
        for i in range(5)
    ]
    rows.append({"question": f"is {SECRET} there", "reply": None, "topic": "track_order"})
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("task", ["entities", "answers"])
def test_a_models_golden_sets_are_scored_for_any_task_type(
    task: str,
    intentflow_home: Path,
    tiny_bert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_bitext: Any,
) -> None:
    if task == "entities":
        source = tmp_path / "spans.csv"
        write_bitext(source, 90, broken=False)
        golden = {"data": str(_entities_golden(tmp_path / "held_out.jsonl", write_bitext))}
        golden["text_column"] = "message"
    else:
        source = pairs_csv(tmp_path / "pairs.csv")
        golden = {"data": str(_answers_golden(tmp_path / "faq.parquet"))}
        golden.update(text_column="question", answer_column="reply", label_column="topic")
    models = [
        {"name": "intent", "task": "intent"},
        {"name": task, "task": task, "source": str(source), "golden_sets": {"held-out": golden}},
    ]
    (tmp_path / "models.json").write_text(json.dumps(models))
    monkeypatch.setenv("INTENTFLOW_MODELS_FILE", str(tmp_path / "models.json"))
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    # Intent-labeled files, for intent models only: not this model's.
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", f"intent-only={tmp_path / 'none.csv'}")

    snapshot = steps.snapshot_step(date.today(), 7, model=task)
    params = {"epochs": 1, "batch_size": 16, "num_threads": 1}
    trained = steps.train_step(snapshot, params, "run-1", model=task)
    evaluation = steps.evaluate_step(snapshot, trained, model=task)

    assert set(evaluation["challenger_golden"]) == {"held-out"}
    scored = evaluation["challenger_golden"]["held-out"]
    assert scored["records_quarantined"] == 1
    assert scored["records_read"] == scored["n"] + 1 and scored["n"] > 0
    report = Path(evaluation["reports"]) / "challenger" / "held-out"
    [refused] = pq.read_table(report / "quarantine.parquet").to_pylist()
    assert refused["source_file"] == golden["data"] and refused["record"] == scored["records_read"]
    assert refused["raw"] == "" and SECRET not in refused["reason"]
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in report.iterdir())
    # The test split is the snapshot's own, read without the golden set's column options.
    assert evaluation["challenger"]["records_quarantined"] == 0
    if task == "answers":  # new replies: misses on the exact metrics, scored by their intent
        assert scored["gold_missing"] == scored["n"] == scored["intent_n"] == 15

    registered = steps.register_step(snapshot, trained, evaluation, {"run_id": "run-1"}, model=task)
    version = Registry(settings().registry_url).get(task, version=registered["version"])
    assert version.metrics["golden:held-out"]["records_quarantined"] == 1


def test_golden_sets_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """INTENTFLOW_GOLDEN_SETS still applies to intent models (a model's own set wins a shared
    name, with the model's options under its own); bad names and values are refused."""
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", f"regression={tmp_path / 'a.csv'}")
    intent = ModelSpec(
        "intent",
        "intent",
        options={"text_column": "message"},
        golden_sets={"regression": str(tmp_path / "b.csv"), "extra": {"data": "s3://b/x.parquet"}},
    )
    sets = golden_sets(intent)
    assert {n: (g.data, g.options) for n, g in sets.items()} == {
        "regression": (str(tmp_path / "b.csv"), {"text_column": "message"}),
        "extra": ("s3://b/x.parquet", {"text_column": "message"}),
    }
    assert golden_sets(model_spec("intent"))["regression"].data == str(tmp_path / "a.csv")
    assert golden_sets(ModelSpec("answers", "answers", source="x.csv")) == {}

    for name in ("test", "../up", "a/b", ""):
        with pytest.raises(ConfigError, match="golden set"):
            ModelSpec("x", "answers", source="x.csv", golden_sets={name: "g.csv"})
    with pytest.raises(ConfigError, match="expected a file"):
        ModelSpec("x", "answers", source="x.csv", golden_sets={"g": {"text_column": "q"}})
    # The test split keeps its name: a golden set called `test` would replace its scores.
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", "test=/data/x.csv")
    with pytest.raises(ValueError, match="split's name"):
        settings()
    # `feedback` is the snapshot's own golden set (its test split's corrections).
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", "feedback=/data/x.csv")
    with pytest.raises(ValueError, match="the snapshot's own"):
        settings()
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", "../x=/data/x.csv")
    with pytest.raises(ValueError, match="invalid golden set name"):
        settings()

"""Corrections in the lake-fed snapshot: real transcripts, predictions and feedback tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import lake
from ml.config import Settings
from ml.feedback.store import record_feedback
from ml.feedback.training import corrections, majority
from ml.retrain.steps import feedback_set
from ml.snapshots.lake_window import make_snapshot
from ml.snapshots.writer import split_of
from ml.transcript import TRANSCRIPT_SCHEMA, content_hash


def transcripts(day: date, n: int) -> pa.Table:
    rows = []
    for i in range(n):
        row = {
            "conversation_id": f"t{i}",
            "source": "t",
            "started_at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
            "channel": "chat",
            "language": "en",
            "turns": [{"speaker": "customer", "text": f"text t{i}"}],
            "intent": "refund_request",
            "text": f"text t{i}",
        }
        row["content_hash"] = content_hash(row)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=TRANSCRIPT_SCHEMA)


def fix(pid: str, label: str, agent: str = "ann") -> dict[str, Any]:
    return {"prediction_id": pid, "label": label, "agent_id": agent}


def test_majority() -> None:
    assert majority(["a"]) == "a"
    assert majority(["a", "b", "a"]) == "a"
    assert majority(["a", "b"]) is None


def test_corrections_join_the_snapshot(
    cfg: Settings, log_predictions: Callable, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    lake.write_partition(transcripts(today, 40), cfg.lake, today, {})
    plain = make_snapshot(cfg.lake, tmp_path / "s", today, 1)
    gift = log_predictions([(f"gift card question {i}", "promo_code") for i in range(60)])
    same, tie, vote = log_predictions(
        [("text t5", "refund_request"), ("tie text", "lost_card"), ("vote text", "lost_card")]
    )
    items = [fix(pid, "gift_card") for pid in gift]
    items += [fix(same, "lost_card")]  # also a transcript: the correction wins
    items += [fix(tie, "order_status", "ann"), fix(tie, "lost_card", "bob")]  # 1-1: dropped
    items += [fix(vote, "refund_request", a) for a in ("ann", "bob")] + [
        fix(vote, "lost_card", "cy")
    ]
    result = record_feedback(cfg, "intent", items, new_labels=True)
    assert result.count("rejected") == 0

    found = corrections(cfg.feedback, cfg.predictions, "intent", today)
    assert found.info["corrections"] == 62 and found.info["disagreements_dropped"] == 1
    snap = make_snapshot(cfg.lake, tmp_path / "s", today, 1, corrections=found)
    assert snap["hash"] != plain["hash"]  # corrections change the identity
    assert snap["counts"]["corrections"] == 62
    assert snap["feedback"]["transcripts_overridden"] == 1
    assert "gift_card" in snap["labels"]
    folder = Path(snap["path"])
    splits = {n: pq.read_table(folder / f"{n}.parquet") for n in ("train", "validation", "test")}
    for name, table in splits.items():  # every example in the split its key gives
        assert all(split_of(c) == name for c in table.column("conversation_id").to_pylist())
    every = pa.concat_tables(splits.values()).to_pylist()
    by_text = {r["text"]: r for r in every}
    assert by_text["text t5"]["intent"] == "lost_card"  # the correction's, once
    assert sum(r["text"] == "text t5" for r in every) == 1
    assert "tie text" not in by_text and by_text["vote text"]["intent"] == "refund_request"
    golden = pq.read_table(folder / "feedback.parquet")
    test_ids = set(splits["test"].column("conversation_id").to_pylist())
    assert golden.num_rows == snap["counts"]["feedback_test"] > 0
    assert set(golden.column("conversation_id").to_pylist()) <= test_ids
    assert set(feedback_set(folder)) == {"feedback"}

    # The same corrections: the same snapshot. One more: a new one.
    again = corrections(cfg.feedback, cfg.predictions, "intent", today)
    assert (
        make_snapshot(cfg.lake, tmp_path / "s", today, 1, corrections=again)["hash"] == snap["hash"]
    )
    record_feedback(cfg, "intent", [fix(tie, "lost_card", "cy")])  # breaks the tie
    more = corrections(cfg.feedback, cfg.predictions, "intent", today)
    assert more.info["corrections"] == 63
    assert (
        make_snapshot(cfg.lake, tmp_path / "s", today, 1, corrections=more)["hash"] != snap["hash"]
    )


def test_snapshot_step_lineage(
    cfg: Settings, log_predictions: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retrain's snapshot step reads the configured tables itself."""
    from ml.retrain.steps import snapshot_step

    today = datetime.now(UTC).date()
    lake.write_partition(transcripts(today, 20), cfg.lake, today, {})
    pids = log_predictions([(f"where is parcel {i}", "refund_request") for i in range(5)])
    record_feedback(cfg, "intent", [fix(p, "order_status") for p in pids])
    snap = snapshot_step(today, 1, cfg)
    assert snap["counts"]["corrections"] == 5
    assert snap["feedback"]["feedback_version"] == 1  # created, then one merge
    # As of a transcripts version, the feedback is read as it was when that version was
    # written: these corrections came later.
    then = snapshot_step(today, 1, cfg, as_of=snap["lake_version"])
    assert "feedback" not in then and then["hash"] != snap["hash"]
    # A version the table never had: said plainly.
    with pytest.raises(ValueError, match="has no version 99 \\(versions 0 to 1"):
        snapshot_step(today, 1, cfg, as_of=99)

    # What the register step records (ml.retrain.steps.register_step) shows in the lineage.
    from typer.testing import CliRunner

    from ml.cli.main import app
    from ml.registry.store import Registry

    with Registry(cfg.registry_url) as registry:
        registry.register_version(
            "intent",
            artifact_uri="/nowhere",
            artifact_sha256="0" * 64,
            base_model="tiny",
            data_snapshot_hash=snap["hash"],
            params={},
            lineage={"partitions": snap["partitions"], "feedback": snap["feedback"]},
            metrics={"golden:feedback": {"accuracy": 0.5}},
        )
    shown = CliRunner().invoke(app, ["registry", "lineage", "intent:1"])
    assert shown.exit_code == 0, shown.output
    assert "feedback            5 correction(s) (feedback table v1" in shown.output


def test_evaluation_scores_the_feedback_golden_set(
    cfg: Settings, tiny_artifact: dict[str, Any], tmp_path: Path
) -> None:
    """evaluate_step scores the snapshot's feedback.parquet as the golden set `feedback`."""
    import shutil

    from ml.retrain.steps import evaluate_step

    folder = tmp_path / "snapshot"
    shutil.copytree(tiny_artifact["snapshot_dir"], folder)
    test = pq.read_table(folder / "test.parquet")
    pq.write_table(test.slice(0, 4), folder / "feedback.parquet")
    run = tmp_path / "run"
    shutil.copytree(tiny_artifact["artifact_dir"], run / "model")
    trained = {
        "artifact_dir": str(run / "model"),
        "artifact_sha256": tiny_artifact["artifact_sha256"],
    }
    result = evaluate_step({"path": str(folder)}, trained, cfg, golden=False)  # type: ignore[typeddict-item]
    assert result["challenger_golden"]["feedback"]["n"] == 4
    assert 0 <= result["challenger_golden"]["feedback"]["accuracy"] <= 1


def test_a_correction_without_its_text_is_skipped(cfg: Settings, log_predictions: Callable) -> None:
    """A prediction gone from the log (erased, past retention): counted, not a failure."""
    import pyarrow.compute as pc

    from ml.serving.prediction_log import PredictionTable

    gone, kept = log_predictions([("first", "lost_card"), ("second", "lost_card")])
    record_feedback(cfg, "intent", [fix(gone, "refund_request"), fix(kept, "refund_request")])
    table = PredictionTable(cfg.predictions)
    (day,) = table.days()
    table.rewrite_day(day, lambda rows: rows.filter(pc.not_equal(rows["prediction_id"], gone)))
    found = corrections(cfg.feedback, cfg.predictions, "intent")
    assert found.rows.column("conversation_id").to_pylist() == [kept]
    assert found.info["missing_text"] == 1
    assert corrections(cfg.feedback, cfg.predictions, "other").info["corrections"] == 0

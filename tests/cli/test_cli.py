"""`intentflow` commands, run in-process through Typer's runner on real files and models."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pipeline_state import BATCH_SIZES, FILE_MODEL, PipelineState, use_state
from typer.testing import CliRunner

from ml.cli.main import app
from ml.config import settings

# pg_url (PostgreSQL) comes from tests/pg.py.
pytest_plugins = ("pg",)

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_help_lists_every_command() -> None:
    out = invoke("--help")
    for command in (
        "generate", "ingest", "train", "evaluate", "predict", "registry", "report", "erase",
    ):  # fmt: skip
        assert command in out


def test_generate_then_ingest_json(intentflow_home: Path) -> None:
    raw = intentflow_home / "raw"
    out = invoke(
        "generate", "--days", "2", "--per-day", "50", "--start", "2026-11-20", "--out", str(raw)
    )
    assert "2026-11-20" in out and "2026-11-21" in out
    result = json.loads(invoke("ingest", "--date", "2026-11-21", "--json"))
    assert result["rows_read"] == 50 == result["rows_written"] + result["rows_quarantined"]
    for key in ("partition", "quarantine_file", "validation_report"):
        assert Path(result[key]).exists()
    assert "2026-11-21" in invoke("report")


def test_ingest_of_a_day_without_data_fails_clearly(intentflow_home: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "--date", "2026-11-21", "--path", str(intentflow_home / "none")]
    )
    assert result.exit_code == 2
    assert (
        result.output.count("\n") == 1 and "error: no input files for 2026-11-21" in result.output
    )


def test_data_trains_on_the_whole_file_and_tests_only_when_asked(
    intentflow_home: Path, tiny_bert_dir: Path, labeled_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --data`: every row outside a 10% validation carve-out trains; a test split only
    with --test-fraction (held out of the file) or --test-data (another file)."""
    import pyarrow.parquet as pq

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))

    def rows(result: dict[str, Any]) -> dict[str, int]:
        version = json.loads(invoke("registry", "show", f"intent:{result['version']}", "--json"))
        snap = Path(version["lineage"]["snapshot_path"])
        return {
            s: pq.read_metadata(snap / f"{s}.parquet").num_rows
            for s in ("train", "validation", "test")
        }

    whole = json.loads(invoke("train", "--data", str(labeled_csv), "--epochs", "1", "--json"))
    counts = rows(whole)
    assert counts["test"] == 0 and counts["train"] + counts["validation"] == 300
    assert 0.8 * 300 < counts["train"] < 0.97 * 300, "about 90% trains"
    assert whole["alias"] == "challenger" and whole["test"]["n"] == 0, "no test: not promoted"
    said = invoke("train", "--data", str(labeled_csv), "--epochs", "1")
    assert "no test split" in said and "intentflow registry promote intent:2 " in said

    held = json.loads(
        invoke(
            "train", "--data", str(labeled_csv), "--test-fraction", "0.2", "--epochs", "1", "--json"
        )
    )
    counts = rows(held)
    assert 0.1 * 300 < counts["test"] == held["test"]["n"] < 0.3 * 300

    other = labeled_csv.with_name("other.csv")
    other.write_text(labeled_csv.read_text().replace("please", "kindly"))
    given = json.loads(
        invoke(
            "train",
            "--data",
            str(labeled_csv),
            "--test-data",
            str(other),
            "--epochs",
            "1",
            "--json",
        )
    )
    counts = rows(given)
    assert counts["test"] == given["test"]["n"] == 300
    assert counts["train"] + counts["validation"] == 300


@pytest.fixture
def labeled_csv(tmp_path: Path) -> Path:
    words = {
        "refund_request": "refund money back",
        "lost_card": "lost card stolen",
        "order_status": "where order track",
    }
    rows = ["text,label"] + [
        f"{w} please {i},{label}" for label, w in words.items() for i in range(100)
    ]
    path = tmp_path / "labeled.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_predict_evaluate_list(
    intentflow_home: Path, tiny_bert_dir: Path, labeled_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    trained = json.loads(
        invoke(
            "train", "--data", str(labeled_csv), "--test-fraction", "0.1", "--epochs", "1", "--json"
        )
    )
    assert (trained["model"], trained["version"], trained["alias"]) == ("intent", 1, "champion")
    assert trained["reasons"]

    [row] = json.loads(invoke("registry", "list", "--json"))
    assert row["aliases"] == ["champion"] and row["version"] == 1
    assert row["test_accuracy"] == trained["test"]["accuracy"]

    preds = json.loads(
        invoke("predict", "--model", "intent@champion", "my card was stolen", "--json")
    )
    labels = {"refund_request", "lost_card", "order_status"}
    # An intent, or out_of_scope with the best in-scope label beside it (its score decides).
    assert preds[0]["in_scope_intent"] in labels
    assert preds[0]["intent"] in {*labels, "out_of_scope"}
    assert (preds[0]["intent"] == "out_of_scope") == preds[0]["out_of_scope"]
    assert preds[0]["oos_score"] is not None and preds[0]["oos_threshold"] is not None
    assert 0.0 < preds[0]["probability"] <= 1.0
    # By version number: the same model, the same answer.
    assert json.loads(invoke("predict", "--model", "intent:1", "my card was stolen", "--json")) == (
        preds
    )

    metrics = json.loads(
        invoke("evaluate", "--model", "intent:1", "--data", str(labeled_csv), "--json")
    )
    assert metrics["n"] == 300 and set(metrics["per_class"]) == {
        "refund_request",
        "lost_card",
        "order_status",
    }
    # Calibration before and after the artifact's temperature, in JSON and in the text.
    assert metrics["temperature"] > 0 and 0 <= metrics["ece_uncalibrated"] <= 1
    text = invoke("evaluate", "--model", "intent:1", "--data", str(labeled_csv))
    assert (
        f"calibration error (ECE) {metrics['ece']:.4f} at temperature "
        f"{metrics['temperature']:.4f}, {metrics['ece_uncalibrated']:.4f} uncalibrated"
    ) in text
    # Out-of-scope figures: this file has no out-of-scope rows, so the in-scope ones only.
    assert metrics["oos_n"] == 0 and "oos_recall" not in metrics
    assert (
        f"out of scope (0 labelled out of scope): in-scope accuracy "
        f"{metrics['in_scope_accuracy']:.4f} (kept in scope {metrics['in_scope_kept']:.4f})"
    ) in text

    # The same rows as DSTC11 JSONL and as CLINC150 JSON: the same scores.
    rows = [line.rsplit(",", 1) for line in labeled_csv.read_text().splitlines()[1:]]
    dstc = labeled_csv.with_name("held_out.jsonl")
    dstc.write_text(
        "".join(
            json.dumps({"utterance": t, "utterance_id": f"u{i}", "intent": y}) + "\n"
            for i, (t, y) in enumerate(rows)
        )
    )
    clinc = labeled_csv.with_name("held_out.json")
    clinc.write_text(json.dumps({"val": rows}))
    for path in (dstc, clinc):
        again = json.loads(invoke("evaluate", "--model", "intent:1", "--data", str(path), "--json"))
        assert (again["n"], again["accuracy"]) == (300, metrics["accuracy"])
    # A malformed record is quarantined, naming file, record and field; the others are scored.
    bad = labeled_csv.with_name("bad.jsonl")
    bad.write_text('{"utterance": "hi", "intent": "lost_card"}\n{"utterance": 5, "intent": "x"}\n')
    text = invoke("evaluate", "--model", "intent:1", "--data", str(bad))
    assert "records      2 read, 1 scored, 1 quarantined (invalid_field 1)" in text
    assert "bad.jsonl: record 2: invalid_field: field 'utterance' must be a string" in text


def test_train_reads_the_named_text_and_label_columns(
    intentflow_home: Path, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --data` on a CSV whose columns have other names: --text-column and --label-column
    pick them, past a `label` column that the defaults would take."""
    from ml.registry.store import Registry

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    words = {"refund_request": "refund money", "lost_card": "lost card", "order": "track order"}
    rows = ["message,label,topic"] + [
        f"{w} please {i},spam,{topic}" for topic, w in words.items() for i in range(30)
    ]
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join(rows) + "\n")
    columns = ["--text-column", "message", "--label-column", "topic"]
    trained = json.loads(invoke("train", "--data", str(data), *columns, "--epochs", "1", "--json"))
    version = Registry(settings().registry_url).get("intent", version=trained["version"])
    assert json.loads(Path(version.artifact_uri, "labels.json").read_text()) == sorted(words)
    snapshot = Path(version.lineage["snapshot_path"])
    texts = [t for split in ("train", "validation", "test") for t in _texts(snapshot, split)]
    assert sorted(texts) == sorted(r.split(",")[0] for r in rows[1:])
    # evaluate passes them on to the task the same way.
    ref = f"intent:{trained['version']}"
    scored = json.loads(invoke("evaluate", "--model", ref, "--data", str(data), *columns, "--json"))
    assert scored["n"] == len(rows) - 1 and set(scored["per_class"]) == set(words)

    # Without them, the file has no `text` column: a clear error naming file and columns.
    result = runner.invoke(app, ["train", "--data", str(data), "--epochs", "1"])
    assert result.exit_code != 0
    assert f"{data}: no column 'text' (columns: message, label, topic)" in result.output


def _texts(snapshot: Path, split: str) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(snapshot / f"{split}.parquet").column("text").to_pylist()


def test_bad_model_reference_and_tampered_artifact_are_refused(
    intentflow_home: Path, tiny_bert_dir: Path, labeled_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["predict", "--model", "intent@champion", "hello"])
    assert result.exit_code == 2 and "intent" in result.output

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    invoke("train", "--data", str(labeled_csv), "--epochs", "1")
    from ml.config import settings
    from ml.registry.store import Registry

    artifact = Registry(settings().registry_url).get("intent", version=1).artifact_uri
    labels = Path(artifact) / "labels.json"
    labels.write_text(labels.read_text().replace("lost_card", "lost_cart"))
    result = runner.invoke(app, ["predict", "--model", "intent:1", "hello"])
    assert result.exit_code == 2 and "sha256" in result.output


def test_train_on_an_empty_window_fails_clearly(intentflow_home: Path) -> None:
    result = runner.invoke(
        app, ["train", "--window-days", "3", "--end-date", date(2026, 11, 22).isoformat()]
    )
    assert result.exit_code == 2 and "ingest those days first" in result.output


def test_train_as_of_takes_a_version_or_a_time_for_the_lake_only(
    intentflow_home: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["train", "--as-of", "last tuesday"])
    assert (
        result.exit_code == 2
        and "a table version (an integer) or an ISO 8601 time" in result.output
    )
    data = tmp_path / "labeled.csv"
    data.write_text("text,label\nhello,greet\n")
    result = runner.invoke(app, ["train", "--data", str(data), "--as-of", "3"])
    assert result.exit_code == 2 and "applies to a model trained from the lake" in result.output
    # A version the lake never had: a clear error, not a traceback.
    result = runner.invoke(app, ["train", "--as-of", "7", "--end-date", "2026-11-22"])
    assert result.exit_code == 2 and "ingest those days first" in result.output


# --- registry commands ----------------------------------------------------------------------


@pytest.fixture
def two_versions(
    pipeline_state: PipelineState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PipelineState:
    """What real ingests and two retrains wrote: intent:1 (champion) and intent:2 (challenger),
    plus faq:1 from `intentflow train --data`; this test changes a copy of the registry."""
    use_state(pipeline_state, tmp_path, monkeypatch)
    return pipeline_state


def fails(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    return result.output


def test_registry_show_lineage_diff(two_versions: PipelineState, tiny_bert_dir: Path) -> None:
    from ml import lake
    from ml.artifact.integrity import directory_sha256
    from ml.config import settings
    from ml.registry.store import Registry

    shown = json.loads(invoke("registry", "show", "intent@champion", "--json"))
    assert (shown["version"], shown["aliases"]) == (1, ["champion"])
    assert [r["action"] for r in shown["audit"]] == ["register", "promote"]
    assert "intent:1  aliases=champion" in invoke("registry", "show", "intent")

    cfg = settings()
    days = two_versions.windows[1]
    partitions = [
        {"day": str(d), "content_hash": lake.read_manifest(cfg.lake, d)["content_hash"]}
        for d in days
    ]
    lineage = json.loads(invoke("registry", "lineage", "intent@champion", "--json"))
    assert lineage["run_id"] == two_versions.runs[1] and lineage["dag_id"] == "intent_retrain"
    assert lineage["partitions"] == partitions
    # The lake table version the snapshot read: as of it, the same snapshot comes back.
    from ml.snapshots.lake_window import make_snapshot

    assert isinstance(lineage["lake_version"], int)
    again = make_snapshot(
        cfg.lake, cfg.cache / "as-of", days[-1], len(days), as_of=lineage["lake_version"]
    )
    assert again["hash"] == lineage["data_snapshot_hash"]
    assert again["partitions"] == partitions
    assert lineage["base_model_sha256"] == directory_sha256(tiny_bert_dir)
    assert lineage["params"]["epochs"] == 1
    card = (Path(lineage["artifact_uri"]) / "README.md").read_text()
    assert f"Date window: {days[0]} to {days[-1]}" in card
    text = invoke("registry", "lineage", "intent@champion")
    assert lineage["data_snapshot_hash"] in text
    assert ", ".join(f"{p['day']} ({p['content_hash'][:12]})" for p in partitions) in text

    with Registry(cfg.registry_url) as registry:
        one, two = (registry.get("intent", version=n).metrics["test"] for n in (1, 2))
    diff = json.loads(invoke("registry", "diff", "intent:1", "intent:2", "--json"))
    f1 = next(r for r in diff["metrics"] if r["class"] is None and r["name"] == "macro_f1")
    assert f1["delta"] == pytest.approx(two["macro_f1"] - one["macro_f1"])
    assert diff["params"] == {"batch_size": [BATCH_SIZES[1], BATCH_SIZES[2]]}
    label = sorted(one["per_class"])[0]
    assert f"test/{label}/f1" in invoke("registry", "diff", "intent:1", "intent:2")


def test_registry_lineage_of_a_model_trained_from_a_file(two_versions: PipelineState) -> None:
    """`train --data` records the file and its sha256, not lake days."""
    import hashlib

    labeled = two_versions.labeled_file
    source = {"file": str(labeled), "sha256": hashlib.sha256(labeled.read_bytes()).hexdigest()}
    lineage = json.loads(invoke("registry", "lineage", f"{FILE_MODEL}@champion", "--json"))
    assert lineage["partitions"] == [source]
    text = invoke("registry", "lineage", f"{FILE_MODEL}@champion")
    assert f"{labeled} (sha256 {source['sha256'][:12]})" in text


def test_registry_promote_and_rollback_record_actor_and_reason(
    two_versions: PipelineState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    out = json.loads(
        invoke("registry", "promote", "intent:2", "--reason", "better on refunds", "--json")
    )
    assert (out["version"], out["actor"]) == (2, "alice")
    out = invoke("registry", "rollback", "intent", "--reason", "latency", "--actor", "bob")
    assert "intent@champion → intent:1" in out
    shown = json.loads(invoke("registry", "show", "intent:2", "--json"))
    assert [(r["action"], r["actor"], r["reason"]) for r in shown["audit"]][-1] == (
        "promote",
        "alice",
        "better on refunds",
    )
    assert "--reason" in fails("registry", "promote", "intent:2")  # required


def test_registry_commands_fail_clearly_on_bad_input(two_versions: PipelineState) -> None:
    assert "model 'ghost' is not registered" in fails("registry", "show", "ghost")
    assert f"(registered models: answers, entities, {FILE_MODEL}, intent)" in fails(
        "registry", "list", "--model", "ghost"
    )
    assert "has no alias 'staging'" in fails("registry", "lineage", "intent@staging")
    assert "has no version 7 (latest is 2)" in fails("registry", "diff", "intent:1", "intent:7")
    assert "has no version 9" in fails("registry", "promote", "intent:9", "--reason", "x")
    from ml.config import settings
    from ml.registry.store import Registry

    # intent:2's artifact goes missing for a moment (the state's files are shared: put back).
    artifact = Path(Registry(settings().registry_url).get("intent", version=2).artifact_uri)
    artifact.rename(artifact.with_name("moved-away"))
    try:
        assert "is missing" in fails("registry", "promote", "intent:2", "--reason", "x")
    finally:
        artifact.with_name("moved-away").rename(artifact)
    assert "no earlier champion" in fails("registry", "rollback", "intent", "--reason", "x")


def test_registry_upgrade_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.registry.migrate import head

    monkeypatch.setenv("INTENTFLOW_REGISTRY_URL", pg_url)
    assert "run `intentflow registry upgrade`" in fails("registry", "list")
    out = json.loads(invoke("registry", "upgrade", "--json"))
    assert (out["from"], out["to"]) == (None, head())
    assert f"already at {head()}" in invoke("registry", "migrate")
    assert invoke("registry", "list").strip() == "no registered versions"


def test_predict_refuses_a_pickle_even_when_its_hash_was_registered(
    intentflow_home: Path, tiny_artifact: dict
) -> None:
    import shutil

    from ml.artifact.integrity import directory_sha256
    from ml.registry.store import Registry

    artifact = intentflow_home / "pickled"
    shutil.copytree(tiny_artifact["artifact_dir"], artifact)
    (artifact / "pytorch_model.bin").write_bytes(b"not safe to unpickle")
    with Registry() as reg:
        reg.register_version(
            "intent",
            artifact_uri=str(artifact),
            artifact_sha256=directory_sha256(artifact),  # the hash matches: only pickle is wrong
            base_model="tiny",
            data_snapshot_hash="s",
            params={},
            lineage={},
            metrics={},
        )
    out = fails("predict", "--model", "intent:1", "hello")
    assert "pickle" in out and "pytorch_model.bin" in out


# --- each task type's own metrics in the registry views ------------------------------------


def test_registry_list_report_and_show_give_each_task_its_own_metrics(
    task_versions: dict[str, dict],
) -> None:
    """Entities lead with micro-F1, answers with MRR (their PROMOTION_METRIC), intent with
    macro-F1; each version's own figures, not intent's (empty for the other tasks)."""
    intent, ent, ans = (task_versions[t] for t in ("intent", "entities", "answers"))
    rows = {r["model"]: r for r in json.loads(invoke("registry", "list", "--json"))}
    assert {m: r["task"] for m, r in rows.items()} == {
        "intent": "intent",
        FILE_MODEL: "intent",
        "entities": "entities",
        "answers": "answers",
    }
    # Intent's out-of-scope figures follow (its test split has no out-of-scope rows: no
    # oos_recall or oos_auroc there).
    assert rows["intent"]["metrics"] == {
        "macro_f1": intent["macro_f1"],
        "accuracy": intent["accuracy"],
        "in_scope_accuracy": intent["in_scope_accuracy"],
    }
    assert rows["entities"]["metrics"] == {"micro_f1": ent["micro_f1"], "macro_f1": ent["macro_f1"]}
    assert rows["answers"]["metrics"] == {
        "mrr": ans["mrr"],
        "recall_at_1": ans["recall_at_1"],
        "recall_at_5": ans["recall_at_5"],
        "intent_recall_at_1": ans["intent_recall_at_1"],
    }

    lines = {line.split()[0]: line for line in invoke("registry", "list").splitlines()}
    assert lines["entities"].endswith(
        f"micro_f1 {ent['micro_f1']:.4f}  macro_f1 {ent['macro_f1']:.4f}"
    )
    assert f"mrr {ans['mrr']:.4f}  recall_at_1 {ans['recall_at_1']:.4f}" in lines["answers"]
    assert f"macro_f1 {intent['macro_f1']:.4f}  accuracy" in lines["intent"]

    report = invoke("report")
    assert (
        f"entities:1  aliases=champion  test micro_f1={ent['micro_f1']:.4f}  "
        f"macro_f1={ent['macro_f1']:.4f}" in report
    )
    assert f"answers:1  aliases=champion  test mrr={ans['mrr']:.4f}  recall_at_1=" in report
    assert {v["model"] for v in json.loads(invoke("report", "--json"))["versions"]} == set(rows)

    # Per class, answers shows MRR by intent (its per-class metric), not an empty F1.
    shown = invoke("registry", "show", "answers:1")
    label, per = sorted(ans["per_class"].items())[0]
    assert f"{label:<24} mrr {per['mrr']:.4f}  n={per['support']}" in shown


def test_a_configured_promotion_metric_leads_the_registry_list(
    task_versions: dict[str, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [
        {"name": "entities", "task": "entities", "source": "x.csv", "promotion_metric": "macro_f1"}
    ]
    (tmp_path / "models.json").write_text(json.dumps(models))
    monkeypatch.setenv("INTENTFLOW_MODELS_FILE", str(tmp_path / "models.json"))
    [row] = json.loads(invoke("registry", "list", "--model", "entities", "--json"))
    assert list(row["metrics"]) == ["macro_f1", "micro_f1"]


def test_an_out_of_scope_answer_reads_as_one_line_with_the_best_intent_beside_it() -> None:
    from ml.cli.main import _prediction_text
    from ml.cli.output import oos_text

    answer = {
        "text": "what is the weather",
        "intent": "out_of_scope",
        "probability": 0.41,
        "in_scope_intent": "lost_card",
        "out_of_scope": True,
        "oos_score": 812.25,
        "oos_threshold": 640.0,
        "top_k": [],
    }
    assert _prediction_text(answer) == (
        "out_of_scope\t812.250\twhat is the weather\t(best in scope: lost_card 0.410)"
    )
    kept = {**answer, "intent": "lost_card", "out_of_scope": False}
    assert _prediction_text(kept) == "lost_card\t0.410\twhat is the weather"
    figures = {
        "oos_n": 100,
        "in_scope_accuracy": 0.9,
        "in_scope_kept": 0.95,
        "oos_recall": 0.8,
        "oos_precision": 0.5,
        "oos_auroc": 0.97,
        "oos_fpr_at_95_tpr": 0.12,
    }
    assert oos_text(figures) == (
        "out of scope (100 labelled out of scope): in-scope accuracy 0.9000 (kept in scope "
        "0.9500); OOS recall 0.8000, precision 0.5000; AUROC 0.9700, FPR@95%TPR 0.1200"
    )
    assert oos_text({"accuracy": 0.9}) is None

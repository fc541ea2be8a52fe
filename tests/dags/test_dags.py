"""The DAGs: they parse with nothing heavy imported, and run end to end on real Airflow.
(How long a parse takes is bench/dag_parse.py's table, not a test's.)

The end-to-end test runs both DAGs with `dag.test()` (real task runs against a migrated
SQLite metadata DB) on a few days of generated transcripts and a tiny random BERT.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pytest
from alert_receiver import connections

from ml import lake
from ml.artifact.integrity import directory_sha256
from ml.config import ConfigError, settings
from ml.retrain.specs import configured_models
from ml.synthetic.generate import generate

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("torch", "transformers", "great_expectations", "pandas", "pyarrow", "sklearn")
# dags/model_retrain.py generates one retrain DAG per configured model (ml.retrain.specs).
RETRAIN_FILE = "model_retrain.py"

PARSE_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "dags": sorted(bag.dags),
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy": [m for m in sys.argv[2:] if m in sys.modules],
}))
"""


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_file_parses_without_heavy_imports(dag_file: str) -> None:
    """Parsed in a fresh interpreter, as the dag-processor does, after Airflow itself is loaded."""
    out = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAGS / dag_file), *HEAVY],
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["errors"] == {}
    if dag_file == RETRAIN_FILE:
        assert probe["dags"] == sorted(m.dag_id for m in configured_models())
        assert {"intent_retrain", "entities_retrain"} <= set(probe["dags"])
    else:
        assert probe["dags"] == [dag_file.removesuffix(".py")]
    assert probe["heavy"] == [], f"{dag_file} imports {probe['heavy']} at parse time"


def test_retrain_dags_share_one_shape_with_their_own_schedule_and_params(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("INTENTFLOW_GPUS_PER_TRAINING", raising=False)
    monkeypatch.setenv("INTENTFLOW_RETRAIN_DEADLINE_MINUTES", "480")
    dags = DagBag(dag_folder=str(DAGS / RETRAIN_FILE)).dags
    for spec in configured_models():
        dag = dags[spec.dag_id]
        fine_tune = dag.get_task("fine_tune")
        assert (fine_tune.queue, fine_tune.pool, fine_tune.pool_slots) == ("gpu", "gpu", 1)
        assert {"base_model", "epochs", "learning_rate", "batch_size"} <= set(dag.params)
        order = [t.task_id for t in dag.topological_sort()]
        chain = ["enough_new_data", "snapshot", "fine_tune", "evaluate", "scores", "register"]
        assert [t for t in order if t in chain + ["promote"]] == chain + ["promote"]
        # Each golden set is scored in a task of its own (dynamic task mapping, #22 item 7).
        golden = dag.get_task("evaluate_golden")
        assert golden.is_mapped and golden.upstream_task_ids == {
            "fine_tune",
            "evaluate",
            "golden_sets",
        }
        assert dag.get_task("scores").upstream_task_ids == {"evaluate", "evaluate_golden"}
        assert dag.doc_md and "Model retrain" in dag.doc_md and spec.task in dag.tags
        # Every task has a time limit; the run has one; a Deadline Alert watches it (#22).
        assert all(t.execution_timeout for t in dag.tasks)
        assert dag.dagrun_timeout and dag.deadline
    intent, entities = dags["intent_retrain"], dags["entities_retrain"]
    assert {"window_days", "end_date"} <= set(intent.params)
    assert intent.params["window_days"] == 7 and intent.params["epochs"] is None
    # A labeled-source model has no lake window; its configured defaults fill the form.
    assert "window_days" not in entities.params and entities.params["epochs"] == 3
    # The lake-fed model also runs on new `transcripts` data (AssetOrTimeSchedule); a model
    # fed by a labeled file keeps its cron.
    assert intent.timetable.timetable.expression == "0 3 * * *"
    assert intent.timetable.asset_condition.name == "transcripts"
    assert intent.timetable.asset_condition.uri.startswith("file:///")
    assert entities.timetable.expression == "0 4 * * 0"


def test_gpus_per_training_sets_the_fine_tune_pool_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training on N GPUs takes N slots of the GPU-sized `gpu` pool (the launcher's side:
    test_distributed_training.py)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("INTENTFLOW_GPUS_PER_TRAINING", "2")
    dags = DagBag(dag_folder=str(DAGS / RETRAIN_FILE)).dags
    assert sorted(dags) == sorted(m.dag_id for m in configured_models())
    assert {dag.get_task("fine_tune").pool_slots for dag in dags.values()} == {2}


def test_models_file_replaces_the_configured_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [
        {"name": "intent", "task": "intent", "dag_id": "intent_retrain", "schedule": None},
        {"name": "tags-eu", "task": "entities", "source": "/data/eu.csv", "params": {"epochs": 5}},
    ]
    (tmp_path / "models.json").write_text(json.dumps(models))
    monkeypatch.setenv("INTENTFLOW_MODELS_FILE", str(tmp_path / "models.json"))
    assert [m.dag_id for m in configured_models()] == ["intent_retrain", "tags-eu_retrain"]
    out = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAGS / RETRAIN_FILE)],
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["errors"] == {} and probe["dags"] == ["intent_retrain", "tags-eu_retrain"]

    (tmp_path / "models.json").write_text(json.dumps([{"name": "x", "task": "sentiment"}]))
    with pytest.raises(ConfigError, match="unknown task type 'sentiment'"):
        configured_models()


def test_ingest_form_offers_only_the_configured_source_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger form's `source` is a choice among names an administrator configured: a path,
    URL or spec typed in fails the DAG's own param check."""
    from airflow.sdk.exceptions import ParamValidationError

    (tmp_path / "sources.json").write_text(json.dumps({"crm": {"url": str(tmp_path)}}))
    monkeypatch.setenv("INTENTFLOW_SOURCES_FILE", str(tmp_path / "sources.json"))
    param = _dag("transcripts_ingest").params.get_param("source")
    assert (param.value, param.schema["enum"]) == ("default", ["crm", "default"])
    assert param.resolve("crm") == "crm"
    spec = json.dumps({"url": "/etc/passwd", "layout": "static", "dates": ["2026-11-22"] * 2})
    for typed in ("/etc/passwd", spec, "s3://other-bucket/x", None):
        with pytest.raises(ParamValidationError):
            param.resolve(typed)


@pytest.mark.slow
def test_a_trigger_reads_the_named_source_and_no_typed_path(
    airflow_db: Path, intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Airflow: a run conf naming /etc/passwd is refused when the run is created, before
    any task; a run naming a configured CSV source reads it (the name crosses the tasks)."""
    from airflow.utils.state import DagRunState

    day = date(2026, 11, 22)
    crm = tmp_path / "feeds" / "crm"
    (crm / day.isoformat()).mkdir(parents=True)
    (crm / day.isoformat() / "export.csv").write_text(
        "ticket,opened,msg,label\n"
        + "".join(
            f"t{i},2026-11-22T0{i}:00:00Z,refund {i} please,refund_request\n" for i in range(8)
        )
    )
    columns = {
        "conversation_id": "ticket",
        "started_at": "opened",
        "text": "msg",
        "intent": "label",
    }
    sources = {"crm": {"format": "csv", "url": str(crm), "columns": columns}}
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    monkeypatch.setenv("INTENTFLOW_SOURCES_FILE", str(tmp_path / "sources.json"))
    monkeypatch.setenv("INTENTFLOW_SOURCE_ROOTS", str(tmp_path / "feeds"))
    ingest = _dag("transcripts_ingest")
    spec = json.dumps({"url": "/etc/passwd", "layout": "static", "dates": [day.isoformat()] * 2})
    for typed in ("/etc/passwd", spec):
        with pytest.raises(ValueError, match="Invalid input for param source"):
            ingest.test(run_conf={"source": typed, "day": day.isoformat()})
    assert not (intentflow_home / "staging").exists()
    run = ingest.test(logical_date=datetime(2026, 11, 22, tzinfo=UTC), run_conf={"source": "crm"})
    assert run.state == DagRunState.SUCCESS
    manifest = lake.read_manifest(settings().lake, day)
    assert (manifest["source"], manifest["rows_written"]) == ("crm", 8)


def test_the_maintenance_dag_vacuums_the_lakes_tables(
    airflow_db: Path, intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lake_maintenance runs `intentflow lake maintain`'s work: past the retention, the files
    a republished day replaced are deleted, and the day still reads."""
    import pyarrow as pa
    from airflow.utils.state import DagRunState

    from ml import delta

    cfg, day = settings(), date(2026, 11, 22)
    for n in (3, 2):
        rows = pa.table({"conversation_id": [f"c{i}" for i in range(n)],
                         "content_hash": [f"{i:064d}" for i in range(n)]})  # fmt: skip
        lake.write_partition(rows, cfg.lake, day, {})
    assert len(delta.unvacuumed(cfg.lake)) == 1
    monkeypatch.setenv("INTENTFLOW_LAKE_RETENTION_HOURS", "0")
    dag = _dag("lake_maintenance")
    assert dag.doc_md and "VACUUM" in dag.doc_md
    run = dag.test(logical_date=datetime(2026, 11, 23, tzinfo=UTC))
    assert run.state == DagRunState.SUCCESS
    assert delta.unvacuumed(cfg.lake) == [] and lake.read_partition(cfg.lake, day).num_rows == 2


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    path = DAGS / (RETRAIN_FILE if dag_id.endswith("_retrain") else f"{dag_id}.py")
    return DagBag(dag_folder=str(path)).dags[dag_id]


@pytest.mark.slow
def test_ingest_and_retrain_end_to_end(
    airflow_db: Path,
    intentflow_home: Path,
    tiny_bert_dir: Path,
    receiver: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.state import DagRunState

    from ml.registry.store import Registry

    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)  # the alert channels (#22 item 4)
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    days = generate(intentflow_home / "raw", days=3, per_day=120, start=date(2026, 11, 20), seed=7)
    ingest = _dag("transcripts_ingest")
    for d in days:
        run = ingest.test(logical_date=datetime(d.day.year, d.day.month, d.day.day, tzinfo=UTC))
        assert run.state == DagRunState.SUCCESS
        # Each published day emits the `transcripts` Asset event (what triggers a retrain),
        # on the lake's URI, with the day, its rows and content hash.
        [(name, task, uri, extra)] = _asset_events(run.run_id, detail=True)
        assert (name, task, uri) == ("transcripts", "publish", settings().lake.as_uri())
        manifest = lake.read_manifest(settings().lake, d.day)
        assert extra == {
            "day": d.day.isoformat(),
            "rows": manifest["rows_written"],
            "content_hash": manifest["content_hash"],
            "source": "raw",
        }
    cfg = settings()
    manifests = [lake.read_manifest(cfg.lake, d.day) for d in days]
    for d, m in zip(days, manifests, strict=True):
        assert m["rows_read"] == d.records == m["rows_written"] + m["rows_quarantined"]
        assert m["rows_quarantined"] >= d.broken

    # Rerunning a day replaces its partition with the same content: no duplicates.
    again = ingest.test(logical_date=datetime(2026, 11, 21, tzinfo=UTC))
    assert again.state == DagRunState.SUCCESS
    assert (
        lake.read_manifest(cfg.lake, date(2026, 11, 21))["content_hash"]
        == manifests[1]["content_hash"]
    )

    # A day that fails the validation gate is not published, and emits no Asset event.
    drop = intentflow_home / "raw" / "2026-11-23"
    drop.mkdir()
    good = {"started_at": "2026-11-23T10:00:00Z", "intent": "refund_request"}
    good["turns"] = [{"speaker": "customer", "text": "refund please"}]
    lines = [json.dumps({**good, "conversation_id": f"c{i}"}) for i in range(5)]
    (drop / "broken.jsonl").write_text("\n".join(lines + ["{broken"] * 4) + "\n")  # 44% bad
    failed = ingest.test(logical_date=datetime(2026, 11, 23, tzinfo=UTC))
    assert failed.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in failed.get_task_instances()}
    assert (states["validate"], states["publish"]) == ("failed", "upstream_failed")
    assert _asset_events(failed.run_id) == []
    assert lake.read_manifest(cfg.lake, date(2026, 11, 23)) is None
    # One alert per channel, naming the gate (not "missing data").
    [(path, dq)] = [(p, b) for p, b in got.posts if p == "/dq"]
    assert (dq["kind"], dq["task_id"]) == ("data_quality", "validate")
    got.posts.clear(), got.mails.clear()

    # Two golden sets (labeled files): each is scored in a mapped task of its own (#22 item 7).
    golden = {}
    for d in days[:2]:
        rows = lake.read_partition(cfg.lake, d.day).select(["text", "intent"]).slice(0, 30)
        golden[f"day{d.day.day}"] = intentflow_home / f"golden-{d.day}.csv"
        pacsv.write_csv(rows.rename_columns(["text", "label"]), golden[f"day{d.day.day}"])
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", ",".join(f"{k}={v}" for k, v in golden.items()))
    retrain = _dag("intent_retrain")
    conf = {"window_days": 3, "end_date": "2026-11-22", "epochs": 1, "batch_size": 16}
    run = retrain.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "evaluate_golden"]
    assert sorted((ti.map_index, ti.rendered_map_index, ti.state) for ti in mapped) == [
        (0, "day20", "success"),
        (1, "day21", "success"),
    ]

    [version] = Registry(cfg.registry_url).list_versions(cfg.model_name)
    assert version.version == 1 and version.aliases == ("champion",)
    assert (version.dag_id, version.run_id) == ("intent_retrain", run.run_id)
    assert version.base_model_sha256 == directory_sha256(tiny_bert_dir)
    assert version.code_version and version.code_version.startswith("0.1.0")
    assert [p["day"] for p in version.lineage["partitions"]] == [
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
    ]
    assert 0.0 <= version.metrics["test"]["accuracy"] <= 1.0
    assert version.metrics["golden:day20"]["n"] == version.metrics["golden:day21"]["n"] == 30
    assert Path(version.artifact_uri, "model.safetensors").exists()
    # register and promote emitted the model's Assets (what serving and monitoring follow).
    assert sorted(_asset_events(run.run_id, detail=True)) == [
        ("intent_champion", "promote", "model://intent/champion", {"version": 1}),
        ("intent_versions", "register", "model://intent/versions", {"version": 1}),
    ]
    assert got.posts == got.mails == []  # a promotion, no failure: nothing to tell

    # A second run is compared with the champion on the same test split and registered as v2.
    run = retrain.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS
    registry = Registry(cfg.registry_url)
    v1, v2 = registry.list_versions(cfg.model_name)
    assert (v1.version, v2.version) == (1, 2)
    # Same snapshot, seed and params: the same model and score. No worse is enough (the
    # default minimum improvement is 0), so v2 takes the champion alias from v1.
    assert v2.metrics["test"] == {**v1.metrics["test"], **_latency(v2.metrics["test"])}
    assert (v1.aliases, v2.aliases) == ((), ("champion",))
    [moved] = [a for a in registry.audit(cfg.model_name) if a["action"] == "promote"][1:]
    assert (moved["version"], moved["alias"], moved["actor"]) == (
        2,
        "champion",
        "airflow:intent_retrain",
    )
    macro_f1 = v1.metrics["test"]["macro_f1"]
    assert (
        f"macro_f1 {macro_f1:.3f} vs champion {macro_f1:.3f} (+0.000 >= +0.000)" in moved["reason"]
    )

    # Not promoted: the alert channels hear which version and why (#22 item 4); the run
    # succeeded and emitted no champion event.
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_IMPROVEMENT", "0.5")
    run = retrain.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS
    assert [a for a in registry.get(cfg.model_name, version=3).aliases] == ["challenger"]
    [(path, alert)] = [(p, b) for p, b in got.posts if p == "/dq"]
    assert (alert["kind"], alert["title"]) == (
        "not_promoted",
        f"[intentflow] intent_retrain {run.run_id}: intent v3 not promoted",
    )
    assert "(+0.000 < +0.500)" in alert["error"]
    assert [e[0] for e in _asset_events(run.run_id, detail=True)] == ["intent_versions"]
    assert len(got.mails) == 1 and "not promoted" in got.mails[0][1]["Subject"]
    got.posts.clear()

    # A training slower than its data-sized execution_timeout is stopped, and alerts (#22
    # item 3): at 10^6 samples/s and no overhead, the limit is 1 s.
    monkeypatch.setenv("INTENTFLOW_FINE_TUNE_MIN_SAMPLES_PER_SECOND", "1000000")
    monkeypatch.setenv("INTENTFLOW_FINE_TUNE_OVERHEAD_MINUTES", "0")
    monkeypatch.setenv("INTENTFLOW_RETRAIN_RETRIES", "0")
    run = _dag("intent_retrain").test(run_conf={**conf, "epochs": 50})
    assert run.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert (states["fine_tune"], states["register"]) == ("failed", "upstream_failed")
    [(path, alert)] = [(p, b) for p, b in got.posts if p == "/dq"]
    assert (alert["kind"], alert["task_id"]) == ("failure", "fine_tune")
    assert alert["error"].startswith("AirflowTaskTimeout")


def _asset_events(run_id: str, detail: bool = False) -> list[tuple]:
    """(asset name, task) of the Asset events a DAG run emitted, from Airflow's metadata DB;
    with `detail`, also the asset's URI and the event's extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetModel.name, AssetEvent.source_task_id, AssetModel.uri, AssetEvent.extra)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetEvent.source_run_id == run_id)
    )
    with create_session() as session:
        rows = [tuple(row) for row in session.execute(query)]
    return rows if detail else [row[:2] for row in rows]


def _latency(metrics: dict[str, Any]) -> dict[str, Any]:
    """The timing figures of a metrics dict: they differ from run to run, the rest must not."""
    return {k: v for k, v in metrics.items() if k.startswith(("latency", "throughput"))}


@pytest.mark.slow
def test_entities_retrain_end_to_end(
    airflow_db: Path,
    intentflow_home: Path,
    tiny_bert_dir: Path,
    write_bitext: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generated entities DAG: labeled source → snapshot (with quarantine) → fine_tune →
    evaluate → register (task type entities) → promote on micro-F1."""
    from airflow.utils.state import DagRunState

    from ml.registry.store import Registry

    source = intentflow_home / "labeled" / "spans.csv"
    source.parent.mkdir(parents=True)
    broken = write_bitext(source, 120)
    monkeypatch.setenv("INTENTFLOW_ENTITIES_SOURCE", str(source))
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    # A small test split (about 12 texts): the policy's minimum counts its gold entities.
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "5")
    retrain = _dag("entities_retrain")
    run = retrain.test(run_conf={"epochs": 1, "batch_size": 16})
    assert run.state == DagRunState.SUCCESS

    [version] = Registry(settings().registry_url).list_versions("entities")
    assert version.task_type == "entities" and version.aliases == ("champion",)
    assert (version.dag_id, version.run_id) == ("entities_retrain", run.run_id)
    assert version.lineage["counts"]["quarantined"] == broken
    assert version.lineage["partitions"][0]["file"] == str(source)
    assert {"micro_f1", "macro_f1", "n"} <= set(version.metrics["test"])
    assert version.params["epochs"] == 1


@pytest.mark.slow
def test_answers_retrain_end_to_end(
    airflow_db: Path, intentflow_home: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated answers DAG: question → answer pairs → snapshot → fine_tune → evaluate →
    register (task type answers) → promote on MRR, and per intent on MRR."""
    from airflow.utils.state import DagRunState
    from answer_pairs import pairs_csv

    from ml.registry.store import Registry

    source = intentflow_home / "labeled" / "pairs.csv"
    source.parent.mkdir(parents=True)
    pairs_csv(source)
    monkeypatch.setenv("INTENTFLOW_ANSWERS_SOURCE", str(source))
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    # A small test split (three intents, a few questions each): judge it all the same.
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "5")
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_CLASS_SUPPORT", "1")
    retrain = _dag("answers_retrain")
    conf = {"epochs": 1, "batch_size": 16, "learning_rate": 0.003}
    run = retrain.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS

    registry = Registry(settings().registry_url)
    [version] = registry.list_versions("answers")
    assert version.task_type == "answers" and version.aliases == ("champion",)
    assert (version.dag_id, version.run_id) == ("answers_retrain", run.run_id)
    assert version.lineage["partitions"][0]["file"] == str(source)
    assert version.params["epochs"] == 1
    test = version.metrics["test"]
    assert {"mrr", "recall_at_1", "intent_mrr", "n"} <= set(test)
    assert set(test["per_class"]) == {"track_order", "get_refund", "reset_password"}
    assert json.loads(Path(version.artifact_uri, "task.json").read_text())["task"] == "answers"

    # The second run is compared with the champion on MRR, then per intent on MRR: same
    # snapshot, seed and params, so the same scores, and no worse is enough to promote.
    run = retrain.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS
    v1, v2 = registry.list_versions("answers")
    assert v2.metrics["test"] == {**v1.metrics["test"], **_latency(v2.metrics["test"])}
    assert (v1.aliases, v2.aliases) == ((), ("champion",))
    [moved] = [a for a in registry.audit("answers") if a["action"] == "promote"][1:]
    mrr = test["mrr"]
    assert f"mrr {mrr:.3f} vs champion {mrr:.3f} (+0.000 >= +0.000)" in moved["reason"]
    assert "largest per-class mrr drop 0.000 on" in moved["reason"]

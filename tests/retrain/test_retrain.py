"""The retrain steps the DAG and the CLI share, on a tiny trained model and a real registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ml.artifact.integrity import directory_sha256
from ml.config import settings
from ml.registry.store import Registry
from ml.retrain.steps import evaluate_step, register_step


def snapshot_info(folder: Path) -> dict[str, Any]:
    """The snapshot dict ml.snapshots.writer's writer returned for `folder` (its snapshot.json + path)."""
    return {**json.loads((folder / "snapshot.json").read_text()), "path": str(folder)}


@pytest.fixture
def trained(tiny_artifact: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A private copy of the session's tiny artifact: reports are written beside it."""
    copy = tmp_path / "run" / "model"
    shutil.copytree(tiny_artifact["artifact_dir"], copy)
    return {**tiny_artifact, "artifact_dir": str(copy)}


def test_evaluate_step_scores_golden_sets_and_the_champion_on_the_same_data(
    trained: dict[str, Any], intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap_dir = Path(trained["snapshot_dir"])
    golden = tmp_path / "golden.csv"
    test = pq.read_table(snap_dir / "validation.parquet").rename_columns(["id", "text", "label"])
    pacsv.write_csv(test.select(["text", "label"]), golden)
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", f"regression={golden}")

    snapshot = snapshot_info(snap_dir)
    first = evaluate_step(snapshot, trained)
    assert first["champion"] is None
    assert first["challenger_golden"]["regression"]["n"] == test.num_rows
    reports = Path(first["reports"])
    assert (reports / "challenger" / "test" / "confusion_matrix.png").exists()
    assert (reports / "challenger" / "regression" / "metrics.json").exists()

    registered = register_step(snapshot, trained, first, {"dag_id": "t", "run_id": "r1"})
    cfg = settings()
    Registry(cfg.registry_url).set_alias(
        cfg.model_name, "champion", registered["version"], actor="t", reason="t"
    )
    version = Registry(cfg.registry_url).get(cfg.model_name, version=registered["version"])
    assert version.metrics["golden:regression"]["n"] == test.num_rows
    assert version.lineage["evaluation_reports"] == first["reports"]
    assert version.lineage["partitions"] == snapshot["partitions"]  # the labeled file
    assert version.data_snapshot_hash == snapshot["hash"]
    assert (version.dag_id, version.run_id, version.created_by) == ("t", "r1", "intentflow")
    assert version.base_model_sha256 == directory_sha256(Path(trained["base_model"]))
    assert version.code_version and version.code_version.startswith("0.1.0")

    second = evaluate_step(snapshot, trained)
    assert second["champion_version"] == registered["version"]
    # Same model, same data: the champion's scores equal the challenger's.
    assert second["champion"]["accuracy"] == second["challenger"]["accuracy"]
    assert (
        second["champion_golden"]["regression"]["accuracy"]
        == first["challenger_golden"]["regression"]["accuracy"]
    )


def test_out_of_scope_figures_reach_the_registry_for_test_and_every_golden_set(
    trained: dict[str, Any], intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ml.tasks.intent.out_of_scope's metrics: on the test split (no out-of-scope rows there:
    in-scope figures only) and on a golden set with rows labelled `oos`."""
    golden = tmp_path / "golden.csv"
    rows = [("lost card please", "lost_card"), ("refund request", "refund_request")]
    rows += [(f"weather song joke {i}", "oos") for i in range(3)]
    golden.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", f"with_oos={golden}")
    snapshot = snapshot_info(Path(trained["snapshot_dir"]))
    evaluation = evaluate_step(snapshot, trained)
    registered = register_step(snapshot, trained, evaluation, {"dag_id": "t", "run_id": "r1"})
    version = Registry(settings().registry_url).get(
        settings().model_name, version=registered["version"]
    )
    test, with_oos = version.metrics["test"], version.metrics["golden:with_oos"]
    assert test["oos_n"] == 0 and 0 <= test["in_scope_accuracy"] <= 1
    assert "oos_recall" not in test
    assert with_oos["oos_n"] == 3
    for name in ("oos_recall", "oos_precision", "oos_auroc", "oos_fpr_at_95_tpr"):
        assert 0 <= with_oos[name] <= 1


def test_bad_golden_set_spec_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTFLOW_GOLDEN_SETS", "just-a-path.csv")
    with pytest.raises(ValueError, match="expected name=path"):
        settings()


def test_evaluate_step_fails_rather_than_skip_the_champion_when_the_registry_is_unusable(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only "no champion yet" skips the comparison; an unusable registry fails the task."""
    from sqlalchemy import create_engine, text

    from ml.registry.errors import SchemaError

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    monkeypatch.setenv("INTENTFLOW_REGISTRY_URL", url)
    snapshot = snapshot_info(Path(trained["snapshot_dir"]))
    with pytest.raises(SchemaError, match="newer than this intentflow"):
        evaluate_step(snapshot, trained)


def test_train_step_retry_reuses_a_finished_artifact_and_drops_checkpoints(
    intentflow_home: Path,
    tiny_bert_dir: Path,
    make_snapshot: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ml.retrain.steps import train_step

    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    snapshot = snapshot_info(make_snapshot(n_per_label=8))
    params = {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3}
    first = train_step(snapshot, params, "manual__2026-11-29T03:00:00+00:00")
    run_dir = Path(first["artifact_dir"]).parent
    assert run_dir.name == "manual__2026-11-29T03_00_00_00_00"
    assert not (run_dir / "checkpoints").exists()
    with caplog.at_level("INFO", logger="ml.retrain.steps"):
        again = train_step(snapshot, params, "manual__2026-11-29T03:00:00+00:00")
    assert "already complete: reused" in caplog.text
    assert again == first


def _fake_run(tmp_path: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trained artifact (a real folder and its sha256, no training) and its evaluation."""
    artifact = tmp_path / name / "model"
    artifact.mkdir(parents=True)
    (artifact / "model.safetensors").write_bytes(name.encode())
    test = {"accuracy": 0.9, "macro_f1": 0.9, "per_class": {"a": {"f1": 0.9, "support": 50}}}
    trained = {
        "artifact_dir": str(artifact),
        "artifact_sha256": directory_sha256(artifact),
        "base_model": "hub/base",
        "config": {},
        "validation": {"accuracy": 0.9},
    }
    evaluation = {
        "challenger": test,
        "challenger_golden": {},
        "champion": None,
        "champion_golden": None,
        "champion_version": None,
        "reports": str(tmp_path / name / "evaluation"),
    }
    return trained, evaluation


SNAPSHOT = {"hash": "h", "path": "/snap", "window": None, "partitions": [], "counts": {}}


def test_a_retried_register_task_returns_the_version_its_first_try_registered(
    intentflow_home: Path, tmp_path: Path
) -> None:
    trained, evaluation = _fake_run(tmp_path, "run-1")
    lineage = {"dag_id": "intent_retrain", "run_id": "scheduled__1", "actor": "airflow"}
    first = register_step(SNAPSHOT, trained, evaluation, lineage)
    assert register_step(SNAPSHOT, trained, evaluation, lineage) == first
    assert [v.version for v in Registry(settings().registry_url).list_versions()] == [1]


def test_the_promote_task_keeps_a_champion_rolled_back_while_the_dag_ran(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """evaluate compared v3 with champion v2; an operator rolled back to v1 before promote:
    promote leaves v1 and says so in its result and the audit."""
    from ml.registry.promotion import rollback
    from ml.retrain.steps import promote_step

    registry = Registry(settings().registry_url)
    runs = [_fake_run(tmp_path, f"run-{n}") for n in (1, 2, 3)]
    for n, (trained, evaluation) in enumerate(runs, start=1):
        lineage = {"dag_id": "intent_retrain", "run_id": f"scheduled__{n}"}
        register_step(SNAPSHOT, trained, evaluation, lineage)
    registry.set_alias("intent", "champion", 2, actor="dag", reason="an earlier run")
    _, evaluation = runs[2]
    weaker = {**evaluation["challenger"], "macro_f1": 0.5, "accuracy": 0.5}
    evaluation = {**evaluation, "champion": weaker, "champion_version": 2}
    rollback(registry, "intent", actor="ops", reason="v2 misroutes refunds", version=1)

    promoted = promote_step({"model": "intent", "version": 3}, evaluation, actor="airflow")
    assert promoted["alias"] == "challenger"
    assert promoted["reasons"][0] == (
        "skipped: champion changed since evaluation (evaluated against v2, now v1)"
    )
    assert registry.get("intent").version == 1
    assert registry.audit("intent")[-1]["action"] == "promote_skipped"


def test_register_step_refuses_an_artifact_holding_a_symbolic_link(
    trained: dict[str, Any], intentflow_home: Path, tmp_path: Path
) -> None:
    """A link put into the artifact after fine_tune (its target: any file on the worker) is
    refused at registration; nothing is registered."""
    from ml.artifact.integrity import ArtifactIntegrityError

    secret = tmp_path / "secret.txt"
    secret.write_text("not part of any model")
    (Path(trained["artifact_dir"]) / "notes.txt").symlink_to(secret)
    snapshot = snapshot_info(Path(trained["snapshot_dir"]))
    evaluation = {
        "challenger": {"accuracy": 0.5, "macro_f1": 0.5, "n": 10},
        "challenger_golden": {},
        "champion": None,
        "champion_golden": None,
        "champion_version": None,
        "reports": str(tmp_path / "reports"),
    }
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        register_step(snapshot, trained, evaluation, {"dag_id": "t", "run_id": "r1"})
    assert Registry(settings().registry_url).list_versions() == []

"""The retrain pipeline as steps: snapshot → fine_tune → evaluate → register → promote.

Each configured model's retrain DAG (`intent_retrain`, `entities_retrain`, ...; see ml.retrain.specs)
runs each step as a task and `intentflow train` runs them in order, so both take one code path.
Steps exchange small JSON-serialisable dicts (ml.retrain.results), never models or data.
The steps are generic: `model` names a configured model (None: the intent model), and its
task type's module (ml.tasks.contract) builds the dataset, trains, evaluates; promotion compares the
model's promotion metric.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ml import storage
from ml.config import FEEDBACK_GOLDEN_NAME, Settings, settings
from ml.retrain.results import (
    Approval,
    Decided,
    Evaluation,
    GoldenScores,
    Lineage,
    Metrics,
    Promoted,
    Registered,
    Retrained,
    Snapshot,
    Trained,
)
from ml.retrain.specs import GoldenSet, ModelSpec, golden_sets, model_spec

log = logging.getLogger(__name__)

CHAMPION = "champion"


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("intentflow")
    except PackageNotFoundError:
        pkg = "0+unknown"
    try:
        sha = subprocess.run(  # noqa: S603 (fixed arguments)
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (git from PATH, as a user runs it)
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pkg
    return f"{pkg}+g{sha}"


def _spec(model: str | ModelSpec | None, cfg: Settings) -> ModelSpec:
    """A configured model by name (None: the intent model), or a spec given as it is (the CLI
    trains unconfigured models from a file)."""
    return model if isinstance(model, ModelSpec) else model_spec(model, cfg)


def _task(spec: ModelSpec) -> Any:
    from ml.tasks.contract import task_module

    return task_module(spec.task)


def _commit_time(lake_root: Any, version: int) -> datetime | None:
    """When the transcripts table's `version` was committed; None for a version the table
    never had (the snapshot then says so, naming the days to ingest)."""
    from ml.delta import commit_time, open_table

    at = commit_time(lake_root, version)
    table = open_table(lake_root) if at is None else None
    if table is not None and 0 <= version <= table.version():
        raise ValueError(
            f"the transcripts table has no commit record of version {version} (past the lake's "
            "retention?): give --as-of a time instead"
        )
    return at


def snapshot_step(
    end: date,
    window_days: int,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
    as_of: int | datetime | None = None,
) -> Snapshot:
    """The lake's window for a lake-fed model (the lake now, or `as_of` a table version or a
    time); else the task's build_dataset on its source."""
    cfg = cfg or settings()
    spec = _spec(model, cfg)
    if not spec.from_lake:
        out_root = storage.join(cfg.snapshots, spec.name)
        return _task(spec).build_dataset(spec.source, out_root, **spec.options)
    from ml.snapshots.lake_window import make_snapshot

    corrections = None
    if spec.task == "intent":
        from ml.feedback.training import corrections as agents_corrections

        # The corrections of predictions made up to the window's end; `as_of` reads the
        # feedback as it was then: at that time, or when that transcripts version was written.
        at = as_of if not isinstance(as_of, int) else _commit_time(cfg.lake, as_of)
        corrections = agents_corrections(cfg.feedback, cfg.predictions, spec.name, end, at)
    return make_snapshot(cfg.lake, cfg.snapshots, end, window_days, as_of, corrections)


def train_step(
    snapshot: Snapshot,
    params: dict[str, Any],
    run_key: str,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
) -> Trained:
    import json

    from ml.artifact.files import METRICS_FILE, write_json
    from ml.artifact.store import publish_artifact
    from ml.snapshots.writer import local_snapshot
    from ml.training.config import tunables
    from ml.training.device import gpu_lease, training_device

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    # First: a gpu worker without its GPU fails here, before any data or model is loaded.
    device = training_device(cfg.require_gpu)
    # An empty param means "the default": the configured base model, then the task's. The
    # model's configured params the DAG form does not offer (intent's oos_target, oos_label,
    # label_smoothing...) apply too, over the deployment's INTENTFLOW_OOS_* settings.
    given = {k: v for k, v in params.items() if v not in (None, "")}
    form = {setting.name for setting in tunables()}
    configured = {k: v for k, v in spec.params.items() if k not in form}
    deployment = {
        "oos_label": cfg.oos_label,
        "oos_target": cfg.oos_target,
        "oos_recall_target": cfg.oos_recall_target,
    }
    config = {"base_model": cfg.base_model, **deployment, **configured, **given}
    safe_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_key)
    run_url = storage.join(cfg.artifacts, spec.name, safe_key)
    model_url = storage.join(run_url, "model")
    # On object storage the model is written to a local work folder, then uploaded.
    remote = storage.is_remote(run_url)
    run_dir = cfg.cache / "runs" / spec.name / safe_key if remote else Path(run_url)
    done = storage.join(run_url, "summary.json")
    if storage.exists(done):
        # A retry after the artifact was written (say the worker died before reporting).
        log.info("artifact %s already complete: reused", model_url)
        return json.loads(storage.read_bytes(done))
    summary = run_dir / "summary.json"
    if summary.is_file():  # trained here, but the upload did not finish
        out = json.loads(summary.read_text(encoding="utf-8"))
    else:
        # A kill between the artifact's rename and summary.json: the artifact is whole, but
        # its summary was never handed on; train again rather than guess.
        shutil.rmtree(run_dir / "model", ignore_errors=True)
        # Training reads a local snapshot: a cached download when it is on object storage.
        snapshot = {**snapshot, "path": str(local_snapshot(snapshot["path"], cfg.cache))}
        # On object storage the checkpoints are mirrored there too: a retry on another worker
        # resumes from them (ml.training.checkpoints).
        mirror = str(storage.join(run_url, "checkpoints")) if remote else None
        if device != "cuda":
            out = _train_in(run_dir, snapshot, config, spec, [], mirror)
        else:
            import torch

            # Each training holds its own GPU(s) when a worker runs several at once.
            with gpu_lease(torch.cuda.device_count(), count=cfg.gpus_per_training) as gpus:
                out = _train_in(run_dir, snapshot, config, spec, gpus, mirror)
        write_json(summary, out, default=str)
    if remote:
        publish_artifact(
            run_dir / "model", str(model_url), out["artifact_sha256"], cfg.cache, METRICS_FILE
        )
        out = {**out, "artifact_dir": str(model_url)}
        fs, path = storage.filesystem(str(done))
        fs.pipe_file(path, json.dumps(out, default=str).encode())
    return json.loads(json.dumps(out, default=str))


def _train_in(
    run_dir: Path,
    snapshot: Snapshot,
    config: dict[str, Any],
    spec: ModelSpec,
    gpus: list[int],
    checkpoint_url: str | None = None,
) -> Trained:
    """The task's fine_tune into run_dir/model: in this process on one device, under torchrun
    on several (any task type).

    Checkpoints per epoch go to run_dir/checkpoints, and to `checkpoint_url` on object storage
    when the artifacts are there: a retried task resumes where the killed one stopped, on this
    worker or another; the finished artifact supersedes them.
    """
    checkpoints, model_dir, snapshot_dir = (
        run_dir / "checkpoints",
        run_dir / "model",
        Path(snapshot["path"]),
    )
    if len(gpus) > 1:
        from ml.retrain.launcher import launch
        from ml.training.device import visible_devices

        env = {"CUDA_VISIBLE_DEVICES": visible_devices(gpus)}
        out = launch(
            spec.task,
            snapshot_dir,
            model_dir,
            config,
            checkpoints,
            len(gpus),
            env,
            checkpoint_url,
        )
    else:
        if gpus:
            import torch

            torch.cuda.set_device(gpus[0])
        out = _task(spec).fine_tune(
            snapshot_dir, model_dir, config, checkpoints, checkpoint_url=checkpoint_url
        )
    shutil.rmtree(checkpoints, ignore_errors=True)
    if checkpoint_url:
        fs, path = storage.filesystem(checkpoint_url)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    return out


def evaluate_step(
    snapshot: Snapshot,
    trained: Trained,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
    golden: bool = True,
) -> Evaluation:
    """Score the new model and the current champion on the same test split and golden sets.

    Reports (metrics.json, quarantine.parquet of the records not scored, for intent also the
    confusion matrix JSON + PNG) go beside the new model's artifact, one folder per data set.
    Golden sets (ml.retrain.specs.golden_sets: the model's own, and INTENTFLOW_GOLDEN_SETS for
    intent models) are labeled files its task's evaluate reads with the model's options.
    `golden` False: the test split only (the retrain DAG scores each golden set in a task of
    its own, :func:`evaluate_golden_step`, and joins them with :func:`with_golden`).
    """
    from ml.registry.errors import NotFoundError
    from ml.registry.store import Registry
    from ml.snapshots.writer import local_snapshot

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    snapshot_dir = local_snapshot(snapshot["path"], cfg.cache)
    # The test split is a snapshot's: its own columns, none of the source's options.
    datasets = {"test": GoldenSet(str(snapshot_dir / "test.parquet"), {})}
    if golden:
        datasets.update(golden_sets(spec, cfg))
    datasets.update(feedback_set(snapshot_dir))
    score = _scorer(spec, cfg, trained)
    challenger = score(trained["artifact_dir"], trained["artifact_sha256"], "challenger", datasets)
    result: Evaluation = {
        "challenger": challenger.pop("test"),
        "challenger_golden": challenger,
        "champion": None,
        "champion_golden": None,
        "champion_version": None,
        "reports": str(_reports_at(trained)),
    }
    registry = Registry(cfg.registry_url)  # an old schema or a dead database fails the task
    try:
        champion = registry.get(spec.name, alias=CHAMPION)
    except NotFoundError:  # only "no champion yet": anything else must not skip the comparison
        log.info("no %s@%s yet: nothing to compare against", spec.name, CHAMPION)
        return result
    theirs = score(
        champion.artifact_uri, champion.artifact_sha256, f"champion-v{champion.version}", datasets
    )
    result.update(
        champion=theirs.pop("test"), champion_golden=theirs, champion_version=champion.version
    )
    return result


def feedback_set(snapshot_dir: Path) -> dict[str, GoldenSet]:
    """The snapshot's test-split corrections (ml.snapshots.lake_window.FEEDBACK_FILE) as the
    golden set `feedback` (scored with the test split: it is the snapshot's, not a
    configured file), or nothing when the snapshot holds none."""
    from ml.snapshots.lake_window import FEEDBACK_FILE

    path = snapshot_dir / FEEDBACK_FILE
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    if pq.ParquetFile(path).metadata.num_rows == 0:
        return {}
    return {FEEDBACK_GOLDEN_NAME: GoldenSet(str(path), {})}


def golden_set_names(
    cfg: Settings | None = None, model: str | ModelSpec | None = None
) -> list[str]:
    """The golden sets a model's retrains are scored on (what the DAG maps its tasks over)."""
    cfg = cfg or settings()
    return sorted(golden_sets(_spec(model, cfg), cfg))


def evaluate_golden_step(
    trained: Trained,
    name: str,
    champion_version: int | None,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
) -> GoldenScores:
    """Golden set `name` scored for the new model and for champion `champion_version` (the one
    evaluate_step compared against; None: no champion)."""
    from ml.registry.store import Registry

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    datasets = {name: golden_sets(spec, cfg)[name]}
    score = _scorer(spec, cfg, trained)
    ours = score(trained["artifact_dir"], trained["artifact_sha256"], "challenger", datasets)
    theirs = None
    if champion_version is not None:
        champion = Registry(cfg.registry_url).get(spec.name, version=champion_version)
        who = f"champion-v{champion.version}"
        theirs = score(champion.artifact_uri, champion.artifact_sha256, who, datasets)[name]
    return {"name": name, "challenger": ours[name], "champion": theirs}


def with_golden(evaluation: Evaluation, scores: list[GoldenScores]) -> Evaluation:
    """`evaluation` (the test split's) with the golden sets' scores, as evaluate_step gives."""
    champion = None if evaluation["champion_version"] is None else {}
    for one in scores:
        if champion is not None and one["champion"] is not None:
            champion[one["name"]] = one["champion"]
    return {
        **evaluation,
        "challenger_golden": {
            **evaluation["challenger_golden"],
            **{one["name"]: one["challenger"] for one in scores},
        },
        "champion_golden": champion
        if champion is None
        else {
            **(evaluation["champion_golden"] or {}),
            **champion,
        },
    }


def _reports_at(trained: Trained) -> Any:
    return storage.join(storage.parent(trained["artifact_dir"]), "evaluation")


def _scorer(spec: ModelSpec, cfg: Settings, trained: Trained) -> Any:
    """score(artifact, sha256, who, datasets) -> {data set: metrics}; reports under
    <the new artifact's run>/evaluation/<who>/<data set>."""
    from ml.artifact.store import fetch_artifact

    task = _task(spec)
    reports_at = _reports_at(trained)

    def score(artifact: str, sha256: str, who: str, datasets: dict) -> dict[str, Metrics]:
        local = fetch_artifact(artifact, sha256, cfg.cache)
        with storage.local_output(storage.join(reports_at, who)) as reports:
            return {
                split: task.evaluate(
                    local, data.data, sha256, report_dir=reports / split, **data.options
                )
                for split, data in datasets.items()
            }

    return score


def base_model_sha256(base_model: str) -> str | None:
    """sha256 of a local base model directory; None for a hub id (nothing local to hash).

    Links are followed: a checkpoint in Hugging Face's cache is links into its blob store."""
    from ml.artifact.integrity import directory_sha256

    path = Path(base_model)
    return directory_sha256(path, follow_symlinks=True) if path.is_dir() else None


def register_step(
    snapshot: Snapshot,
    trained: Trained,
    evaluation: Evaluation,
    lineage: Lineage,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
) -> Registered:
    """Register the trained model (with its task type) with its metrics and lineage.

    `lineage` carries the run: dag_id, run_id, logical_date, actor; the rest (data snapshot,
    partitions, base model and its hash, code version, parameters) is taken from the steps.
    """
    from ml.artifact.integrity import check_artifact
    from ml.registry.store import Registry

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    run = dict(lineage)
    actor = run.pop("actor", "intentflow")
    # What is registered is what was trained: hashed again (a link or a changed file since
    # fine_tune is refused); on object storage, present.
    check_artifact(trained["artifact_dir"], trained["artifact_sha256"])
    info = Registry(cfg.registry_url).register_version(
        spec.name,
        task_type=spec.task,
        artifact_uri=trained["artifact_dir"],
        artifact_sha256=trained["artifact_sha256"],
        base_model=trained["base_model"],
        base_model_sha256=base_model_sha256(trained["base_model"]),
        data_snapshot_hash=snapshot["hash"],
        dag_id=run.pop("dag_id", None),
        run_id=run.pop("run_id", None),
        logical_date=run.pop("logical_date", None),
        code_version=code_version(),
        params=trained.get("config", {}),
        lineage={
            **run,
            "snapshot_path": snapshot.get("path"),
            "window": snapshot.get("window"),
            "partitions": snapshot.get("partitions", []),
            # The transcripts table's version the snapshot read: `intentflow train --as-of`.
            **({"lake_version": snapshot["lake_version"]} if "lake_version" in snapshot else {}),
            "counts": snapshot.get("counts"),
            # The agents' corrections it learned from (ml.feedback.training).
            **({"feedback": snapshot["feedback"]} if snapshot.get("feedback") else {}),
            "evaluation_reports": evaluation["reports"],
        },
        metrics={
            "test": evaluation["challenger"],
            "validation": trained["validation"],
            **{f"golden:{name}": m for name, m in evaluation["challenger_golden"].items()},
        },
        actor=actor,
    )
    return {"model": info.model, "version": info.version}


def _policy(spec: ModelSpec, cfg: Settings) -> Any:
    """The configured promotion policy (INTENTFLOW_PROMOTION_*) on the model's metric (its
    configured promotion_metric, else its task's PROMOTION_METRIC) and its task's per-class
    metric."""
    from ml.registry.promotion import PromotionPolicy
    from ml.registry.views import task_view

    metric = spec.primary_metric
    return dataclasses.replace(
        PromotionPolicy.from_settings(cfg),
        metric=metric,
        class_metric=task_view(spec.task, metric).class_metric,
    )


def decide_step(
    evaluation: Evaluation, cfg: Settings | None = None, model: str | ModelSpec | None = None
) -> Decided:
    """What the policy would decide, changing nothing: the approval step shows it to a person
    before `promote_step` applies it."""
    from ml.registry.promotion import decide

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    decision = decide(evaluation["challenger"], evaluation["champion"], _policy(spec, cfg))
    return {"promote": decision.promote, "reasons": decision.reasons, "metric": spec.primary_metric}


def promote_step(
    registered: Registered,
    evaluation: Evaluation,
    actor: str,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
    approval: Approval | None = None,
) -> Promoted:
    """Apply the promotion policy; reasons go to the audit.

    The champion moves only if it is still the version `evaluate` compared against
    (`champion_version`): a champion moved by hand in the meantime (a rollback) stays, and
    the result's first reason says "skipped: champion changed since evaluation".

    `approval` is a person's answer where the model requires one: rejected, the version becomes
    `challenger` and the audit names the approver and their reason; approved, the approver is
    recorded with the promotion.
    """
    from ml.registry.promotion import promote, reject_promotion
    from ml.registry.store import Registry

    cfg = cfg or settings()
    spec = _spec(model, cfg)
    registry = Registry(cfg.registry_url)
    if approval is not None and not approval["approved"]:
        reason = approval.get("reason") or ""
        reject_promotion(
            registry,
            registered["model"],
            registered["version"],
            approver=approval.get("approver"),
            reason=reason,
            details={"evaluated_champion": evaluation["champion_version"]},
        )
        why = f"promotion rejected by {approval.get('approver') or 'approval timeout'}: {reason}"
        log.info("%s:%s → challenger: %s", registered["model"], registered["version"], why)
        return {**registered, "alias": "challenger", "reasons": [why]}
    if approval is not None:
        actor = f"{actor} (approved by {approval.get('approver')})"
    decision = promote(
        registry,
        registered["model"],
        registered["version"],
        evaluation["challenger"],
        evaluation["champion"],
        _policy(spec, cfg),
        actor,
        evaluated_champion=evaluation["champion_version"],
    )
    outcome = CHAMPION if decision.promote else "challenger"
    log.log(
        logging.WARNING if decision.champion_changed else logging.INFO,
        "%s:%s → %s: %s",
        registered["model"],
        registered["version"],
        outcome,
        "; ".join(decision.reasons),
    )
    return {**registered, "alias": outcome, "reasons": decision.reasons}


def run_on_snapshot(
    snap: Snapshot,
    params: dict[str, Any],
    run_key: str,
    actor: str,
    cfg: Settings | None = None,
    model: str | ModelSpec | None = None,
) -> Retrained:
    """fine_tune → evaluate → register → promote on a snapshot, as the DAG's tasks do."""
    cfg = cfg or settings()
    trained = train_step(snap, params, run_key, cfg, model)
    evaluation = evaluate_step(snap, trained, cfg, model)
    lineage: Lineage = {"dag_id": None, "run_id": run_key, "actor": actor}
    registered = register_step(snap, trained, evaluation, lineage, cfg, model)
    promoted = promote_step(registered, evaluation, actor, cfg, model)
    spec = _spec(model, cfg)
    return {
        **promoted,
        "task": spec.task,
        "metric": spec.primary_metric,
        "test": evaluation["challenger"],
    }

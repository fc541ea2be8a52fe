"""The retrain pipeline as steps: snapshot → fine_tune → evaluate → register → promote.

The `intent_retrain` DAG runs each step as a task and `intentflow train` runs them in order,
so both take one code path. Steps exchange small JSON-serialisable dicts (paths, hashes,
metrics), never models or data.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

from ml.config import Settings, settings

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
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pkg
    return f"{pkg}+g{sha}"


def snapshot_step(end: date, window_days: int, cfg: Settings | None = None) -> dict[str, Any]:
    from ml.dataset import make_snapshot

    cfg = cfg or settings()
    return make_snapshot(cfg.lake, cfg.snapshots, end, window_days)


def train_config(params: dict[str, Any]) -> Any:
    """A TrainConfig from the DAG params / CLI options that name its fields (others ignored)."""
    from ml.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in params.items() if k in names and v is not None})


def train_step(
    snapshot: dict[str, Any], params: dict[str, Any], run_key: str, cfg: Settings | None = None
) -> dict[str, Any]:
    from ml.device import gpu_lease, training_device
    from ml.train import fine_tune

    cfg = cfg or settings()
    # First: a gpu worker without its GPU fails here, before any data or model is loaded.
    device = training_device(cfg.require_gpu)
    # An empty param means "the default": the configured base model, then TrainConfig's.
    given = {k: v for k, v in params.items() if v not in (None, "")}
    config = train_config({"base_model": cfg.base_model, **given})
    safe_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_key)
    out_dir = cfg.artifacts / cfg.model_name / safe_key / "model"
    if device != "cuda":
        return fine_tune(Path(snapshot["path"]), out_dir, config)
    import torch

    # One GPU per training when a worker runs several at once; "cuda" is then that device.
    with gpu_lease(torch.cuda.device_count()) as index:
        torch.cuda.set_device(index)
        return fine_tune(Path(snapshot["path"]), out_dir, config)


def evaluate_step(
    snapshot: dict[str, Any], trained: dict[str, Any], cfg: Settings | None = None
) -> dict[str, Any]:
    """Score the new model and the current champion on the same test split."""
    from ml.evaluate import evaluate_model
    from ml.registry import Registry, RegistryError

    cfg = cfg or settings()
    test = Path(snapshot["path"]) / "test.parquet"
    result: dict[str, Any] = {
        "challenger": evaluate_model(
            Path(trained["artifact_dir"]), test, trained["artifact_sha256"]
        ),
        "champion": None,
        "champion_version": None,
    }
    try:
        champion = Registry(cfg.registry_url).get(cfg.model_name, alias=CHAMPION)
    except RegistryError:
        log.info("no %s@%s yet: nothing to compare against", cfg.model_name, CHAMPION)
        return result
    result["champion"] = evaluate_model(Path(champion.artifact_uri), test, champion.artifact_sha256)
    result["champion_version"] = champion.version
    return result


def register_step(
    snapshot: dict[str, Any],
    trained: dict[str, Any],
    evaluation: dict[str, Any],
    lineage: dict[str, Any],
    cfg: Settings | None = None,
) -> dict[str, Any]:
    from ml.registry import Registry

    cfg = cfg or settings()
    info = Registry(cfg.registry_url).register_version(
        cfg.model_name,
        artifact_uri=trained["artifact_dir"],
        artifact_sha256=trained["artifact_sha256"],
        base_model=trained["base_model"],
        data_snapshot_hash=snapshot["hash"],
        params=trained.get("config", {}),
        lineage={
            **lineage,
            "window": snapshot["window"],
            "partitions": snapshot["partitions"],
            "code_version": code_version(),
        },
        metrics={"test": evaluation["challenger"], "validation": trained["validation"]},
        actor=lineage.get("actor", "intentflow"),
    )
    return {"model": info.model, "version": info.version}


def promote_step(
    registered: dict[str, Any], evaluation: dict[str, Any], actor: str, cfg: Settings | None = None
) -> dict[str, Any]:
    from ml.promotion import PromotionPolicy, promote
    from ml.registry import Registry

    cfg = cfg or settings()
    decision = promote(
        Registry(cfg.registry_url),
        registered["model"],
        registered["version"],
        evaluation["challenger"],
        evaluation["champion"],
        PromotionPolicy(),
        actor,
    )
    outcome = CHAMPION if decision.promote else "challenger"
    log.info(
        "%s:%s → %s: %s",
        registered["model"],
        registered["version"],
        outcome,
        "; ".join(decision.reasons),
    )
    return {**registered, "alias": outcome, "reasons": decision.reasons}


def run_on_snapshot(
    snap: dict[str, Any],
    params: dict[str, Any],
    run_key: str,
    actor: str,
    cfg: Settings | None = None,
) -> dict[str, Any]:
    """fine_tune → evaluate → register → promote on a snapshot, as the DAG's tasks do."""
    cfg = cfg or settings()
    trained = train_step(snap, params, run_key, cfg)
    evaluation = evaluate_step(snap, trained, cfg)
    lineage = {"dag_id": None, "run_id": run_key, "actor": actor}
    registered = register_step(snap, trained, evaluation, lineage, cfg)
    return {**promote_step(registered, evaluation, actor, cfg), "test": evaluation["challenger"]}

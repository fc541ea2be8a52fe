"""`intentflow registry ...`: model versions, their metrics and lineage, aliases, the audit log.

Each command calls ml.registry (the same functions the retrain DAGs and the registry page in
the Airflow UI use); heavy imports stay inside the commands so `--help` answers at once.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml.cli.output import emit, fail, metrics_text, name_check
from ml.config import settings

if TYPE_CHECKING:
    from ml.registry.store import Registry, VersionInfo

registry_app = typer.Typer(help="Model versions, metrics and aliases.", no_args_is_help=True)


def open_registry(**kwargs: Any) -> Registry:
    """The configured registry, or a clear error (bad settings, old schema, database down)."""
    from ml.config import ConfigError
    from ml.registry.errors import RegistryError
    from ml.registry.store import Registry

    try:
        return Registry(settings().registry_url, **kwargs)
    except (RegistryError, ConfigError) as exc:
        fail(str(exc))


def _default_actor() -> str:
    import getpass

    return os.environ.get("USER") or getpass.getuser()


Reason = Annotated[str, typer.Option(help="Why (stored in the audit log; required).")]
Actor = Annotated[
    str | None, typer.Option(help="Who decides (stored in the audit log); default: $USER.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@registry_app.command("upgrade")
def registry_upgrade(as_json: AsJson = False) -> None:
    """Create or migrate the registry schema to the latest revision (alias: migrate)."""
    registry = open_registry(auto_upgrade=True)
    before, now = registry.schema
    state = f"upgraded from {before or 'empty'} to {now}" if before != now else f"already at {now}"
    emit(
        {"url": registry.where, "from": before, "to": now},
        as_json,
        f"registry {registry.where}: {state}",
    )


# `migrate`, as in `airflow db migrate`.
registry_app.command("migrate", help="Alias of `upgrade`.")(registry_upgrade)


@registry_app.command("list")
def registry_list(
    model: Annotated[
        str | None,
        typer.Option(help="Only this registered model.", callback=name_check("model")),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Versions with their aliases and test metrics."""
    from ml.registry.errors import RegistryError

    registry = open_registry()
    try:
        versions = registry.list_versions(model)
        if model is not None and not versions:
            registry.get(model)  # raises "model ... is not registered (registered models: ...)"
    except RegistryError as exc:
        fail(str(exc))
    rows = version_rows(versions)
    lines = [f"{'model':<12}{'version':>8}  {'aliases':<22}{'task':<10}{'created':<18}test metrics"]
    for r in rows:
        lines.append(
            f"{r['model']:<12}{r['version']:>8}  {','.join(r['aliases']) or '-':<22}"
            f"{r['task']:<10}{r['created_at']:%Y-%m-%d %H:%M}  {metrics_text(r['metrics'], ' ')}"
        )
    emit(rows, as_json, "\n".join(lines) if rows else "no registered versions")


def _resolve(ref: str) -> VersionInfo:
    from ml.registry.errors import RegistryError

    try:
        return open_registry().resolve(ref)
    except RegistryError as exc:
        fail(str(exc))


def _info_dict(v: VersionInfo) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(v)


@registry_app.command("show")
def registry_show(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION or NAME (= champion).")],
    as_json: AsJson = False,
) -> None:
    """One version: aliases, metrics, lineage and its audit trail."""
    from ml.registry.errors import RegistryError
    from ml.retrain.specs import metric_view

    registry = open_registry()
    try:
        v = registry.resolve(ref)
        audit = [r for r in registry.audit(v.model) if r["version"] == v.version]
    except RegistryError as exc:
        fail(str(exc))
    test = v.metrics.get("test", {})
    lines = [
        f"{v.model}:{v.version}  aliases={','.join(v.aliases) or '-'}  created {v.created_at:%Y-%m-%d %H:%M} by {v.created_by}  task {v.task_type}",
        f"  artifact  {v.artifact_uri}  sha256 {v.artifact_sha256}",
        f"  data      snapshot {v.data_snapshot_hash}",
        f"  run       {v.dag_id or '-'} / {v.run_id or '-'}",
    ]
    for name in sorted(k for k in test if k != "per_class"):
        lines.append(f"  test {name:<16}{test[name]:.4f}")
    per_class = metric_view(v.model, v.task_type).class_metric
    for label, per in sorted(test.get("per_class", {}).items()):
        lines.append(
            f"    {label:<24} {per_class} {per.get(per_class, float('nan')):.4f}"
            f"  n={per.get('support', '?')}"
        )
    for r in audit:
        lines.append(
            f"  {r['at']:%Y-%m-%d %H:%M}  {r['action']:<10}{r['alias'] or '':<12}{r['actor']}: {r['reason'] or ''}"
        )
    emit(_info_dict(v) | {"audit": audit}, as_json, "\n".join(lines))


@registry_app.command("lineage")
def registry_lineage(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION or NAME (= champion).")],
    as_json: AsJson = False,
) -> None:
    """Which data, base model, code and run made a version: `intent@champion`."""
    v = _resolve(ref)
    lineage = {
        "model": v.model,
        "version": v.version,
        "aliases": list(v.aliases),
        "dag_id": v.dag_id,
        "run_id": v.run_id,
        "logical_date": v.logical_date,
        "data_snapshot_hash": v.data_snapshot_hash,
        "partitions": v.lineage.get("partitions", []),
        # The transcripts table's version the snapshot read (`intentflow train --as-of`).
        "lake_version": v.lineage.get("lake_version"),
        "window": v.lineage.get("window"),
        # The agents' corrections the snapshot used (ml.feedback.training), if any.
        "feedback": v.lineage.get("feedback"),
        "base_model": v.base_model,
        "base_model_sha256": v.base_model_sha256,
        "code_version": v.code_version,
        "params": v.params,
        "artifact_uri": v.artifact_uri,
        "artifact_sha256": v.artifact_sha256,
        "created_by": v.created_by,
        "created_at": v.created_at,
    }
    parts = [_partition_text(p) for p in lineage["partitions"]]
    lines = [f"{v.model}:{v.version} ({','.join(v.aliases) or 'no alias'})"]
    for key in ("dag_id", "run_id", "logical_date", "data_snapshot_hash"):
        lines.append(f"  {key:<20}{lineage[key] if lineage[key] is not None else '-'}")
    lines.append(f"  {'partitions':<20}{', '.join(parts) or '-'}")
    if lineage["lake_version"] is not None:
        lines.append(f"  {'lake_version':<20}{lineage['lake_version']}")
    if lineage["feedback"]:
        fb = lineage["feedback"]
        lines.append(
            f"  {'feedback':<20}{fb.get('corrections')} correction(s) "
            f"(feedback table v{fb.get('feedback_version')}, "
            f"{fb.get('disagreements_dropped', 0)} disagreement(s) dropped)"
        )
    for key in (
        "base_model",
        "base_model_sha256",
        "code_version",
        "artifact_uri",
        "artifact_sha256",
    ):
        lines.append(f"  {key:<20}{lineage[key] if lineage[key] is not None else '-'}")
    lines.append(f"  {'params':<20}{json.dumps(v.params, sort_keys=True)}")
    emit(lineage, as_json, "\n".join(lines))


def _partition_text(part: Any) -> str:
    """A lake partition `{day, content_hash}` or a labeled file `{file, sha256}` (a snapshot of
    `train --data`, entities or answers), with the first 12 digits of its hash."""
    if isinstance(part, dict) and part.get("day"):
        return f"{part['day']} ({str(part.get('content_hash', '?'))[:12]})"
    if isinstance(part, dict) and part.get("file"):
        return f"{part['file']} (sha256 {str(part.get('sha256', '?'))[:12]})"
    return str(part)


@registry_app.command("promote")
def registry_promote(
    ref: Annotated[str, typer.Argument(help="The version to promote: NAME:VERSION or NAME@ALIAS.")],
    reason: Reason,
    actor: Actor = None,
    alias: Annotated[
        str, typer.Option(help="The alias to move.", callback=name_check("alias"))
    ] = "champion",
    as_json: AsJson = False,
) -> None:
    """Point an alias (default: champion) at a version, by hand; audited with actor and reason."""
    from ml.registry.errors import RegistryError
    from ml.registry.promotion import promote_manually

    who = actor or _default_actor()
    try:
        v = promote_manually(open_registry(), ref, actor=who, reason=reason, alias=alias)
    except RegistryError as exc:
        fail(str(exc))
    emit(
        {"model": v.model, "version": v.version, "alias": alias, "actor": who, "reason": reason},
        as_json,
        f"{v.model}@{alias} → {v.model}:{v.version} (by {who}: {reason})",
    )


@registry_app.command("rollback")
def registry_rollback(
    model: Annotated[
        str,
        typer.Argument(help="The registered model, e.g. intent.", callback=name_check("model")),
    ],
    reason: Reason,
    actor: Actor = None,
    to: Annotated[
        int | None,
        typer.Option(min=1, help="Version to return to; default: the previous champion."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Move the champion back; audited with actor and reason."""
    from ml.registry.errors import RegistryError
    from ml.registry.promotion import rollback

    who = actor or _default_actor()
    try:
        v = rollback(open_registry(), model, actor=who, reason=reason, version=to)
    except RegistryError as exc:
        fail(str(exc))
    emit(
        {
            "model": v.model,
            "version": v.version,
            "alias": "champion",
            "actor": who,
            "reason": reason,
        },
        as_json,
        f"{v.model}@champion → {v.model}:{v.version} (rollback by {who}: {reason})",
    )


@registry_app.command("diff")
def registry_diff(
    a: Annotated[str, typer.Argument(help="First version (NAME:VERSION or NAME@ALIAS).")],
    b: Annotated[str, typer.Argument(help="Second version.")],
    as_json: AsJson = False,
) -> None:
    """Two versions side by side: metrics (overall and per class) and params that differ."""
    from ml.registry.store import diff_versions

    left, right = _resolve(a), _resolve(b)
    d = diff_versions(left, right)
    lines = [f"{'':<34}{a:>14}{b:>14}{'delta':>10}"]
    for row in d["metrics"]:
        label = f"{row['split']}/{row['class'] + '/' if row['class'] else ''}{row['name']}"
        lines.append(
            f"{label:<34}{_num(row['a']):>14}{_num(row['b']):>14}{_num(row['delta'], True):>10}"
        )
    for key, (x, y) in d["params"].items():
        lines.append(f"param {key:<28}{x!s:>14}{y!s:>14}")
    emit(d, as_json, "\n".join(lines))


def _num(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def version_rows(versions: list[VersionInfo]) -> list[dict[str, Any]]:
    """Versions as rows, each with its task's headline test metrics (ml.registry.views)."""
    from ml.retrain.specs import metric_view

    views: dict[tuple[str, str], Any] = {}
    rows = []
    for v in versions:
        key = (v.model, v.task_type)
        if key not in views:  # one models-configuration read per model, not per version
            views[key] = metric_view(*key)
        view = views[key]
        test = v.metrics.get("test", {})
        rows.append(
            {
                "model": v.model,
                "version": v.version,
                "aliases": list(v.aliases),
                "task": v.task_type,
                "metrics": view.headline(test),  # the task's own, primary first
                # Intent's two headline figures under their earlier keys, for scripts.
                "test_accuracy": test.get("accuracy"),
                "test_macro_f1": test.get("macro_f1"),
                "data_snapshot_hash": v.data_snapshot_hash,
                "artifact_uri": v.artifact_uri,
                "created_at": v.created_at,
            }
        )
    return rows

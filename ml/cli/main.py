"""`intentflow`: the library's functions from the shell, without Airflow.

Each command calls the same `ml` function the DAG task calls; heavy imports stay inside the
commands so `intentflow --help` answers at once.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ml.config import settings

app = typer.Typer(
    help="Intentflow: fresh intent models from customer-service transcripts.", no_args_is_help=True
)
registry_app = typer.Typer(help="Model versions, metrics and aliases.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


def _emit(payload: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def _registered_artifact(ref: str) -> tuple[Any, Path, str]:
    """A registered version, its artifact fetched and sha256-checked locally, and its task type."""
    from ml.artifact.store import fetch_artifact
    from ml.registry.store import Registry
    from ml.tasks.contract import artifact_task

    cfg = settings()
    version = Registry(cfg.registry_url).resolve(ref)
    artifact = fetch_artifact(version.artifact_uri, version.artifact_sha256, cfg.cache)
    return version, artifact, artifact_task(artifact)


def _model_errors() -> tuple[type[Exception], ...]:
    """What loading or scoring a registered model raises for a user-facing reason."""
    from ml.artifact.integrity import ArtifactIntegrityError
    from ml.registry.errors import RegistryError
    from ml.tasks.contract import UnknownTaskError

    return (RegistryError, ArtifactIntegrityError, UnknownTaskError, ValueError, FileNotFoundError)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    # Long commands report progress even without --verbose: a bar on a terminal, else these
    # lines (ml.progress; INTENTFLOW_PROGRESS=off silences both).
    logging.getLogger("ml.progress").setLevel(logging.INFO)
    if not verbose:
        # transformers' weight-loading progress bars would clutter a terminal or a pipe.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the daily drops (DIR/YYYY-MM-DD/*.jsonl).")],
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 7,
    per_day: Annotated[
        int, typer.Option(min=1, help="Records per day, broken ones included.")
    ] = 400,
    start: Annotated[
        str | None, typer.Option(help="First day (YYYY-MM-DD); default: DAYS days before today.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
) -> None:
    """Write realistic synthetic customer-service chats as daily JSONL drops."""
    from ml.synthetic.generate import generate as run

    first = date.fromisoformat(start) if start else None
    for day in run(out, days=days, per_day=per_day, start=first, seed=seed):
        typer.echo(
            f"{day.day}  {day.records:6d} records  {day.broken:4d} broken  {len(day.files)} file(s)"
        )


@app.command()
def ingest(
    day: Annotated[str, typer.Option("--date", help="Day to ingest (YYYY-MM-DD).")],
    source: Annotated[
        str | None,
        typer.Option(
            help="Folder or fsspec URL of daily JSONL drops, or a JSON source spec "
            "(format, url, columns, ...; see README, Ingestion); default INTENTFLOW_SOURCE."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ingest one day: discover → normalise → validate → publish, as the DAG does."""
    from ml.ingest.steps import SourceError, ingest_day
    from ml.ingest.validation import DataQualityError

    try:
        result = ingest_day(date.fromisoformat(day), source)
    except (SourceError, DataQualityError) as exc:
        _fail(str(exc))
    text = (
        f"{result['day']}: read {result['rows_read']}, written {result['rows_written']}, "
        f"quarantined {result['rows_quarantined']}\n  partition  {result['partition']}\n"
        f"  quarantine {result['quarantine_file']}\n  report     {result['validation_report']}"
    )
    _emit(result, as_json, text)


# ml.snapshots.labeled.load_labeled reads these with ingestion's adapters (ml.ingest.sources).
LABELED_FORMATS = (
    "Formats (by content): JSONL transcripts; flat JSONL such as DSTC11 (utterance, intent); "
    "CSV (e.g. Banking77, Bitext); CLINC150 JSON; ABCD JSON; Parquet."
)
TEXT_COLUMN_HELP = (
    "Text column of a CSV/flat JSONL --data; if 'text' is absent: utterance, then instruction."
)
LABEL_COLUMN_HELP = (
    "Label column of a CSV/flat JSONL --data; if 'label' is absent: intent, then category."
)


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option(help=f"A labeled file instead of the lake. {LABELED_FORMATS}"),
    ] = None,
    window_days: Annotated[int, typer.Option(min=1, help="Days of the lake to train on.")] = 7,
    end_date: Annotated[
        str | None, typer.Option(help="Last day of the window (YYYY-MM-DD); default yesterday.")
    ] = None,
    text_column: Annotated[str, typer.Option(help=TEXT_COLUMN_HELP)] = "text",
    label_column: Annotated[str, typer.Option(help=LABEL_COLUMN_HELP)] = "label",
    base_model: Annotated[
        str | None,
        typer.Option(help="Local Hugging Face checkpoint; default the packaged MiniLM-L6."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs; default: the library's.")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate; default: the library's.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Batch size; default: the library's.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="A configured model (see README, Task types); default: the intent model."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Task type (intent, entities, answers) of --data; the model is named after "
            "it unless --model names one."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Snapshot → fine-tune → evaluate → register → promote, without Airflow."""
    from ml.config import ConfigError
    from ml.registry.views import task_view
    from ml.retrain import steps as retrain
    from ml.snapshots.labeled import snapshot_from_file
    from ml.snapshots.writer import EmptySnapshotError
    from ml.tasks.contract import UnknownTaskError, task_module

    cfg = settings()
    try:
        spec = _model_for(model, task, data)
        task_mod = task_module(spec.task)
    except (ConfigError, UnknownTaskError) as exc:
        _fail(str(exc))
    given = {
        "base_model": base_model,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
    }
    # The model's configured defaults (as in its DAG form), then what was given here.
    params = {**spec.params, **{k: v for k, v in given.items() if v is not None}}
    run_key = f"cli-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        if data is not None and spec.task == "intent":
            snap = snapshot_from_file(data, cfg.snapshots, text_column, label_column)
        elif data is not None:
            snap = task_mod.build_dataset(str(data), cfg.snapshots / spec.name, **spec.options)
        else:
            end = date.fromisoformat(end_date) if end_date else date.today() - timedelta(days=1)
            snap = retrain.snapshot_step(end, window_days, cfg, spec)
    except (EmptySnapshotError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    result = retrain.run_on_snapshot(snap, params, run_key, actor="cli", cfg=cfg, model=spec)
    text = (
        f"{result['model']}:{result['version']} → {result['alias']}  "
        f"{_headline(result['test'], task_view(result['task'], result['metric']))}\n  "
        + "\n  ".join(result["reasons"])
    )
    _emit(result, as_json, text)


def _model_for(model: str | None, task: str | None, data: Path | None) -> Any:
    """The configured model `model` (or named after `task`); else, with --data and --task, an
    unconfigured one of that task type trained from that file."""
    from ml.config import ConfigError
    from ml.retrain.specs import ModelSpec, configured_models

    name = model or (task if task and task != "intent" else None) or settings().model_name
    found = {m.name: m for m in configured_models()}
    if name in found:
        spec = found[name]
        if task and spec.task != task:
            raise ConfigError(f"model {name!r} is configured with task type {spec.task!r}")
        return spec
    if task and data is not None:
        return ModelSpec(name=name, task=task, source=str(data))
    raise ConfigError(
        f"no configured model {name!r} (configured: {', '.join(found)}); "
        "give --task and --data to train one from a file"
    )


def _headline(metrics: dict[str, Any], view: Any) -> str:
    """The test metrics a person reads first (an ml.registry.views.MetricView): the primary one,
    then the task's usual ones."""
    return f"test {_metrics_text(view.headline(metrics), ' ')}  n={metrics.get('n')}"


def _metrics_text(metrics: dict[str, float], sep: str) -> str:
    return "  ".join(f"{k}{sep}{v:.4f}" for k, v in metrics.items()) or "-"


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="NAME@ALIAS or NAME:VERSION, e.g. intent@champion.")],
    data: Annotated[
        Path,
        typer.Option(
            help=f"A labeled file or a snapshot folder (its test split). {LABELED_FORMATS}"
        ),
    ],
    text_column: Annotated[str, typer.Option(help=TEXT_COLUMN_HELP)] = "text",
    label_column: Annotated[str, typer.Option(help=LABEL_COLUMN_HELP)] = "label",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a registered model on a labeled file (dispatched by the artifact's task type)."""
    from ml.registry.views import metric_view
    from ml.tasks.contract import task_module
    from ml.tasks.intent.evaluation import evaluate_model

    try:
        version, artifact, kind = _registered_artifact(model)
        if kind == "intent":  # the only task with column options
            metrics = evaluate_model(
                artifact, data, version.artifact_sha256, text_column, label_column
            )
        else:
            metrics = task_module(kind).evaluate(artifact, data, version.artifact_sha256)
    except _model_errors() as exc:
        _fail(str(exc))
    headline = _headline(metrics, metric_view(version.model, kind))
    text = f"{version.model}:{version.version} on {data}: {headline}"
    if "ece_uncalibrated" in metrics:  # intent: calibration before and after its temperature
        text += (
            f"\n  calibration error (ECE) {metrics['ece']:.4f} at temperature "
            f"{metrics['temperature']:.4f}, {metrics['ece_uncalibrated']:.4f} uncalibrated"
        )
    for label, per in metrics.get("per_class", {}).items() if kind != "intent" else ():
        scores = "  ".join(f"{k} {v:.4f}" for k, v in per.items() if k != "support")
        text += f"\n  {label:<16} {scores}  n={per.get('support', '?')}"
    _emit(
        {"model": version.model, "version": version.version, "task": kind, **metrics},
        as_json,
        text,
    )


@app.command()
def predict(
    texts: Annotated[list[str], typer.Argument(help="Customer message(s).")],
    model: Annotated[
        str, typer.Option(help="NAME@ALIAS or NAME:VERSION, e.g. entities@champion.")
    ] = "intent@champion",
    top_k: Annotated[int, typer.Option(min=1, help="Labels / answers to list per text.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A registered model's output per text: intent and probability, entity spans with their
    types, or the top answers with scores (by the model's task type)."""
    from ml.tasks.contract import task_module

    try:
        version, artifact, kind = _registered_artifact(model)
        payload = task_module(kind).predict(artifact, texts, top_k, version.artifact_sha256)
    except _model_errors() as exc:
        _fail(str(exc))
    _emit(payload, as_json, "\n".join(_prediction_text(p) for p in payload))


def _prediction_text(p: dict[str, Any]) -> str:
    if "intent" in p:
        return f"{p['intent']}\t{p['probability']:.3f}\t{p['text']}"
    if "spans" in p:
        spans = [
            f"  {s['type']:<13}{s['text']!r} [{s['start']}:{s['end']}]  {s['score']:.3f}"
            for s in p["spans"]
        ]
        return "\n".join([p.get("text", ""), *(spans or ["  (no entities)"])])
    # A ranked list (answers): whatever list of {"score", ...} the task returns.
    ranked = next((v for v in p.values() if isinstance(v, list)), [])
    rows = [f"  {r.get('score', 0.0):.3f}  {r.get('answer') or r.get('text') or r}" for r in ranked]
    return "\n".join([str(p.get("text", "")), *rows])


def _registry(**kwargs: Any) -> Any:
    """The configured registry, or a clear error (bad settings, old schema, database down)."""
    from ml.config import ConfigError
    from ml.registry.errors import RegistryError
    from ml.registry.store import Registry

    try:
        return Registry(settings().registry_url, **kwargs)
    except (RegistryError, ConfigError) as exc:
        _fail(str(exc))


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
    registry = _registry(auto_upgrade=True)
    before, now = registry.schema
    state = f"upgraded from {before or 'empty'} to {now}" if before != now else f"already at {now}"
    _emit(
        {"url": registry.where, "from": before, "to": now},
        as_json,
        f"registry {registry.where}: {state}",
    )


# `migrate`, as in `airflow db migrate`.
registry_app.command("migrate", help="Alias of `upgrade`.")(registry_upgrade)


@registry_app.command("list")
def registry_list(
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    as_json: AsJson = False,
) -> None:
    """Versions with their aliases and test metrics."""
    from ml.registry.errors import RegistryError

    registry = _registry()
    try:
        versions = registry.list_versions(model)
        if model is not None and not versions:
            registry.get(model)  # raises "model ... is not registered (registered models: ...)"
    except RegistryError as exc:
        _fail(str(exc))
    rows = _version_rows(versions)
    lines = [f"{'model':<12}{'version':>8}  {'aliases':<22}{'task':<10}{'created':<18}test metrics"]
    for r in rows:
        lines.append(
            f"{r['model']:<12}{r['version']:>8}  {','.join(r['aliases']) or '-':<22}"
            f"{r['task']:<10}{r['created_at']:%Y-%m-%d %H:%M}  {_metrics_text(r['metrics'], ' ')}"
        )
    _emit(rows, as_json, "\n".join(lines) if rows else "no registered versions")


def _resolve(ref: str) -> Any:
    from ml.registry.errors import RegistryError

    try:
        return _registry().resolve(ref)
    except RegistryError as exc:
        _fail(str(exc))


def _info_dict(v: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(v)


@registry_app.command("show")
def registry_show(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION or NAME (= champion).")],
    as_json: AsJson = False,
) -> None:
    """One version: aliases, metrics, lineage and its audit trail."""
    from ml.registry.errors import RegistryError
    from ml.registry.views import metric_view

    registry = _registry()
    try:
        v = registry.resolve(ref)
        audit = [r for r in registry.audit(v.model) if r["version"] == v.version]
    except RegistryError as exc:
        _fail(str(exc))
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
    _emit(_info_dict(v) | {"audit": audit}, as_json, "\n".join(lines))


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
        "window": v.lineage.get("window"),
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
    for key in (
        "base_model",
        "base_model_sha256",
        "code_version",
        "artifact_uri",
        "artifact_sha256",
    ):
        lines.append(f"  {key:<20}{lineage[key] if lineage[key] is not None else '-'}")
    lines.append(f"  {'params':<20}{json.dumps(v.params, sort_keys=True)}")
    _emit(lineage, as_json, "\n".join(lines))


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
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
    as_json: AsJson = False,
) -> None:
    """Point an alias (default: champion) at a version, by hand; audited with actor and reason."""
    from ml.registry.errors import RegistryError
    from ml.registry.promotion import promote_manually

    who = actor or _default_actor()
    try:
        v = promote_manually(_registry(), ref, actor=who, reason=reason, alias=alias)
    except RegistryError as exc:
        _fail(str(exc))
    _emit(
        {"model": v.model, "version": v.version, "alias": alias, "actor": who, "reason": reason},
        as_json,
        f"{v.model}@{alias} → {v.model}:{v.version} (by {who}: {reason})",
    )


@registry_app.command("rollback")
def registry_rollback(
    model: Annotated[str, typer.Argument(help="The registered model, e.g. intent.")],
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
        v = rollback(_registry(), model, actor=who, reason=reason, version=to)
    except RegistryError as exc:
        _fail(str(exc))
    _emit(
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
    _emit(d, as_json, "\n".join(lines))


def _num(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _version_rows(versions: list[Any]) -> list[dict[str, Any]]:
    """Versions as rows, each with its task's headline test metrics (ml.registry.views)."""
    from ml.registry.views import metric_view

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


@app.command()
def report(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What is in the lake (rows and quarantine per day) and in the registry (every model)."""
    from ml import lake

    cfg = settings()
    days = [lake.read_manifest(cfg.lake, d) for d in lake.list_partitions(cfg.lake)]
    versions = _version_rows(_registry().list_versions())
    lines = [f"lake {cfg.lake}", f"{'day':<12}{'read':>7}{'written':>9}{'quarantined':>13}  rules"]
    for m in days:
        rules = ", ".join(f"{k}={v}" for k, v in m["quarantine_rules"].items())
        lines.append(
            f"{m['day']:<12}{m['rows_read']:>7}{m['rows_written']:>9}{m['rows_quarantined']:>13}  {rules}"
        )
    lines.append(f"registry {cfg.registry_url}")
    for v in versions:
        lines.append(
            f"{v['model']}:{v['version']}  aliases={','.join(v['aliases']) or '-'}  "
            f"test {_metrics_text(v['metrics'], '=')}"
        )
    _emit({"days": days, "versions": versions}, as_json, "\n".join(lines))

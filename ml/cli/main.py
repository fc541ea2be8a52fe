"""`intentflow`: the library's functions from the shell, without Airflow.

Each command calls the same `ml` function the DAG task calls; heavy imports stay inside the
commands so `intentflow --help` answers at once.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml.cli.erase import erase_command
from ml.cli.feedback import feedback_app
from ml.cli.lake import lake_app
from ml.cli.monitor import monitor_command
from ml.cli.output import emit, fail, headline, metrics_text, name_check, oos_text
from ml.cli.quarantine import quarantine_app
from ml.cli.registry import open_registry, registry_app, version_rows
from ml.cli.tuning import with_tuning
from ml.config import settings
from ml.retrain.specs import END_DATE, WINDOW_DAYS

if TYPE_CHECKING:
    from ml.retrain.specs import ModelSpec

app = typer.Typer(
    help="Intentflow: fresh intent models from customer-service transcripts.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(lake_app, name="lake")
app.add_typer(feedback_app, name="feedback")
app.command("erase")(erase_command)
app.command("monitor")(monitor_command)


def _registered_artifact(ref: str) -> tuple[Any, Path, str]:
    """A registered version, its artifact fetched and sha256-checked locally, and its task type."""
    from ml.artifact.store import fetch_registered
    from ml.registry.store import Registry

    cfg = settings()
    version = Registry(cfg.registry_url).resolve(ref)
    artifact, task = fetch_registered(version.artifact_uri, version.artifact_sha256, cfg.cache)
    return version, artifact, task


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
            help="Name of a configured source: `default` (INTENTFLOW_SOURCE) or one of "
            "INTENTFLOW_SOURCES_FILE (docs/ingestion.md#sources). Default: default."
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            help="Instead of --source: a local folder of daily JSONL drops "
            "(PATH/YYYY-MM-DD/*.jsonl), read with this shell's own file access."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ingest one day: discover → normalise → validate → publish, as the DAG does."""
    from ml.config import ConfigError
    from ml.ingest.sources import SourceSpec
    from ml.ingest.steps import SourceError, ingest_day
    from ml.ingest.validation import DataQualityError

    if source is not None and path is not None:
        fail("give --source (a configured name) or --path (a local folder), not both")
    if path is not None and ("://" in path or path.lstrip().startswith("{")):
        fail("--path is a local folder; other sources are named in INTENTFLOW_SOURCES_FILE")
    try:
        # --path: the operator reads their own files, as `cat` would; the DAG has no such way.
        chosen = SourceSpec(url=str(Path(path).expanduser().absolute())) if path else source
        result = ingest_day(date.fromisoformat(day), chosen)
    except (SourceError, DataQualityError, ConfigError) as exc:
        fail(str(exc))
    text = (
        f"{result['day']}: read {result['rows_read']}, written {result['rows_written']}, "
        f"quarantined {result['rows_quarantined']}\n  partition  {result['partition']}\n"
        f"  quarantine {result['quarantine_file']}\n  report     {result['validation_report']}"
    )
    emit(result, as_json, text)


# Every task type reads --data with ingestion's adapters (ml.snapshots.formats), the same way
# for train and evaluate.
LABELED_FORMATS = (
    "Formats: CSV (e.g. Banking77, Bitext), JSON lines (e.g. DSTC11), Parquet; for intent also "
    "JSONL transcripts, CLINC150 JSON, ABCD JSON. Entities read spans from a `spans` column or "
    "Bitext's entity_type/start_offset/end_offset; answers pair each question with its reply."
)
TEXT_COLUMN_HELP = (
    "Text (question) column of a CSV/JSON lines/Parquet --data; if 'text' is absent: "
    "utterance, then instruction."
)
LABEL_COLUMN_HELP = (
    "Label (intent) column of a CSV/JSON lines/Parquet --data; if 'label' is absent: intent, "
    "then category."
)
ANSWER_COLUMN_HELP = (
    "Reply column of an answers --data; if 'answer' is absent: response (a snapshot split: "
    "answer_id)."
)


def _given(ctx: typer.Context, **options: Any) -> dict[str, Any]:
    """The `options` given on the command line, not left at their default: a task's options
    (ml.tasks.contract) go on only when given, so that the task's own defaults and a configured
    model's options apply otherwise."""
    return {k: v for k, v in options.items() if ctx.get_parameter_source(k).name != "DEFAULT"}


def _as_of(value: str | None) -> int | datetime | None:
    """--as-of's value: a table version, or a time (naive: UTC)."""
    if value is None:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--as-of {value!r}: give a table version (an integer) or an ISO 8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command()
@with_tuning
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(help=f"A labeled file instead of the lake. {LABELED_FORMATS}"),
    ] = None,
    window_days: Annotated[
        int, typer.Option(min=WINDOW_DAYS.minimum, max=WINDOW_DAYS.maximum, help=WINDOW_DAYS.help)
    ] = 7,
    end_date: Annotated[str | None, typer.Option(help=END_DATE.help)] = None,
    test_data: Annotated[
        Path | None,
        typer.Option(
            help="With --data (intent): a labeled file scored as the test split, on which the "
            "model is compared and promoted. Read with the same columns as --data."
        ),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.8,
            help="With --data (intent): the share of the file held out as the test split. "
            "Default: none; the whole file trains except a 10% validation carve-out for early "
            "stopping, and without a test (this or --test-data) the model is registered but "
            "not promoted.",
        ),
    ] = None,
    text_column: Annotated[str, typer.Option(help=TEXT_COLUMN_HELP)] = "text",
    label_column: Annotated[str, typer.Option(help=LABEL_COLUMN_HELP)] = "label",
    answer_column: Annotated[str, typer.Option(help=ANSWER_COLUMN_HELP)] = "answer",
    model: Annotated[
        str | None,
        typer.Option(
            help="A configured model (docs/task-types.md); default: the intent model.",
            callback=name_check("model"),
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Task type (intent, entities, answers) of --data; the model is named after "
            "it unless --model names one."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Read the lake as it was: a table VERSION (an integer) or a TIMESTAMP "
            "(ISO 8601; UTC unless it names a zone). Rebuilds the snapshot that version gave.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    tuning: dict[str, Any] | None = None,
) -> None:
    """Snapshot → fine-tune → evaluate → register → promote, without Airflow."""
    import dataclasses

    from ml.config import ConfigError
    from ml.quarantine import QUARANTINE_FILE
    from ml.registry.views import task_view
    from ml.retrain import steps as retrain
    from ml.snapshots.writer import EmptySnapshotError

    cfg = settings()
    try:
        spec = _model_for(model, task, data)
    except ConfigError as exc:
        fail(str(exc))
    if data is not None:
        # The file instead of the model's own source; options given here over its configured ones.
        columns = _given(
            ctx, text_column=text_column, label_column=label_column, answer_column=answer_column
        )
        if spec.task == "intent":
            # A user's file trains whole (minus validation); a test only when asked for.
            columns["test_fraction"] = test_fraction or 0.0
            columns["test_data"] = str(test_data) if test_data else None
        elif test_data is not None or test_fraction is not None:
            fail("--test-data and --test-fraction apply to intent models only")
        spec = dataclasses.replace(spec, source=str(data), options={**spec.options, **columns})
    elif test_data is not None or test_fraction is not None:
        fail("--test-data and --test-fraction go with --data")
    # The model's configured defaults (as in its DAG form), then what was given here.
    params = {**spec.params, **(tuning or {})}
    run_key = f"cli-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    end = date.fromisoformat(end_date) if end_date else date.today() - timedelta(days=1)
    try:
        version = _as_of(as_of)
        if version is not None and (data is not None or not spec.from_lake):
            fail("--as-of reads the lake: it applies to a model trained from the lake only")
        snap = retrain.snapshot_step(end, window_days, cfg, spec, as_of=version)
    except (EmptySnapshotError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    result = retrain.run_on_snapshot(snap, params, run_key, actor="cli", cfg=cfg, model=spec)
    text = (
        f"{result['model']}:{result['version']} → {result['alias']}  "
        f"{headline(result['test'], task_view(result['task'], result['metric']))}\n  "
        + "\n  ".join(result["reasons"])
    )
    if not (result.get("test") or {}).get(
        "n"
    ):  # train --data without a test: nothing to promote on
        text += (
            f"\n  no test split: score one with --test-data FILE or --test-fraction F, or promote "
            f"it by hand: intentflow registry promote {result['model']}:{result['version']} "
            '--reason "..."'
        )
    if snap.get("counts", {}).get("quarantined"):  # a labeled file's records it could not use
        text += (
            f"\n  {snap['counts']['quarantined']} record(s) of the data quarantined: "
            f"{snap['path']}/{QUARANTINE_FILE}"
        )
    emit(result, as_json, text)


def _model_for(model: str | None, task: str | None, data: Path | None) -> ModelSpec:
    """The configured model `model`, else the one named as the default configuration names
    `task`'s model (without --task: the intent model); else, with --task and --data, an
    unconfigured one of that task type trained from that file."""
    from ml.config import ConfigError
    from ml.retrain.specs import ModelSpec, configured_models, default_models

    cfg = settings()
    defaults = {m.task: m.name for m in default_models(cfg)}
    name = model or (defaults.get(task, task) if task else cfg.model_name)
    found = {m.name: m for m in configured_models(cfg)}
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


@app.command()
def evaluate(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="NAME@ALIAS or NAME:VERSION, e.g. intent@champion.")],
    data: Annotated[
        str,
        typer.Option(
            help="A labeled file (read as `train --data` reads one; every usable record is "
            f"scored) or a snapshot folder (its test split). {LABELED_FORMATS}"
        ),
    ],
    text_column: Annotated[str, typer.Option(help=TEXT_COLUMN_HELP)] = "text",
    label_column: Annotated[str, typer.Option(help=LABEL_COLUMN_HELP)] = "label",
    answer_column: Annotated[str, typer.Option(help=ANSWER_COLUMN_HELP)] = "answer",
    report_dir: Annotated[
        str | None,
        typer.Option(
            help="Folder (or URL) for the report: metrics.json, quarantine.parquet (the records "
            "not scored: file, record number, rule, reason), the task's other files. Default: "
            "reports/evaluate/MODEL/vVERSION/TIME under the data folder."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a registered model on a labeled file (dispatched by the artifact's task type):
    every usable record is scored, the others are quarantined with their reason."""
    from ml import storage
    from ml.ingest.sources import SourceError
    from ml.quarantine import QUARANTINE_FILE
    from ml.retrain.specs import metric_view
    from ml.tasks.contract import task_module

    options = _given(
        ctx, text_column=text_column, label_column=label_column, answer_column=answer_column
    )
    try:
        version, artifact, kind = _registered_artifact(model)
        stamp = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        report = (
            storage.location(report_dir)
            if report_dir
            else storage.join(
                settings().reports, "evaluate", version.model, f"v{version.version}", stamp
            )
        )
        with storage.local_output(report) as local:
            metrics = task_module(kind).evaluate(
                artifact, data, version.artifact_sha256, report_dir=local, **options
            )
            refused = _quarantined(local / QUARANTINE_FILE)
    except (*_model_errors(), SourceError) as exc:
        fail(str(exc))
    view = metric_view(version.model, kind)
    text = f"{version.model}:{version.version} on {data}: {headline(metrics, view)}"
    text += _records_text(metrics, refused, storage.join(report, QUARANTINE_FILE))
    if "ece_uncalibrated" in metrics:  # calibration before and after the fitted temperature
        text += (
            f"\n  calibration error (ECE) {metrics['ece']:.4f} at temperature "
            f"{metrics['temperature']:.4f}, {metrics['ece_uncalibrated']:.4f} uncalibrated"
        )
    if oos_text(metrics):
        text += f"\n  {oos_text(metrics)}"
    if "intent_n" in metrics:  # a ranking task's intent-level metrics beside the exact ones
        scores = "  ".join(
            f"{k} {v:.4f}"
            for k, v in metrics.items()
            if k.startswith("intent_") and k not in ("intent_n", "intent_missing")
        )
        text += f"\n  same intent  {scores}  n={metrics['intent_n']}"
    if metrics.get("gold_missing"):
        text += (
            f"\n  gold reply not in the bank: {metrics['gold_missing']} of {metrics['n']} "
            "questions (misses in the exact-reply metrics, scored by intent above)"
        )
    for label, per in metrics.get("per_class", {}).items() if view.lists_classes else ():
        scores = "  ".join(f"{k} {v:.4f}" for k, v in per.items() if k != "support")
        text += f"\n  {label:<16} {scores}  n={per.get('support', '?')}"
    text += f"\n  report       {report}"
    emit(
        {
            "model": version.model,
            "version": version.version,
            "task": kind,
            **metrics,
            "quarantine_rules": dict(Counter(r["rule"] for r in refused)),
            "report": str(report),
        },
        as_json,
        text,
    )


def _quarantined(path: Path) -> list[dict[str, Any]]:
    """An evaluation's quarantine.parquet rows (file, record, rule, reason), [] without one."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return []
    return pq.read_table(path, columns=["source_file", "record", "rule", "reason"]).to_pylist()


# How many refused records an evaluation lists by number (all of them are in its quarantine).
LISTED_REFUSALS = 10


def _records_text(metrics: dict[str, Any], refused: list[dict[str, Any]], where: Any) -> str:
    """How many records were read, scored and quarantined (by rule), and the first refused ones
    by file, record number and reason: never a value of the record."""
    if "records_read" not in metrics:
        return ""
    text = (
        f"\n  records      {metrics['records_read']} read, {metrics['n']} scored, "
        f"{metrics['records_quarantined']} quarantined"
    )
    if not refused:
        return text
    rules = Counter(r["rule"] for r in refused)
    text += " (" + ", ".join(f"{rule} {n}" for rule, n in rules.most_common()) + ")"
    text += f"\n  quarantine   {where}"
    for r in refused[:LISTED_REFUSALS]:
        text += f"\n    {r['source_file']}: record {r['record']}: {r['rule']}: {r['reason']}"
    if len(refused) > LISTED_REFUSALS:
        text += f"\n    ... {len(refused) - LISTED_REFUSALS} more"
    return text


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
        fail(str(exc))
    emit(payload, as_json, "\n".join(_prediction_text(p) for p in payload))


def _prediction_text(p: dict[str, Any]) -> str:
    if "intent" in p and p.get("out_of_scope"):
        # The out-of-scope score, then the best in-scope label beside it.
        return (
            f"{p['intent']}\t{p['oos_score']:.3f}\t{p['text']}\t(best in scope: "
            f"{p['in_scope_intent']} {p['probability']:.3f})"
        )
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
    rows = [
        f"  {r.get('score', 0.0):.3f}  {_one_line(r.get('answer') or r.get('text') or r)}"
        for r in ranked
    ]
    return "\n".join([_one_line(p.get("text", "")), *rows])


def _one_line(value: Any) -> str:
    """A text on one line: agents' replies hold line breaks, and each result is one line."""
    return " ".join(str(value).split())


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, each with its own copy of the models.")
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log one line per HTTP request.")] = False,
) -> None:
    """Serve the champion of every configured model over HTTP, following promotions
    (docs/serving.md). Bearer tokens: INTENTFLOW_SERVE_TOKENS."""
    from ml.config import ConfigError
    from ml.serving.server import run

    try:
        run(host, port, workers, access_log)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def report(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What is in the lake (rows and quarantine per day) and in the registry (every model)."""
    from ml import lake

    cfg = settings()
    days = list(lake.manifests(cfg.lake).values())
    versions = version_rows(open_registry().list_versions())
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
            f"test {metrics_text(v['metrics'], '=')}"
        )
    emit({"days": days, "versions": versions}, as_json, "\n".join(lines))

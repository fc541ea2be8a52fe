"""What the registry page shows, gathered from the registry and the lake (no web, no Airflow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from intentflow_ui.compare import Confusion, Heatmap, heatmap, read_confusion
from ml import lake, storage
from ml.artifact.files import MODEL_CARD_FILE
from ml.config import Settings
from ml.registry.metrics import PER_CLASS
from ml.registry.store import CHAMPION, Registry, VersionInfo
from ml.registry.views import MetricView, metric_kind
from ml.retrain.specs import metric_view
from ml.tasks.examples import EXAMPLES_FILE

# Columns and chart choices: the model's headline metrics (ml.registry.views) first, then these
# further intent figures when present, then the rest alphabetically.
KEY_METRICS = ("accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "ece")
# Out-of-scope figures of intent models (ml.tasks.intent.out_of_scope.oos_metrics), in the
# order and words the page's out-of-scope table shows them.
OOS_METRICS = (
    ("oos_n", "out-of-scope examples"),
    ("oos_recall", "OOS recall at the threshold"),
    ("oos_precision", "OOS precision at the threshold"),
    ("oos_auroc", "OOS AUROC"),
    ("oos_fpr_at_95_tpr", "OOS kept at 95% in-scope kept (FPR@95%TPR)"),
    ("in_scope_accuracy", "in-scope accuracy at the threshold"),
    ("in_scope_kept", "in-scope kept at the threshold"),
)
# The versions table shows the headline metrics (ml.registry.views), then these when present;
# every other metric is in the compare view and the trend chart.
TABLE_EXTRAS = ("n", "latency_ms_p95")
# The retrain DAG's tasks (dags/model_retrain.py): each run links to their logs.
RETRAIN_TASKS = ("snapshot", "fine_tune", "evaluate", "register", "promote")
CONFUSION_PNG = Path("challenger") / "test" / "confusion_matrix.png"
EXAMPLES_JSON = Path("challenger") / "test" / EXAMPLES_FILE
REPORT_HTML = "validation.html"  # what ml.ingest.validation writes in reports/dt=DAY/


@dataclass
class VersionRow:
    info: VersionInfo
    test: dict[str, Any]  # scalar test metrics
    window: str | None
    dag_id: str | None
    run_id: str | None
    partitions: list[str]  # lake days the version trained on
    files: list[str]  # or the labeled files (`intentflow train --data`, entities, answers)
    lake_version: int | None = None  # the transcripts table's version those days were read at


@dataclass
class ClassRow:
    label: str
    value: float | None  # the task's per-class metric (Page.class_metric)
    champion_value: float | None
    support: int | None
    figures: dict[str, float] = field(default_factory=dict)  # every per-class figure stored

    @property
    def delta(self) -> float | None:
        if self.value is None or self.champion_value is None:
            return None
        return self.value - self.champion_value


@dataclass
class OosRow:
    """One split's out-of-scope figures of a version (None: not measured there)."""

    version: int
    split: str  # "test" or "golden:NAME"
    values: dict[str, float | None]
    champion: bool = False


@dataclass
class DayHealth:
    day: str
    rows_read: int | None
    rows_written: int | None
    rows_quarantined: int | None
    rules: dict[str, int]
    failed_expectations: list[str] | None  # None: no readable validation result
    has_report: bool
    published: bool = True  # False: the validation gate rejected the day

    @property
    def quarantine_share(self) -> float | None:
        if not self.rows_read or self.rows_quarantined is None:
            return None
        return self.rows_quarantined / self.rows_read


@dataclass
class Page:
    models: list[str]
    model: str | None = None
    versions: list[VersionRow] = field(default_factory=list)
    selected: VersionRow | None = None
    champion: VersionRow | None = None
    classes: list[ClassRow] = field(default_factory=list)
    metric: str = "macro_f1"
    metrics_available: list[str] = field(default_factory=list)
    class_metric: str = "f1"  # per-class metric of the model's task type
    has_confusion: bool = False
    # The selected version's out-of-scope figures per split, then the champion's on test.
    oos: list[OosRow] = field(default_factory=list)
    oos_columns: tuple[tuple[str, str], ...] = OOS_METRICS
    table_metrics: list[str] = field(default_factory=list)  # the versions table's columns
    view: MetricView | None = None
    trend: dict[str, Any] = field(default_factory=dict)  # the chart's data (JSON)
    confusion: Confusion | None = None  # the selected version's, from its report
    heatmap: Heatmap | None = None
    heatmap_k: int = 15
    has_card: bool = False  # the selected version's artifact has a model card here
    # The selected version's scored test examples (entities, answers), redacted at evaluation.
    examples: list[dict[str, Any]] = field(default_factory=list)
    tasks: tuple[str, ...] = RETRAIN_TASKS
    audit: list[dict] = field(default_factory=list)
    health: list[DayHealth] = field(default_factory=list)
    health_shown: bool = True  # False: the viewer may not read the ingest DAG
    notes: list[str] = field(default_factory=list)  # what is missing, said plainly


def _scalars(split: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in split.items() if k != PER_CLASS}


def version_row(info: VersionInfo) -> VersionRow:
    lineage = info.lineage
    window = lineage.get("window")
    text = f"{window.get('start')} .. {window.get('end')}" if isinstance(window, dict) else None
    # A lake snapshot records {day, content_hash} per partition; a file snapshot {file, sha256}.
    parts = [p for p in lineage.get("partitions") or [] if isinstance(p, dict)]
    return VersionRow(
        info=info,
        test=_scalars(info.metrics.get("test", {})),
        window=text,
        # The lineage columns (retrain writes them there); versions from before: the JSON.
        dag_id=info.dag_id or lineage.get("dag_id"),
        run_id=info.run_id or lineage.get("run_id"),
        partitions=[str(p["day"]) for p in parts if p.get("day")],
        files=[str(p["file"]) for p in parts if p.get("file")],
        lake_version=v if isinstance(v := lineage.get("lake_version"), int) else None,
    )


def model_card(info: VersionInfo) -> Path | None:
    """The version's model card (README.md in its artifact), if the artifact is a local
    folder and the card a regular file inside it (no link out of it)."""
    if storage.is_remote(info.artifact_uri):
        return None
    folder = Path(info.artifact_uri)
    return _file_inside(folder / MODEL_CARD_FILE, folder.parent / folder.name)


def read_examples(info: VersionInfo) -> list[dict[str, Any]]:
    """The scored test examples its evaluation kept (ml.tasks.examples: redacted texts only),
    [] when it kept none (intent, or a version evaluated before examples were kept)."""
    reports = info.lineage.get("evaluation_reports")
    if not isinstance(reports, str) or not reports or storage.is_remote(reports):
        return []
    try:
        found = json.loads((Path(reports) / EXAMPLES_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def champion_changes(audit: list[dict]) -> list[dict[str, Any]]:
    """Every move of the champion alias, oldest first: when, to which version, how, by whom."""
    return [
        {
            "at": e["at"].isoformat(),
            "version": e["version"],
            "action": e["action"],
            "actor": e["actor"],
        }
        for e in audit
        if e.get("alias") == CHAMPION
        and e.get("version") is not None
        and e["action"] in ("promote", "rollback", "set_alias")
    ]


def trend_data(versions: list[VersionRow], metrics: list[str], audit: list[dict]) -> dict:
    """What the trend chart draws: each metric's test value per version with its date, the
    kind of number it is (for formatting) and the champion's moves."""
    return {
        "metrics": [{"name": m, "kind": metric_kind(m)} for m in metrics],
        "versions": [
            {
                "version": r.info.version,
                "at": r.info.created_at.isoformat(),
                "values": {m: r.test.get(m) for m in metrics},
            }
            for r in versions
        ],
        "champion": champion_changes(audit),
    }


def confusion_png(info: VersionInfo) -> Path | None:
    """The version's confusion-matrix PNG from its evaluation reports, if it exists."""
    reports = info.lineage.get("evaluation_reports")
    if not isinstance(reports, str) or not reports:
        return None
    path = Path(reports) / CONFUSION_PNG
    return path if path.is_file() else None


def class_rows(
    selected: VersionInfo, champion: VersionInfo | None, metric: str = "f1"
) -> list[ClassRow]:
    ours = selected.metrics.get("test", {}).get(PER_CLASS, {})
    theirs = champion.metrics.get("test", {}).get(PER_CLASS, {}) if champion else {}
    return [
        ClassRow(
            label=label,
            value=ours.get(label, {}).get(metric),
            champion_value=theirs.get(label, {}).get(metric) if theirs else None,
            support=ours.get(label, {}).get("support", theirs.get(label, {}).get("support")),
            figures=dict(ours.get(label, {})),
        )
        for label in sorted(set(ours) | set(theirs))
    ]


def oos_rows(selected: VersionInfo, champion: VersionInfo | None) -> list[OosRow]:
    """The selected version's out-of-scope figures on test and each golden set, then the
    champion's on test (when another version is champion); splits without them left out."""
    rows = [
        OosRow(selected.version, split, {name: values.get(name) for name, _ in OOS_METRICS})
        for split, values in sorted(
            selected.metrics.items(), key=lambda item: (item[0] != "test", item[0])
        )
        if (split == "test" or split.startswith("golden:")) and "oos_n" in values
    ]
    theirs = champion.metrics.get("test", {}) if champion else {}
    if champion is not None and champion.version != selected.version and "oos_n" in theirs:
        values = {name: theirs.get(name) for name, _ in OOS_METRICS}
        rows.append(OosRow(champion.version, "test", values, champion=True))
    return rows


def _failed_expectations(report_html: Path) -> list[str] | None:
    """The expectations the day failed, each once: `type(column)`. ml.ingest.validation writes
    validation.json (GX's results: the day's, then one per batch of rows) beside the report."""
    try:
        results = json.loads((report_html.parent / "validation.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, list):
        return None
    names: dict[str, None] = {}  # ordered, each name once over the batches
    for batch in results:
        for r in batch.get("results", []) if isinstance(batch, dict) else []:
            if r.get("success", True):
                continue
            config = r.get("expectation_config") or {}
            column = (config.get("kwargs") or {}).get("column")
            names[f"{config.get('type', '?')}({column})" if column else config.get("type", "?")] = (
                None
            )
    return list(names)


def _rejected_days(cfg: Settings) -> list[date]:
    """Days with a validation result in the reports but no lake partition: the gate refused
    them. Reports are read from local disk only, as the rest of this page does."""
    if storage.is_remote(cfg.reports):
        return []
    found = Path(cfg.reports).glob("dt=*/validation.json")
    return [date.fromisoformat(p.parent.name[3:]) for p in found]


def ingest_health(cfg: Settings, days: int = 14) -> list[DayHealth]:
    """The latest `days` days ingest ran on, newest first: published partitions (from their
    manifests) and days the validation gate rejected (from their validation results)."""
    published = set(lake.list_partitions(cfg.lake))
    out = []
    for day in sorted(published | set(_rejected_days(cfg)))[-days:][::-1]:
        manifest = (lake.read_manifest(cfg.lake, day) or {}) if day in published else {}
        report_path = validation_report(cfg, day)
        out.append(
            DayHealth(
                day=day.isoformat(),
                rows_read=manifest.get("rows_read"),
                rows_written=manifest.get("rows_written"),
                rows_quarantined=manifest.get("rows_quarantined"),
                rules=dict(manifest.get("quarantine_rules") or {}),
                failed_expectations=_failed_expectations(report_path) if report_path else None,
                has_report=report_path is not None,
                published=day in published,
            )
        )
    return out


def validation_report(cfg: Settings, day: date) -> Path | None:
    """The HTML validation report of a day, if it is a file inside the day's report folder
    (reports/dt=DAY) once every link and `..` is resolved: as the partition's manifest names
    it, else (a day the gate rejected has no partition) the one validation wrote there.

    A manifest is data, written wherever the lake is writable: whatever path it names, nothing
    outside that folder is served (a manifest naming /etc/passwd, or a link to it, gives None).
    Reports on object storage are not served (None).
    """
    if storage.is_remote(cfg.reports):
        return None
    folder = Path(lake.partition_path(cfg.reports, day))
    manifest = lake.read_manifest(cfg.lake, day) or {}
    named = manifest.get("validation_report")
    return _file_inside(Path(named) if isinstance(named, str) else folder / REPORT_HTML, folder)


def _file_inside(path: Path, folder: Path) -> Path | None:
    """`path`, resolved, if it is a regular file under `folder`; the folder itself counts as
    where it is named (its parent resolved), so a day folder that is a link leads nowhere."""
    try:
        real = path.resolve(strict=True)
        root = folder.parent.resolve(strict=True) / folder.name
    except (OSError, RuntimeError):  # missing, or a link loop
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def build_page(
    registry: Registry,
    cfg: Settings,
    model: str | None,
    version: int | None,
    metric: str | None,
    *,
    readable: Callable[[str], bool] = lambda model: True,
    show_health: bool = True,
    heatmap_k: int = 15,
) -> Page:
    """The page for `model` (None: the configured intent model, else the first), among the
    models `readable` allows; the ingest health table only when `show_health`."""
    registered = registry.list_versions()
    models = sorted(m for m in {v.model for v in registered} if readable(m))
    everything = [v for v in registered if v.model in models]
    page = Page(
        models=models, health=ingest_health(cfg) if show_health else [], health_shown=show_health
    )
    if not models:
        page.notes.append(
            "The registry holds no model you may read (read access to its retrain DAG)."
            if registered
            else "The registry holds no models yet: run the intent_retrain DAG."
        )
        return page
    page.model = (
        model if model in models else (cfg.model_name if cfg.model_name in models else models[0])
    )
    if model is not None and model != page.model:
        page.notes.append(f"Model {model!r} is not registered; showing {page.model!r}.")
    page.versions = [version_row(v) for v in everything if v.model == page.model]
    page.champion = next((r for r in page.versions if CHAMPION in r.info.aliases), None)
    by_number = {r.info.version: r for r in page.versions}
    page.selected = by_number.get(version) if version is not None else None
    if version is not None and page.selected is None:
        page.notes.append(f"Version {version} does not exist; showing the latest.")
    page.selected = page.selected or page.versions[-1]
    if len(page.versions) == 1:
        page.notes.append("Only one version: nothing to compare yet.")
    if page.champion is None:
        page.notes.append("No version is champion.")
    view = metric_view(page.model, page.versions[0].info.task_type, cfg)
    available = {k for r in page.versions for k in r.test}
    first = dict.fromkeys([*view.metrics, *KEY_METRICS])
    page.metrics_available = [m for m in first if m in available] + sorted(available - set(first))
    primary = view.primary or "macro_f1"
    page.metric = (
        metric
        if metric in available
        else (primary if primary in available else next(iter(page.metrics_available), primary))
    )
    page.class_metric = view.class_metric
    page.view = view
    page.table_metrics = [m for m in view.metrics if m in available][:5]
    page.table_metrics += [m for m in TABLE_EXTRAS if m in available]
    sel = page.selected.info
    if not page.selected.test:
        page.notes.append(f"Version {sel.version} has no test metrics.")
    page.classes = class_rows(sel, page.champion.info if page.champion else None, page.class_metric)
    # Weakest first (those without the metric last), then by name.
    page.classes.sort(key=lambda c: (c.value is None, c.value or 0.0, c.label))
    page.oos = oos_rows(sel, page.champion.info if page.champion else None)
    page.has_confusion = confusion_png(sel) is not None
    page.confusion = read_confusion(sel) if sel.task_type == "intent" else None
    page.heatmap_k = heatmap_k
    page.heatmap = heatmap(page.confusion, heatmap_k) if page.confusion else None
    if sel.task_type == "intent" and page.confusion is None:
        page.notes.append(f"Version {sel.version} has no confusion matrix (evaluation report).")
    page.has_card = model_card(sel) is not None
    page.examples = read_examples(sel) if sel.task_type in ("entities", "answers") else []
    trail = registry.audit(page.model)
    page.trend = trend_data(page.versions, page.metrics_available, trail)
    page.audit = list(reversed(trail))[:25]
    return page

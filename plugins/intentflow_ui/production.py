"""The model page's production section: what the served champion met and what agents said.

Read from the daily monitoring figures (ml.monitoring.store.monitoring_days: one row per day,
written by the model_monitoring DAG) and the agents' corrections (ml.feedback.summary.
feedback_by_day); no web, no Airflow. Figures a row lacks (an older monitoring run, a day
without predictions) are shown as missing, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from intentflow_ui import fmt
from ml import storage
from ml.config import Settings
from ml.registry.names import NAME_RE
from ml.storage import Location

# Label mix chart: the labels with the largest share on any day (or in training) each get a
# colour; the rest are summed as OTHER, so the stacked bars stay readable at 150 intents.
MIX_LABELS = 7
OTHER = "other labels"
HISTOGRAM_BINS = 10  # confidence 0.0-0.1 ... 0.9-1.0 (the monitoring figures' bins)
STATUSES = ("ok", "drift", "no_data")
DAYS = 90  # days of monitoring the page reads


@dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None  # what the value was compared with
    drift: bool
    configured: float | None = None  # the configured limit (INTENTFLOW_DRIFT_*)
    noise: float | None = None  # what sampling alone gives at the day's size

    @property
    def key(self) -> str:  # what fmt formats it by
        return f"check:{self.name}"


@dataclass
class ProdDay:
    """One monitored day of the model (a monitoring_days row)."""

    day: str
    version: int | None
    reference_version: int | None
    predictions: int
    status: str
    figures: dict[str, Any]
    has_report: bool

    @property
    def checks(self) -> list[Check]:
        out = []
        for c in self.figures.get("checks") or []:
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                out.append(
                    Check(
                        c["name"],
                        _num(c.get("value")),
                        _num(c.get("threshold")),
                        bool(c.get("drift")),
                        _num(c.get("configured")),
                        _num(c.get("noise")),
                    )
                )
        return out

    @property
    def drifted(self) -> list[str]:
        named = [str(d) for d in self.figures.get("drifted") or []]
        return named or [c.name for c in self.checks if c.drift]

    @property
    def confidence(self) -> dict[str, Any]:
        found = self.figures.get("confidence")
        return found if isinstance(found, dict) else {}


@dataclass
class LabelRow:
    label: str
    share: float | None  # of the day's predictions
    reference: float | None  # of the training snapshot's labels
    psi: float | None

    @property
    def change(self) -> float | None:
        return None if self.share is None or self.reference is None else self.share - self.reference


@dataclass
class Production:
    model: str
    days: list[ProdDay] = field(default_factory=list)  # oldest first
    feedback: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    shown: ProdDay | None = None  # the day whose mix, checks and histogram are shown
    labels: list[LabelRow] = field(default_factory=list)  # the shown day's, most moved first
    totals: dict[str, Any] = field(default_factory=dict)  # feedback over all days
    chart: dict[str, Any] = field(default_factory=dict)  # the charts' data (JSON)

    @property
    def latest(self) -> ProdDay | None:
        return self.days[-1] if self.days else None

    @property
    def last_verdict(self) -> ProdDay | None:
        """The latest day the checks could judge (not `no_data`), when that is not the latest
        day: a quiet last day does not hide yesterday's drift."""
        judged = [d for d in self.days if d.status != "no_data"]
        return judged[-1] if judged and judged[-1] is not self.latest else None

    @property
    def empty(self) -> bool:
        return not self.days and not self.feedback


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _shares(x: Any) -> dict[str, float]:
    return (
        {str(k): float(v) for k, v in x.items() if _num(v) is not None}
        if isinstance(x, dict)
        else {}
    )


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def report_location(cfg: Settings, model: str, day: date) -> Location:
    """Where ml.monitoring.report writes the model's report of `day`."""
    return storage.join(cfg.reports, "monitoring", model, f"{day.isoformat()}.html")


def monitoring_report(cfg: Settings, model: str, day: date) -> Path | None:
    """The day's local monitoring report (reports/monitoring/MODEL/DAY.html), if it is a
    regular file inside that model's folder once links are resolved. The path is made from the
    model and the day, never from the row's report_url (data, which could name anything)."""
    from intentflow_ui.data import _file_inside

    if storage.is_remote(cfg.reports) or not NAME_RE.match(model):
        return None
    folder = Path(cfg.reports) / "monitoring" / model
    return _file_inside(folder / f"{day.isoformat()}.html", folder)


def read_report(cfg: Settings, model: str, day: date) -> bytes | None:
    """The report's bytes, local (monitoring_report) or on object storage (the same key under
    the reports URL); None when there is none."""
    if not NAME_RE.match(model):
        return None
    if storage.is_remote(cfg.reports):
        try:
            return storage.read_bytes(report_location(cfg, model, day))
        except (FileNotFoundError, OSError):
            return None
    path = monitoring_report(cfg, model, day)
    return path.read_bytes() if path is not None else None


def _has_report(cfg: Settings, model: str, day: str, report_url: Any) -> bool:
    """Whether the page links the day's report. On object storage, the row's report_url says
    so (one request per day would slow the page): the route reads only the expected key."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        return False
    if storage.is_remote(cfg.reports):
        return NAME_RE.match(model) is not None and report_url == str(
            report_location(cfg, model, when)
        )
    return monitoring_report(cfg, model, when) is not None


def prod_day(cfg: Settings, model: str, row: dict[str, Any]) -> ProdDay:
    day = _day(row.get("day"))
    figures = row.get("figures") if isinstance(row.get("figures"), dict) else {}
    status = str(row.get("status") or "no_data")
    return ProdDay(
        day=day,
        version=row.get("version"),
        reference_version=row.get("reference_version"),
        predictions=int(row.get("predictions") or 0),
        status=status if status in STATUSES else "no_data",
        figures=figures,
        has_report=_has_report(cfg, model, day, row.get("report_url")),
    )


def label_rows(day: ProdDay) -> list[LabelRow]:
    """The day's predicted-label shares beside training's, the labels that moved most first
    (by their PSI term, else by the change of share)."""
    mix, ref = (
        _shares(day.figures.get("label_mix")),
        _shares(day.figures.get("reference_label_mix")),
    )
    psi = _shares(day.figures.get("label_psi_by_label"))
    rows = [
        LabelRow(label, mix.get(label, 0.0 if mix else None), ref.get(label), psi.get(label))
        for label in set(mix) | set(ref)
    ]
    # Out of scope has no PSI term (the in-scope mix is compared; its rate is a check of its
    # own): ranked by its change of share, a label missing on one side counting as 0.
    rows.sort(key=lambda r: (-(r.psi if r.psi is not None else _moved(r)), r.label))
    return rows


def _moved(row: LabelRow) -> float:
    return abs((row.share or 0.0) - (row.reference or 0.0))


def _histogram(x: Any) -> list[int] | None:
    if isinstance(x, list) and len(x) == HISTOGRAM_BINS and all(_num(v) is not None for v in x):
        return [int(v) for v in x]
    return None


def chart_data(days: list[ProdDay], feedback: list[dict[str, Any]], shown: ProdDay | None) -> dict:
    """What production.js draws: traffic, label mix (top labels, then OTHER) against each
    training snapshot, confidence per day, the shown day's histogram against the reference,
    and feedback per day. Numbers as stored; kinds for formatting (fmt.FIGURE_KINDS)."""
    mixes = [_shares(d.figures.get("label_mix")) for d in days]
    references: dict[str, dict[str, float]] = {}  # "training vN" -> its mix
    for d in days:
        ref = _shares(d.figures.get("reference_label_mix"))
        if ref:
            references.setdefault(f"training v{d.reference_version}", ref)
    peak: dict[str, float] = {}
    for mix in [*mixes, *references.values()]:
        for label, share in mix.items():
            peak[label] = max(peak.get(label, 0.0), share)
    top = sorted(peak, key=lambda label: (-peak[label], label))[:MIX_LABELS]
    bars = [*references.items(), *((d.day, m) for d, m in zip(days, mixes, strict=True))]

    def series(mix: dict[str, float], label: str) -> float | None:
        if not mix:
            return None
        if label == OTHER:
            return max(0.0, sum(v for k, v in mix.items() if k not in top))
        return mix.get(label, 0.0)

    labels = top + ([OTHER] if len(peak) > len(top) else [])
    conf = [d.confidence for d in days]
    hist = _histogram(shown.confidence.get("histogram")) if shown else None
    ref_hist = _histogram(shown.confidence.get("reference_histogram")) if shown else None
    return {
        "kinds": {k: v for k, v in fmt.FIGURE_KINDS.items()},
        "days": [d.day for d in days],
        "versions": [d.version for d in days],
        "statuses": [d.status for d in days],
        "predictions": [d.predictions for d in days],
        "mix": {
            "bars": [name for name, _ in bars],
            "training": len(references),  # the first bars are training snapshots
            "series": [
                {"label": label, "values": [series(mix, label) for _, mix in bars]}
                for label in labels
            ],
        },
        "confidence": {k: [_num(c.get(k)) for c in conf] for k in ("mean", "p10", "p50", "p90")},
        "histogram": {
            "day": shown.day if shown else None,
            "reference_version": shown.reference_version if shown else None,
            "day_counts": hist,
            "reference_counts": ref_hist,
        },
        "feedback": {
            "days": [f["day"] for f in feedback],
            "corrections": [f.get("corrections") for f in feedback],
            "predictions_reviewed": [f.get("predictions_reviewed") for f in feedback],
            "agreement_rate": [_num(f.get("agreement_rate")) for f in feedback],
        },
    }


def feedback_totals(feedback: list[dict[str, Any]]) -> dict[str, Any]:
    """Corrections, predictions reviewed, agreements and new labels over every day; the
    agreement rate is agreed / corrections, as feedback_by_day's per day."""
    total = {
        k: sum(int(f.get(k) or 0) for f in feedback)
        for k in ("corrections", "predictions_reviewed", "agreed", "new_labels")
    }
    total["agreement_rate"] = (
        total["agreed"] / total["corrections"] if total["corrections"] else None
    )
    return total


def build_production(
    cfg: Settings,
    model: str,
    rows: list[dict[str, Any]],
    feedback: list[dict[str, Any]],
    day: str | None = None,
) -> Production:
    """The section from monitoring_days' rows and feedback_by_day's days (oldest first);
    `day`: the day whose label mix, checks and histogram are shown (default the latest)."""
    days = [prod_day(cfg, model, r) for r in rows]
    days.sort(key=lambda d: d.day)
    feedback = sorted(
        (f for f in feedback if isinstance(f.get("day"), str)), key=lambda f: f["day"]
    )
    prod = Production(model=model, days=days, feedback=feedback[-DAYS:])
    by_day = {d.day: d for d in days}
    prod.shown = by_day.get(day or "") or (days[-1] if days else None)
    prod.labels = label_rows(prod.shown) if prod.shown else []
    prod.totals = feedback_totals(prod.feedback)
    prod.chart = chart_data(days, prod.feedback, prod.shown)
    return prod


def read_production(cfg: Settings, model: str, day: str | None = None) -> Production:
    """The section for `model`: its monitored days and its feedback, read here."""
    from ml.feedback.summary import feedback_by_day
    from ml.monitoring.store import monitoring_days

    return build_production(
        cfg, model, monitoring_days(cfg.registry_url, model, DAYS), feedback_by_day(cfg, model), day
    )

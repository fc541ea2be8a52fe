"""One model's day monitored: the day's predictions against the reference of the champion that
served them → figures, checks, the HTML report and the registry row. What the DAG's task and
`intentflow monitor` call; rerunning a day replaces its report and row.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ml.config import DriftSettings, drift_settings, settings

if TYPE_CHECKING:
    from ml.config import Settings
    from ml.monitoring.profiles import Predictor

log = logging.getLogger(__name__)
# The tasks whose predictions are monitored: an intent model's answer is one label.
MONITORED_TASKS = ("intent",)


def monitored_models(cfg: Settings | None = None) -> list[str]:
    """The configured intent models (ml.retrain.specs), those of INTENTFLOW_SERVE_MODELS when
    it names some: what the service answers and logs."""
    import os

    from ml.retrain.specs import configured_models

    served = {
        m.strip() for m in os.environ.get("INTENTFLOW_SERVE_MODELS", "").split(",") if m.strip()
    }
    return [
        m.name
        for m in configured_models(cfg)
        if m.task in MONITORED_TASKS and (not served or m.name in served)
    ]


def monitor_day(
    model: str,
    day: date | str,
    cfg: Settings | None = None,
    limits: DriftSettings | None = None,
    predict: Predictor | None = None,
) -> dict[str, Any]:
    """Monitor `model` on `day`: a summary (status, predictions, version, reference_version,
    drifted, checks as name/value/threshold/drift, report_url). Status `no_model` (nothing
    written) when the model has no champion yet and served nothing that day."""
    from ml.monitoring.figures import day_figures
    from ml.monitoring.profiles import day_profile, day_rows, majority_version, reference_profile
    from ml.monitoring.report import write_report
    from ml.monitoring.store import save_day
    from ml.registry.errors import NotFoundError
    from ml.registry.store import Registry

    cfg, limits = cfg or settings(), limits or drift_settings()
    day = day if isinstance(day, str) else day.isoformat()
    date.fromisoformat(day)  # a clear ValueError for a malformed day
    rows = day_rows(cfg, model, day)
    with Registry(cfg.registry_url) as registry:
        try:
            champion = registry.get(model)
        except NotFoundError:
            champion = None
        versions = Counter(rows.column("version").to_pylist()) if rows.num_rows else Counter()
        served = majority_version({"versions": {str(k): v for k, v in versions.items()}})
        if served is None and champion is None:
            log.info("%s: no champion and no predictions on %s: nothing to monitor", model, day)
            return {"model": model, "day": day, "status": "no_model", "predictions": 0}
        version = registry.get(model, version=served) if served is not None else champion
    reference = reference_profile(cfg, version, predict)
    figures = day_figures(day_profile(rows, reference), reference, limits)
    status = figures.pop("status")
    computed_at = datetime.now(UTC)
    report_url = write_report(cfg.reports, model, day, {**figures, "status": status},
                              computed_at.isoformat(timespec="seconds"))  # fmt: skip
    save_day(
        cfg.registry_url,
        model=model,
        day=day,
        version=version.version,
        reference_version=reference["version"],
        predictions=figures["predictions"],
        status=status,
        figures=figures,
        report_url=report_url,
        computed_at=computed_at,
    )
    log.info("%s %s: %s (%d predictions; drifted: %s)", model, day, status,
             figures["predictions"], ", ".join(figures["drifted"]) or "none")  # fmt: skip
    return {
        "model": model,
        "day": day,
        "status": status,
        "predictions": figures["predictions"],
        "version": version.version,
        "reference_version": reference["version"],
        "drifted": figures["drifted"],
        "checks": [
            {k: c[k] for k in ("name", "value", "threshold", "drift")} for c in figures["checks"]
        ],
        "report_url": report_url,
    }


def run_days(
    day: str | None, event_days: list[str | None], run_after: datetime | None
) -> list[str]:
    """The days a monitoring run looks at: the form's `day`; else the days the `predictions`
    Asset events named (a replay or a load announcing its day); else the day before the run
    (a scheduled or backfill run: its day is complete)."""
    if day:
        return [date.fromisoformat(str(day)[:10]).isoformat()]
    named = sorted({date.fromisoformat(str(d)[:10]).isoformat() for d in event_days if d})
    if named:
        return named
    when = run_after or datetime.now(UTC)
    return [(when - timedelta(days=1)).date().isoformat()]

"""
### Model monitoring

Daily (INTENTFLOW_MONITORING_SCHEDULE, default 01:30 UTC; each run looks at the day before,
complete by then), on `predictions` Asset events that name a day, by hand (the form's `day`),
or by backfill (`airflow backfill create --dag-id model_monitoring --from-date ... --to-date ...`:
a rerun of a day replaces its row and report). Each served intent model's day of predictions
(the lake's `predictions` table) is compared with its champion's training snapshot
(`ml.monitoring`, docs/monitoring.md).

| task | does |
|---|---|
| `days` | the days to look at: the form's `day`, else the days the `predictions` events named, else the day before the run |
| `models` | the configured intent models the service answers (INTENTFLOW_SERVE_MODELS where set) |
| `monitor` | one mapped task per model: per day, label mix (PSI, Jensen-Shannon), confidence, out-of-scope rate, message length, unseen words against the thresholds (INTENTFLOW_DRIFT_*); the HTML report under reports/monitoring/MODEL/DAY.html and the registry's `monitoring_days` row; a drift alerts the channels (check names and counts only) and, with INTENTFLOW_DRIFT_TRIGGERS_RETRAIN, emits `model://MODEL/drift`, which the model's retrain schedules on |

Every task has an `execution_timeout`, the run a `dagrun_timeout`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    AssetAlias,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    task,
)

from ml.assets import PREDICTIONS, predictions_uri
from ml.config import monitoring_schedule, ops_settings
from ml.monitoring.results import Monitored

OPS = ops_settings()
PREDICTIONS_ASSET = Asset(name=PREDICTIONS, uri=predictions_uri())
# monitor adds a model://NAME/drift event only for a model whose day drifted.
DRIFT = AssetAlias("model_drift")
# Airflow puts plugins/ on sys.path; the notifiers import nothing heavy until they fire.
try:
    from intentflow_alerts import DriftNotifier, FailureNotifier
    from intentflow_connections import use_connections

    ON_FAILURE, ON_DRIFT, PRE_EXECUTE = [FailureNotifier()], [DriftNotifier()], use_connections
except ImportError:  # plugins folder not on the path (a bare DagBag outside Airflow)
    ON_FAILURE, ON_DRIFT, PRE_EXECUTE = [], [], None


def _schedule() -> Any:
    cron = monitoring_schedule()
    if cron is None:
        return [PREDICTIONS_ASSET]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=PREDICTIONS_ASSET
    )


@dag(
    schedule=_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=OPS.task_timeout_minutes * 3),
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=OPS.task_timeout_minutes),
        "on_failure_callback": ON_FAILURE,
        # Registry and object-store credentials from Airflow connections.
        "pre_execute": PRE_EXECUTE,
    },
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to monitor (YYYY-MM-DD); empty: the day before the run.",
        ),
    },
    tags=["intentflow", "monitoring"],
    doc_md=__doc__,
)
def model_monitoring():
    @task(inlets=[PREDICTIONS_ASSET])
    def days(params: dict | None = None, dag_run=None, triggering_asset_events=None) -> list[str]:
        from ml.monitoring.run import run_days

        named = []
        if triggering_asset_events:
            named = [
                (e.extra or {}).get("day")
                for e in triggering_asset_events.get(PREDICTIONS_ASSET, [])
            ]
        # A scheduled or backfill run: its logical date (a manual one may have none).
        when = dag_run.logical_date or dag_run.run_after
        return run_days((params or {}).get("day"), named, when)

    @task
    def models() -> list[str]:
        from ml.monitoring.run import monitored_models

        return monitored_models()

    @task(
        outlets=[DRIFT],
        on_success_callback=ON_DRIFT,
        map_index_template="{{ task.op_kwargs['model'] }}",
    )
    def monitor(model: str, days: list[str], outlet_events=None) -> Monitored:
        from ml.assets import model_asset
        from ml.config import drift_settings
        from ml.monitoring.run import monitor_day

        limits = drift_settings()
        results = [monitor_day(model, day, limits=limits) for day in days]
        drifted = [r for r in results if r.get("drifted")]
        if drifted and limits.triggers_retrain:
            outlet_events[DRIFT].add(
                Asset(*model_asset(model, "drift")),
                extra={"days": [r["day"] for r in drifted],
                       "checks": sorted({c for r in drifted for c in r["drifted"]})},
            )  # fmt: skip
        return {"model": model, "days": results}

    monitor.partial(days=days()).expand(model=models())


model_monitoring()

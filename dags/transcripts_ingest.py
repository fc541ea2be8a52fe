"""
### Transcripts ingest

Daily: take the day's raw transcript drop, turn it into validated, PII-redacted Parquet.

| task | does |
|---|---|
| `wait_for_drop` | waits for the day's files, deferred between looks (no worker slot held), until `INTENTFLOW_DROP_DEADLINE_HOURS` after the day ends; a drop that never comes fails here with one "missing data" alert |
| `discover` | lists the day's files of the chosen source: `SOURCE/YYYY-MM-DD/*.jsonl` (a folder or any fsspec URL), or per its spec (CSV, ABCD, CLINC150, a SQL table) |
| `normalise` | parses and redacts every record into canonical rows; bad records go to quarantine with file, line and rule |
| `validate` | the Great Expectations suite on the day (report: GX Data Docs); a failure fails the task, so no Asset event fires, keeps the (redacted) quarantine, removes the staged day, and alerts (webhook / Slack / e-mail) |
| `publish` | commits day `dt=YYYY-MM-DD` to the `transcripts` Delta table (one overwrite commit on that day); emits the `transcripts` Asset (URI: the lake) with the day, its rows and content hash as the event's extra |

Safe to rerun and to backfill: a day's partition is replaced whole, never appended to.
Params: `day` (YYYY-MM-DD) for a manual run of one day; `source`: which configured source
to read (`default`: INTENTFLOW_SOURCE; others an administrator names in INTENTFLOW_SOURCES_FILE).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset, BaseOperator, Param, dag, task

# Light at parse time: the standard library only.
from ml.assets import TRANSCRIPTS as TRANSCRIPTS_NAME
from ml.assets import transcripts_uri
from ml.config import DEFAULT_SOURCE_NAME, ops_settings, source_names

# Types only (light at parse time): the dicts the tasks hand each other through XCom.
from ml.ingest.results import Discovered, Published, Staged, Validated

TRANSCRIPTS = Asset(name=TRANSCRIPTS_NAME, uri=transcripts_uri())
OPS = ops_settings()
# Airflow puts plugins/ on sys.path; the notifier imports nothing heavy until it fires.
try:
    from intentflow_alerts import FailureNotifier
    from intentflow_connections import use_connections

    ON_FAILURE, PRE_EXECUTE = [FailureNotifier()], use_connections
except ImportError:  # plugins folder not on the path (a bare DagBag outside Airflow)
    ON_FAILURE, PRE_EXECUTE = [], None


def _day(params: dict, ds: str | None) -> str:
    # A manual run names its day; a scheduled or backfill run ingests its data interval.
    day = params.get("day") or ds
    if not day:
        raise ValueError("no day to ingest: set the 'day' param (YYYY-MM-DD)")
    return day


class WaitForDrop(BaseOperator):
    """Look for the day's files; while absent and before the deadline, defer to the triggerer
    for INTENTFLOW_DROP_POKE_SECONDS and look again. Past the deadline: missing data."""

    def execute(self, context: Any, event: Any = None) -> str:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk.exceptions import AirflowFailException

        from ml.ingest.arrival import MissingDataError, drop_deadline, drop_present

        day = date.fromisoformat(_day(context["params"], context.get("ds")))
        source = context["params"].get("source") or DEFAULT_SOURCE_NAME
        if drop_present(source, day):
            return day.isoformat()
        deadline = drop_deadline(day, OPS.drop_deadline_hours)
        now = datetime.now(UTC)
        if now >= deadline:
            # No retry: waiting longer is what the deadline says not to do.
            raise AirflowFailException(str(MissingDataError(day, deadline, source))) from (
                MissingDataError(day, deadline, source)
            )
        self.log.info("no drop for %s yet; looking again before %s", day, deadline)
        wake = min(now + timedelta(seconds=OPS.drop_poke_seconds), deadline)
        self.defer(trigger=DateTimeTrigger(moment=pendulum.instance(wake)), method_name="execute")
        return ""  # not reached: defer() raises


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    # The run may wait up to the drop's deadline, then needs time to ingest the day.
    dagrun_timeout=timedelta(
        hours=24 + OPS.drop_deadline_hours + OPS.task_timeout_minutes / 60 * 4
    ),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
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
            description="Day to ingest (YYYY-MM-DD); empty: the run's data interval.",
        ),
        # A name, from the administrator's list: the form can reach no other file or table.
        "source": Param(
            DEFAULT_SOURCE_NAME,
            type="string",
            enum=list(source_names()),
            description=(
                "Which configured source to read: `default` (INTENTFLOW_SOURCE) or a source "
                "an administrator named in INTENTFLOW_SOURCES_FILE."
            ),
        ),
    },
    tags=["intentflow", "ingest"],
    doc_md=__doc__,
)
def transcripts_ingest():
    @task
    def discover(params: dict | None = None, ds: str | None = None) -> Discovered:
        from datetime import date

        from ml.ingest.steps import discover

        # The step resolves the name again: a value the form's check missed is refused there.
        day, source = _day(params, ds), params.get("source") or DEFAULT_SOURCE_NAME
        return {"day": day, "source": source, "files": discover(source, date.fromisoformat(day))}

    @task
    def normalise(found: Discovered, run_id: str | None = None) -> Staged:
        from datetime import date

        from ml.config import settings
        from ml.ingest.steps import normalise, staging_dir_for, staging_url_for, sweep_staging

        cfg, day = settings(), date.fromisoformat(found["day"])
        sweep_staging(cfg)  # staged days older runs left (they hold raw lines)
        # Local scratch; with the data on object storage the staged day is uploaded there,
        # so validate and publish may run on any worker.
        scratch = staging_dir_for(cfg, day, run_id)
        return normalise(
            found["files"], day, scratch, found["source"], staging_url_for(cfg, scratch)
        )

    @task
    def validate(staged: Staged) -> Validated:
        from airflow.sdk.exceptions import AirflowFailException

        from ml.config import settings
        from ml.ingest.steps import validate
        from ml.ingest.validation import DataQualityError

        cfg = settings()
        try:
            return validate(staged, cfg.reports, cfg.lake, cfg.quarantine)
        except DataQualityError as exc:
            # A failed gate is deterministic: fail now (no retry delays the alert); a lost
            # worker or a crash still gets the DAG's retries.
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=[TRANSCRIPTS])
    def publish(validated: Validated, outlet_events: Any = None) -> Published:
        from ml.config import settings
        from ml.ingest.steps import publish

        published = publish(validated, settings())
        from intentflow_lineage import record_lineage

        # For OpenLineage: the day's source folder(s) → the lake.
        folders = {str(Path(f).parent) for f in published["files"] if not f.startswith("sql:")}
        record_lineage(TRANSCRIPTS, sorted(folders), [TRANSCRIPTS.uri])
        # What a retrain's schedule counts (INTENTFLOW_RETRAIN_MIN_NEW_ROWS) and a reader checks.
        outlet_events[TRANSCRIPTS].extra = {
            "day": published["day"],
            "rows": published["rows"],
            "content_hash": published["content_hash"],
            "source": published["source"],
        }
        return published

    wait = WaitForDrop(task_id="wait_for_drop", retries=0)
    found = discover()
    wait >> found
    publish(validate(normalise(found)))


transcripts_ingest()

"""
### Lake maintenance

Daily: housekeeping of the lake's Delta tables (transcripts, quarantine, predictions, feedback):
compact small files, `VACUUM` the files replaced more than INTENTFLOW_LAKE_RETENTION_HOURS
ago (default a week), and checkpoint the log. Time travel (`intentflow train --as-of`) reaches
back as far as the retention; an erased person's rows leave the disk at the first run past it
(docs/operations.md, "The lake").
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["intentflow", "lake"],
    doc_md=__doc__,
)
def lake_maintenance():
    @task
    def maintain() -> list[dict]:
        # Heavy imports inside the task: the DAG file parses with the standard library only.
        from ml.config import lake_retention_hours, settings
        from ml.housekeeping import maintain_all

        return maintain_all(settings(), lake_retention_hours())

    maintain()


lake_maintenance()

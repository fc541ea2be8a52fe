"""A real Airflow backfill with a running scheduler, twice: same partitions, no duplicates.

Starts `airflow standalone` (tests/airflow_standalone.py) with the ingest DAG alone, then
`airflow backfill create` over 5 days.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from airflow_cluster import free_port
from airflow_standalone import AIRFLOW, airflow, query, standalone, standalone_env, wait

from ml import lake
from ml.synthetic.generate import generate

REPO = Path(__file__).resolve().parents[2]
FIRST, DAYS = date(2026, 11, 16), 5


@pytest.mark.slow
def test_backfill_twice_gives_the_same_partitions(tmp_path: Path) -> None:
    home, af_home, dags = tmp_path / "intentflow", tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    # Only the ingest DAG: the retrain DAG would schedule training of its own.
    (dags / "transcripts_ingest.py").write_text((REPO / "dags/transcripts_ingest.py").read_text())
    generated = generate(home / "raw", days=DAYS, per_day=60, start=FIRST, seed=5)
    port = free_port()
    env = standalone_env(
        af_home, port, dags, INTENTFLOW_HOME=str(home), INTENTFLOW_SOURCE=str(home / "raw")
    )
    airflow(env, "db", "migrate")
    log_path = tmp_path / "standalone.log"
    with standalone(env, log_path) as db:
        wait(
            "the DAG to be serialized",
            lambda: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id='transcripts_ingest'"),
            180,
            log_path,
        )
        # A paused DAG's backfill runs stay queued. Unpausing also schedules the latest interval
        # (catchup=False): a day without data that fails its gate, outside what we check.
        airflow(env, "dags", "unpause", "transcripts_ingest")
        last = FIRST + timedelta(days=DAYS - 1)
        hashes = []
        for attempt in (1, 2):
            cmd = [*AIRFLOW, "backfill", "create", "--dag-id", "transcripts_ingest",
                   "--from-date", FIRST.isoformat(), "--to-date", last.isoformat(),
                   "--max-active-runs", "3", "--reprocess-behavior", "completed"]  # fmt: skip
            # SQLite metadata: the running scheduler may hold the lock. A create that failed on
            # it can leave its backfill behind (Airflow's clean-up is best effort), and further
            # creates are refused until the scheduler has finished that one's runs.
            for _ in range(40):
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if done.returncode == 0:
                    break
                time.sleep(3)
            assert done.returncode == 0, done.stderr[-3000:]
            # The newest backfill is this attempt's: a create that failed on the SQLite lock
            # may still have left an empty one behind, so ids need not be 1 and 2.
            wait(
                "the backfill row", lambda: query(db, "SELECT max(id) FROM backfill"), 60, log_path
            )
            [(backfill_id,)] = query(db, "SELECT max(id) FROM backfill")
            wait(
                f"backfill {attempt} to finish",
                lambda b=backfill_id: query(
                    db, "SELECT 1 FROM backfill WHERE id=? AND completed_at IS NOT NULL", b
                ),
                420,
                log_path,
            )
            states = query(
                db,
                "SELECT state, count(*) FROM dag_run WHERE backfill_id=? GROUP BY state",
                backfill_id,
            )
            assert dict(states) == {"success": DAYS}, (states, log_path)
            hashes.append(
                {
                    d.day: (
                        lake.read_manifest(home / "lake" / "transcripts", d.day)["content_hash"],
                        Path(lake.data_files(home / "lake" / "transcripts", d.day)[0]).read_bytes(),
                    )
                    for d in generated
                }
            )
        assert hashes[0] == hashes[1]
        for d in generated:
            m = lake.read_manifest(home / "lake" / "transcripts", d.day)
            assert m["rows_read"] == d.records == m["rows_written"] + m["rows_quarantined"]
            ids = lake.read_partition(home / "lake" / "transcripts", d.day).column(
                "conversation_id"
            )
            assert len(set(ids.to_pylist())) == len(ids) == m["rows_written"]
        assert lake.list_partitions(home / "lake" / "transcripts") == [g.day for g in generated]
        print(json.dumps({"runs": query(db, "SELECT count(*) FROM dag_run")}))

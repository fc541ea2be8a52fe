"""A real Airflow backfill with a running scheduler, twice: same partitions, no duplicates.

Starts `airflow standalone` (scheduler, dag-processor, API server, triggerer; LocalExecutor on
SQLite) in a throwaway AIRFLOW_HOME on a free port, then `airflow backfill create` over 5 days.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from ml import lake
from ml.synthetic.generate import generate

REPO = Path(__file__).resolve().parents[2]
FIRST, DAYS = date(2026, 11, 16), 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # table not there yet, or locked: ask again
        return []


@pytest.mark.slow
def test_backfill_twice_gives_the_same_partitions(tmp_path: Path) -> None:
    home, af_home, dags = tmp_path / "intentflow", tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    # Only the ingest DAG: the retrain DAG would schedule training of its own.
    (dags / "transcripts_ingest.py").write_text((REPO / "dags/transcripts_ingest.py").read_text())
    generated = generate(home / "raw", days=DAYS, per_day=60, start=FIRST, seed=5)
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(af_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "INTENTFLOW_HOME": str(home),
        "INTENTFLOW_SOURCE": str(home / "raw"),
        # tests/ too, for the SQLite busy timeout below (sqlite_connect_args.py)
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "sqlite_connect_args.CONNECT_ARGS",
        # standalone starts its components as `airflow ...` from PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    db = af_home / "airflow.db"
    log = open(tmp_path / "standalone.log", "wb")  # noqa: SIM115 - closed in finally
    standalone = subprocess.Popen(
        [*airflow, "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            "the DAG to be serialized",
            lambda: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id='transcripts_ingest'"),
            180,
        )
        # A paused DAG's backfill runs stay queued. Unpausing also schedules the latest interval
        # (catchup=False): a day without data that fails its gate, outside what we check.
        subprocess.run(
            [*airflow, "dags", "unpause", "transcripts_ingest"],
            env=env,
            check=True,
            capture_output=True,
        )
        last = FIRST + timedelta(days=DAYS - 1)
        hashes = []
        for attempt in (1, 2):
            cmd = [*airflow, "backfill", "create", "--dag-id", "transcripts_ingest",
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
            wait_for("the backfill row", lambda: query(db, "SELECT max(id) FROM backfill"), 60)
            [(backfill_id,)] = query(db, "SELECT max(id) FROM backfill")
            wait_for(
                f"backfill {attempt} to finish",
                lambda b=backfill_id: query(
                    db, "SELECT 1 FROM backfill WHERE id=? AND completed_at IS NOT NULL", b
                ),
                420,
            )
            states = query(
                db,
                "SELECT state, count(*) FROM dag_run WHERE backfill_id=? GROUP BY state",
                backfill_id,
            )
            assert dict(states) == {"success": DAYS}, (states, (tmp_path / "standalone.log"))
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
    finally:
        os.killpg(standalone.pid, signal.SIGTERM)
        try:
            standalone.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(standalone.pid, signal.SIGKILL)
            standalone.wait()
        log.close()

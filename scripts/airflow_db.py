"""What the demo waits for, read from Airflow's SQLite metadata ($AIRFLOW_HOME/airflow.db).

    airflow_db.py wait-dag DAG_ID TIMEOUT          until the dag-processor has serialized DAG_ID
    airflow_db.py wait-runs DAG_ID FIRST LAST TIMEOUT
        until every day FIRST..LAST has a finished run of DAG_ID; exits 1 if a day's latest
        run failed. Prints progress as days finish.

Reading the database beats polling `airflow dags list-runs`, which costs seconds of CPU a call.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from datetime import date, timedelta
from pathlib import Path

DB = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


def query(sql: str, *args: object) -> list[tuple]:
    try:
        with sqlite3.connect(DB, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not migrated yet, or locked: ask again
        return []


def wait_dag(dag_id: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id):
            return 0
        time.sleep(2)
    print(f"{dag_id} was not parsed within {timeout:.0f}s", file=sys.stderr)
    return 1


def latest_states(dag_id: str, days: list[str]) -> dict[str, str]:
    """The state of each day's newest run (by id) of dag_id."""
    rows = query(
        "SELECT substr(logical_date, 1, 10), state FROM dag_run WHERE dag_id = ? ORDER BY id",
        dag_id,
    )
    return {day: state for day, state in rows if day in days}


def wait_runs(dag_id: str, first: str, last: str, timeout: float) -> int:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    days = [(start + timedelta(d)).isoformat() for d in range((end - start).days + 1)]
    deadline, shown = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        states = latest_states(dag_id, days)
        done = {d: s for d, s in states.items() if s in ("success", "failed")}
        line = f"  {len(done)}/{len(days)} days done, {sum(s == 'running' for s in states.values())} running"
        if line != shown:
            print(line, flush=True)
            shown = line
        if len(done) == len(days):
            failed = sorted(d for d, s in done.items() if s == "failed")
            if failed:
                print(f"failed days: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
        time.sleep(2)
    print(f"{dag_id}: not finished within {timeout:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "wait-dag":
        sys.exit(wait_dag(args[0], float(args[1])))
    if command == "wait-runs":
        sys.exit(wait_runs(args[0], args[1], args[2], float(args[3])))
    sys.exit(f"unknown command {command!r}")

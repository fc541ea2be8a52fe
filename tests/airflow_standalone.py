"""`airflow standalone` (scheduler, triggerer, dag-processor, API server; LocalExecutor on
SQLite) in a throwaway AIRFLOW_HOME on a free port, for the tests that need a real scheduler.

Its components run in one process group, stopped as a group at the end even when the test
fails; its output goes to a log file the waits print on timeout.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = [sys.executable, "-m", "airflow"]


def standalone_env(af_home: Path, port: int, dags_folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a standalone Airflow on `port` with its metadata in `af_home`:
    this process's environment without its AIRFLOW_* settings, plus `extra`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(af_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        # tests/ too, for the SQLite busy timeout (sqlite_connect_args.py)
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "sqlite_connect_args.CONNECT_ARGS",
        # standalone starts its components as `airflow ...` from PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def airflow(env: dict[str, str], *args: str) -> None:
    """One `airflow` command in `env` (db migrate, pools set, ...), which must succeed."""
    subprocess.run([*AIRFLOW, *args], env=env, check=True, capture_output=True)


@contextmanager
def standalone(env: dict[str, str], log: Path) -> Iterator[Path]:
    """Run `airflow standalone` in `env` (metadata migrated: `airflow(env, "db", "migrate")`)
    for the block; yields the metadata database's path."""
    out = open(log, "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [*AIRFLOW, "standalone"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Path(env["AIRFLOW_HOME"]) / "airflow.db"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    """Rows of a query on the metadata database; none while it is not there yet or locked."""
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not there yet, or locked: ask again
        return []


def wait(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    """Poll `check` every second until it returns something truthy; on timeout fail with
    `what` and the tail of the standalone log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(1)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")

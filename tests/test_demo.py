"""`make demo`'s script end to end, small: the front door a new user walks through.

Real `airflow standalone`, a real backfill of the ingest DAG and a real `dags test` of the
retrain; only the sizes shrink (2 days of 40 chats, the tiny BERT, one epoch).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from ml import lake

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_script_runs_the_flow_and_stops_airflow(tmp_path: Path, tiny_bert_dir: Path) -> None:
    home = tmp_path / "intentflow"
    env = {
        **os.environ,
        "INTENTFLOW_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "INTENTFLOW_BASE_MODEL": str(tiny_bert_dir),
        "DEMO_DAYS": "2",
        "DEMO_PER_DAY": "40",
        "DEMO_EPOCHS": "1",
        # A test split of a few chats: let the first version become champion all the same.
        "INTENTFLOW_PROMOTION_MIN_TEST_SIZE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # The suite turns the retrain's deadline off (tests/conftest.py); a new user has the
    # default, which Airflow 3.3's `dags test` fails on after every task succeeded.
    for name in (
        "INTENTFLOW_RETRAIN_DEADLINE_MINUTES",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "INTENTFLOW_SOURCE",
        "INTENTFLOW_REGISTRY_URL",
    ):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", str(REPO / "scripts/demo.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "2/2 days done" in out, out
    assert "intent:1  aliases=champion" in out, out
    days = lake.list_partitions(home / "lake" / "transcripts")
    assert len(days) == 2
    for day in days:
        manifest = lake.read_manifest(home / "lake" / "transcripts", day)
        assert manifest["rows_read"] == manifest["rows_written"] + manifest["rows_quarantined"]
    # The script stops the scheduler and its workers when it ends: nothing of ours left.
    ours = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.environ().get("AIRFLOW_HOME") == str(home / "airflow"):
                ours.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    assert ours == []

"""A real `airflow api-server` with the registry plugin, over a seeded registry and lake.

Test modules use it with `pytest_plugins = ("ui_server",)`. One server per session: it takes
20-40 s to start on a busy 2-core machine. Users (simple auth manager): `admin` (may trigger
DAGs, so may promote) and `viewer` (read only).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO

PASSWORDS = {"admin": "admin-pw-7", "viewer": "viewer-pw-7"}
MODEL = "intent"
LABELS = ("lost_card", "refund_request", "password_reset")
DAYS = (date(2026, 11, 20), date(2026, 11, 21))


@dataclass(frozen=True)
class UiServer:
    url: str  # http://127.0.0.1:PORT
    registry_url: str
    home: Path
    log: Path

    def token(self, user: str = "admin") -> str:
        body = json.dumps({"username": user, "password": PASSWORDS[user]}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(f1s: tuple[float, ...], accuracy: float) -> dict:
    per_class = {label: {"f1": f1, "support": 10} for label, f1 in zip(LABELS, f1s, strict=True)}
    return {
        "test": {
            "accuracy": accuracy,
            "macro_f1": sum(f1s) / len(f1s),
            "per_class": per_class,
        }
    }


def seed(home: Path, registry_url: str) -> None:
    """Two versions of `intent` (v1 champion, v2 challenger), reports, two lake days."""
    from ml import lake
    from ml.evaluate import plot_confusion
    from ml.registry import CHALLENGER, CHAMPION, Registry

    reports = home / "artifacts" / "intent" / "run-2" / "evaluation"
    confusion = {"labels": list(LABELS), "matrix": [[9, 1, 0], [0, 10, 0], [1, 0, 9]]}
    (reports / "challenger" / "test").mkdir(parents=True)
    plot_confusion(confusion, reports / "challenger" / "test" / "confusion_matrix.png", "v2")
    partitions = [{"day": d.isoformat(), "content_hash": "x"} for d in DAYS]
    with Registry(registry_url) as registry:
        for version, f1s, acc in ((1, (0.80, 0.70, 0.75), 0.76), (2, (0.90, 0.85, 0.70), 0.84)):
            registry.register_version(
                MODEL,
                artifact_uri=str(home / f"model-{version}"),
                artifact_sha256="0" * 64,
                base_model="minilm",
                data_snapshot_hash=f"snap{version}",
                params={},
                lineage={
                    "dag_id": "intent_retrain",
                    "run_id": f"manual__2026-11-2{version}",
                    "window": {"start": "2026-11-20", "end": "2026-11-21"},
                    "partitions": partitions,
                    # v1's reports are gone: the page must say so.
                    "evaluation_reports": str(reports if version == 2 else home / "gone"),
                },
                metrics=_metrics(f1s, acc),
                actor="test",
            )
        registry.set_alias(MODEL, CHAMPION, 1, actor="test", reason="first")
        registry.set_alias(MODEL, CHALLENGER, 2, actor="test", reason="second")
    settings_lake = home / "lake" / "transcripts"
    for i, day in enumerate(DAYS):
        report_dir = home / "reports" / f"dt={day}"
        report_dir.mkdir(parents=True)
        (report_dir / "validation.html").write_text(f"<html><body>report {day}</body></html>")
        results = [
            {"success": True, "expectation_config": {"type": "expect_column_to_exist"}},
            {
                "success": i == 0,
                "expectation_config": {"type": "expect_column_values_to_be_unique"},
            },
        ]
        (report_dir / "validation.json").write_text(json.dumps({"results": results}))
        table = pa.table({"conversation_id": ["a", "b"], "content_hash": ["h1", "h2"]})
        manifest = {
            "day": day.isoformat(),
            "rows_read": 10,
            "rows_written": 8 + i,
            "rows_quarantined": 2 - i,
            "quarantine_rules": {"empty_text": 2 - i},
            "validation_report": str(report_dir / "validation.html"),
        }
        lake.write_partition(table, settings_lake, day, manifest)


def _stop(proc: subprocess.Popen) -> None:
    # The api-server forks workers: signal its whole process group (we started it as leader).
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ui_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "intentflow"
    registry_url = f"sqlite:///{home / 'registry.db'}"
    home.mkdir()
    seed(home, registry_url)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "INTENTFLOW_HOME": str(home),
        "INTENTFLOW_REGISTRY_URL": registry_url,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "intentflow-ui-test-secret",
    }
    log = root / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = UiServer(f"http://127.0.0.1:{port}", registry_url, home, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api-server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{server.url}/api/v2/monitor/health", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"api-server not up in 120 s:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield server
    finally:
        _stop(proc)

"""A real `airflow api-server` with the registry plugin, over what a real ingest and retrain
wrote (tests/pipeline_state.py) and a copy of their registry.

Test modules use it with `pytest_plugins = ("ui_server",)`. One server per session: it takes
20-40 s to start on a busy 2-core machine. Users (the simple auth manager, extended with users
scoped to some DAGs: tests/dag_scoped_auth.py): `admin` (may trigger DAGs, so may promote),
`viewer` (read only), and the operators of DAG_SCOPES, each allowed on its DAGs only.
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
from pathlib import Path

import pytest
from conftest import REPO
from pipeline_state import INTENTFLOW_ENV, PipelineState, registry_copy

# Operators (role "op": may trigger DAGs) allowed on these DAGs and no other.
DAG_SCOPES = {
    "intent_ops": ["intent_retrain", "transcripts_ingest"],
    "entities_ops": ["entities_retrain"],
}
PASSWORDS = {"admin": "admin-pw-7", "viewer": "viewer-pw-7"} | {
    user: f"{user}-pw-7" for user in DAG_SCOPES
}
MODEL = "intent"


@dataclass(frozen=True)
class UiServer:
    url: str  # http://127.0.0.1:PORT
    registry_url: str  # a copy of the state's registry: promotions land there
    state: PipelineState  # what the server shows: real ingest and retrain outputs
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


def _stop(proc: subprocess.Popen) -> None:
    # The api-server forks workers: signal its whole process group (we started it as leader).
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# One server and registry copy per test module: what one module promotes through it never
# changes what the next one sees, whatever the order.
@pytest.fixture(scope="module")
def ui_server(
    airflow_db: Path, pipeline_state: PipelineState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui")
    registry_url = registry_copy(pipeline_state, root)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in INTENTFLOW_ENV},
        # tests/ for the auth manager (dag_scoped_auth).
        "PYTHONPATH": os.pathsep.join(
            [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
        ),
        "INTENTFLOW_HOME": str(pipeline_state.home),
        "INTENTFLOW_REGISTRY_URL": registry_url,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__AUTH_MANAGER": "dag_scoped_auth.DagScopedAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            ["admin:admin", "viewer:viewer", *(f"{user}:op" for user in DAG_SCOPES)]
        ),
        "INTENTFLOW_TEST_DAG_SCOPES": json.dumps(DAG_SCOPES),
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
    server = UiServer(f"http://127.0.0.1:{port}", registry_url, pipeline_state, log)
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

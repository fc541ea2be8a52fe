"""A real distributed Airflow on this machine: CeleryExecutor, PostgreSQL metadata, Redis broker.

Each component is a separate process in its own process group (api-server, scheduler,
dag-processor, one Celery worker per queue set), so a test can kill one worker by PID and
every process is stopped by PID at the end, even when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0, on_fail=None
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` (and logs) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError):
            result = None
        if result:
            return result
        time.sleep(interval)
    detail = on_fail() if on_fail else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self) -> None:
        """SIGKILL the component and every process under it, by PID: the host dying.

        Airflow runs each task in its own process group, so the group alone is not enough.
        """
        tree = self.descendants()
        for pid in [self.pid, *(p.pid for p in tree)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(10)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        """Signal the process group, then SIGKILL whatever is left of the tree, by PID."""
        tree = self.descendants()  # before the parent dies and its children are re-parented
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class Cluster:
    """Airflow components sharing one environment; `start_*` launch, `stop_all` ends them all."""

    home: Path
    env: dict[str, str]
    api_port: int
    password: str
    processes: list[Process] = field(default_factory=list)
    broker: Process | None = None  # a private redis-server (start_redis), restartable

    @classmethod
    def create(
        cls, home: Path, metadata_url: str, broker_url: str, extra_env: dict[str, str]
    ) -> Cluster:
        api_port = free_port()
        password = os.urandom(8).hex()
        home.mkdir(parents=True, exist_ok=True)
        (home / "passwords.json").write_text(json.dumps({"admin": password}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{api_port}/execution/"
                ),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url.replace("+psycopg2", ""),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # A task whose worker died is failed (and retried) after 30 s, not 5 minutes.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # Task processes import the worktree's ml/ and the hostname callable above.
                "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
                **extra_env,
            }
        )
        return cls(home=home, env=env, api_port=api_port, password=password)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def airflow(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        log = self.home / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() reaches its children
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def start_worker(
        self, name: str, queues: str, concurrency: int = 1, env: dict[str, str] | None = None
    ) -> Process:
        return self.start(
            name,
            "celery",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--celery-hostname",
            f"{name}@%h",
            "--skip-serve-logs",  # no log-server port to collide on; logs are local files
            env={"INTENTFLOW_WORKER_NAME": name, **(env or {})},
        )

    def boot(self, registry_url: str, gpu_worker: dict[str, Any]) -> None:
        """The metadata and registry schemas, the `gpu` pool, the services, a `default` and a
        `gpu` worker (`gpu_worker`: start_worker's keywords); returns once the API answers."""
        self.airflow("db", "migrate")
        # The registry's schema, as the compose stack's init does: tasks refuse an unmigrated one.
        subprocess.run(
            [sys.executable, "-m", "ml.cli", "registry", "upgrade"],
            env={**os.environ, "INTENTFLOW_REGISTRY_URL": registry_url},
            check=True,
            capture_output=True,
        )
        self.airflow("pools", "set", "gpu", "1", "fine-tuning slots: one per GPU")
        self.start("api-server", "api-server", "--port", str(self.api_port))
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")
        self.start_worker("worker-default", "default")
        self.start_worker("worker-gpu", "gpu", **gpu_worker)
        wait_for(
            lambda: httpx.get(f"{self.api}/api/v2/version").is_success,
            120,
            "api-server",
            on_fail=self.logs,
        )

    def stop_all(self) -> None:
        # Workers first, so nothing is mid-task when the API they report to goes away.
        for proc in sorted(self.processes, key=lambda p: not p.name.startswith("worker")):
            proc.stop()
        if self.broker is not None:
            self.broker.stop()

    def restart_broker(self) -> None:
        """Stop redis-server (SIGTERM: it flushes its append-only file) and start it again."""
        assert self.broker is not None
        port = int(self.env["AIRFLOW__CELERY__BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
        self.broker.stop()
        self.broker, _ = start_redis(self.broker.log.parent, port)

    def queued_messages(self, queue: str) -> int:
        """Celery messages waiting in the broker's list for `queue`."""
        import redis

        client = redis.Redis.from_url(self.env["AIRFLOW__CELERY__BROKER_URL"])
        try:
            return client.llen(queue)
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.tail()}" for p in self.processes)

    # --- REST API (v2, token auth) -------------------------------------------------------

    def client(self) -> httpx.Client:
        token = httpx.post(
            f"{self.api}/auth/token",
            json={"username": "admin", "password": self.password},
            timeout=30,
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=f"{self.api}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )


def start_redis(home: Path, port: int | None = None) -> tuple[Process, str]:
    """A private redis-server on a free port: nobody else's queues, and it can be restarted.

    Append-only and fsync'd on every write, as a broker must be for queued tasks to survive a
    restart (docker-compose.yaml runs Redis the same way).
    """
    port = port or free_port()
    log = home / "redis.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(home),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Process("redis", popen, log)
    wait_for(lambda: _redis_ping(port), 20, "redis-server", 0.2, proc.tail)
    return proc, f"redis://127.0.0.1:{port}/0"


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")

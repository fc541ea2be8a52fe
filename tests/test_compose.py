"""docker-compose.yaml and Dockerfile, checked by structure (no Docker engine runs in CI).

What must hold for the stack to work: every queue a DAG task uses has a worker, the gpu
worker's concurrency equals the `gpu` pool's slots, every component shares the settings
that tie a Celery deployment together, the data lives on a volume every worker mounts, and
each long-running service has a health check.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
WORKERS = ("airflow-worker", "airflow-worker-gpu")
SHARED_ENV = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "INTENTFLOW_HOME",
    "INTENTFLOW_REGISTRY_URL",
    # Object storage for lake and artifacts: the same on every component, empty by default.
    "INTENTFLOW_DATA_URL",
    "INTENTFLOW_ARTIFACTS_URL",
)


def interpolate(value: Any) -> str:
    """Compose's `${VAR:-default}` with nothing set: the default."""
    return re.sub(r"(?<!\$)\$\{\w+:-([^}]*)\}", r"\1", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(interpolate(command))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def dag_queues() -> dict[str, set[str]]:
    """queue → the DAG tasks sent there, read from the DAGs as the scheduler sees them."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    queues: dict[str, set[str]] = {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            queues.setdefault(task.queue, set()).add(f"{dag.dag_id}.{task.task_id}")
    return queues


def test_services_and_commands(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_COMPONENTS, *WORKERS} <= set(services)
    for name, command in AIRFLOW_COMPONENTS.items():
        assert argv(services[name]) == [command], name
    for name in WORKERS:
        assert argv(services[name])[:2] == ["celery", "worker"], name


def test_every_task_queue_has_a_worker(services: dict[str, Any]) -> None:
    served = {
        queue: name
        for name in WORKERS
        for queue in (option(argv(services[name]), "--queues") or "").split(",")
    }
    used = dag_queues()
    assert set(used) == {"default", "gpu"}, used
    missing = {q: tasks for q, tasks in used.items() if q not in served}
    assert not missing, f"no worker consumes {missing}"
    # Training only on the gpu worker; everything else only on the default worker.
    assert served == {"default": "airflow-worker", "gpu": "airflow-worker-gpu"}


def test_gpu_worker_one_training_per_gpu(services: dict[str, Any]) -> None:
    gpu = services["airflow-worker-gpu"]
    concurrency = option(argv(gpu), "--concurrency")
    init = interpolate("\n".join(services["airflow-init"]["command"]))
    pool = re.search(r"airflow pools set gpu \"?(\d+)\"?", init)
    assert pool, "airflow-init must create the gpu pool"
    assert concurrency == pool.group(1) == "1"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["INTENTFLOW_REQUIRE_GPU"] == "true"
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    assert "deploy" not in services["airflow-worker"]


def test_airflow_services_share_settings_and_data(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    airflow = ["airflow-init", *AIRFLOW_COMPONENTS, *WORKERS]
    envs = {name: services[name]["environment"] for name in airflow}
    for key in SHARED_ENV:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert env["INTENTFLOW_REGISTRY_URL"].startswith("postgresql")
    # The execution API is the api-server's, by its service name and container port.
    api_port = services["airflow-apiserver"]["ports"][0].split(":")[-1]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://airflow-apiserver:{api_port}/execution/"
    )
    # The scheduler's health check needs its health server switched on.
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    # Lake and artifacts: one named volume at INTENTFLOW_HOME on every Airflow service, unless
    # INTENTFLOW_DATA_URL / INTENTFLOW_ARTIFACTS_URL name object storage (default: unset).
    assert (
        interpolate(env["INTENTFLOW_DATA_URL"])
        == interpolate(env["INTENTFLOW_ARTIFACTS_URL"])
        == ""
    )
    home = env["INTENTFLOW_HOME"]
    mounts = {name: set(services[name]["volumes"]) for name in airflow}
    [data] = {m for m in mounts["airflow-worker"] if m.endswith(f":{home}")}
    assert all(data in m for m in mounts.values()), mounts
    assert data.split(":")[0] in compose["volumes"]


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "always", name
    for name in [*AIRFLOW_COMPONENTS, *WORKERS]:
        depends = services[name]["depends_on"]
        assert (
            depends["postgres"]["condition"] == depends["redis"]["condition"] == ("service_healthy")
        )
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )
    # Workers need the execution API up before they can run anything.
    for name in WORKERS:
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    # The scheduler's check is its health server's port, which the config must switch on.
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])


def test_init_migrates_and_creates_user_and_connections(services: dict[str, Any]) -> None:
    script = "\n".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert "CREATE DATABASE intentflow" in script
    assert (
        services["airflow-init"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        in script
    )
    assert "airflow connections add intentflow_registry" in script
    # The registry schema is migrated before any task opens it.
    assert script.index("intentflow registry upgrade") > script.index("CREATE DATABASE intentflow")


def test_dockerfile_matches_the_project_pins() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert base, "the image builds on the official Airflow image"
    airflow_pin = re.search(r'"apache-airflow==([^"]+)"', pyproject).group(1)
    torch_pin = re.search(r'"torch==([^"]+)"', pyproject).group(1)
    assert base.groups() == (airflow_pin, "3.11")
    assert f"torch=={torch_pin}" in dockerfile and "${TORCH_INDEX}" in dockerfile
    for path in ("ml", "dags", "plugins", "pyproject.toml"):
        assert path in dockerfile

"""docker-compose.yaml and Dockerfile, checked by structure (no Docker engine runs in CI).

What must hold for the stack to work: every queue a DAG task uses has a worker, the gpu
worker's concurrency equals the `gpu` pool's slots, every component shares the settings
that tie a Celery deployment together, the data lives on a volume every worker mounts, and
each long-running service has a health check. And what keeps it safe by default: no secret
has a default (compose refuses to start without them, as `docker compose config` would), the
Fernet key is given or generated (never in the file), ports listen on 127.0.0.1 unless
configured, and Flower does not start without basic auth.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
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
    "AIRFLOW__CORE__FERNET_KEY_CMD",
    "AIRFLOW__CORE__AUTH_MANAGER",
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
    # URLs as compose resolves them (the secrets set: they have no defaults).
    env = compose_config(GIVEN)["services"]["airflow-scheduler"]["environment"]
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


# --- safe by default --------------------------------------------------------------------------

# Secrets the stack needs; none may have a default value in the file.
SECRETS = (
    "AIRFLOW_JWT_SECRET",
    "_AIRFLOW_WWW_USER_PASSWORD",
    "POSTGRES_PASSWORD",
    "FLOWER_BASIC_AUTH",
    "AIRFLOW_FERNET_KEY",
    "INTENTFLOW_SERVE_TOKENS",
)
# Those `docker compose config` / `up` refuse to run without (`${VAR:?message}`). Flower's is
# checked by its own command (compose checks `:?` for every service, profile or not); the
# Fernet key, when not given, is generated by airflow-init.
REQUIRED = (
    "AIRFLOW_JWT_SECRET",
    "_AIRFLOW_WWW_USER_PASSWORD",
    "POSTGRES_PASSWORD",
    "INTENTFLOW_SERVE_TOKENS",
)
GIVEN = {
    "AIRFLOW_JWT_SECRET": "jwt-from-env",
    "_AIRFLOW_WWW_USER_PASSWORD": "admin-pw-from-env",
    "POSTGRES_PASSWORD": "pgpwfromenv",
    "INTENTFLOW_SERVE_TOKENS": "serve-token-from-env-0123456789",
}
# Compose's interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
# ${VAR?error}, ${VAR:+alt}, $VAR.
REFERENCE = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)"
)


class MissingVariable(Exception):
    pass


def compose_interpolate(value: str, env: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        name, op, arg = m["name"] or m["bare"], m["op"], m["arg"]
        value = env.get(name)
        empty = not value
        if op in (":?", "?") and (empty if op == ":?" else value is None):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op == ":-":
            return arg if empty else value
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return "" if empty else arg
        return value or ""

    return REFERENCE.sub(one, value)


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    """The stack as `docker compose config` resolves it with `env` (every string value
    interpolated); MissingVariable where compose would stop."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return compose_interpolate(node, env) if isinstance(node, str) else node

    return walk(yaml.safe_load((REPO / "docker-compose.yaml").read_text()))


def references(text: str, name: str) -> list[tuple[str | None, str | None]]:
    """(operator, argument) of every ${name...} in `text`."""
    return [(m["op"], m["arg"]) for m in REFERENCE.finditer(text) if name in (m["name"], m["bare"])]


def test_no_secret_has_a_default_value() -> None:
    text = (REPO / "docker-compose.yaml").read_text()
    for name in SECRETS:
        found = references(text, name)
        assert found, f"{name} is not used"
        for op, arg in found:
            if name in REQUIRED:
                assert op == ":?" and arg, f"{name} must be ${{{name}:?message}}, got {op}{arg}"
            else:
                assert op in (":-", None) and not arg, f"{name} has a default: {op}{arg}"
    # The development defaults of before, in any form.
    for weak in ("change-me", "airflow:airflow@", "POSTGRES_PASSWORD: airflow", '"admin": "'):
        assert weak not in text, weak
    # No Fernet key (44 url-safe base64 characters ending in '=') written into the file.
    assert not re.search(r"[A-Za-z0-9_-]{43}=", text)


def test_compose_refuses_to_start_without_the_required_secrets() -> None:
    for missing in REQUIRED:
        env = {k: v for k, v in GIVEN.items() if k != missing}
        with pytest.raises(MissingVariable, match=f"required variable {missing} "):
            compose_config(env)
    services = compose_config(GIVEN)["services"]
    for name in ["airflow-init", *AIRFLOW_COMPONENTS, *WORKERS]:
        env = services[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-env", name
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "INTENTFLOW_REGISTRY_URL"):
            assert urlsplit(env[key]).password == "pgpwfromenv", (name, key)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pgpwfromenv"
    init = services["airflow-init"]
    assert init["environment"]["ADMIN_PASSWORD"] == "admin-pw-from-env"
    assert init["environment"]["PGPASSWORD"] == "pgpwfromenv"
    # The admin's password file is written from the environment, never from the command text.
    script = "\n".join(init["command"])
    assert "admin-pw-from-env" not in script and "pgpwfromenv" not in script
    assert 'os.environ["ADMIN_PASSWORD"]' in script


def test_ports_listen_on_loopback_unless_configured() -> None:
    text = (REPO / "docker-compose.yaml").read_text()
    raw = yaml.safe_load(text)["services"]
    published = {name: s["ports"] for name, s in raw.items() if s.get("ports")}
    assert set(published) == {
        "airflow-apiserver",
        "flower",
        "intentflow-serve",
        "intentflow-serve-gpu",
        "prometheus",
    }
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("${INTENTFLOW_BIND:-127.0.0.1}:"), (name, port)
    local = compose_config(GIVEN)["services"]
    assert local["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    assert local["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert local["intentflow-serve"]["ports"] == ["127.0.0.1:8000-8009:8000"]
    assert local["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    wide = compose_config({**GIVEN, "INTENTFLOW_BIND": "0.0.0.0"})["services"]
    assert wide["airflow-apiserver"]["ports"] == ["0.0.0.0:8080:8080"]
    # PostgreSQL, Redis and the StatsD exporter publish nothing: only the stack's network
    # reaches them.
    for name in ("postgres", "redis", "statsd-exporter"):
        assert "ports" not in raw[name], name


def test_the_fernet_key_is_given_or_generated_once_and_shared() -> None:
    services = compose_config(GIVEN)["services"]
    script = "\n".join(services["airflow-init"]["command"])
    key_file = "/data/intentflow/.airflow/fernet.key"
    for name in ["airflow-init", *AIRFLOW_COMPONENTS, *WORKERS, "flower"]:
        env = services[name]["environment"]
        assert "AIRFLOW__CORE__FERNET_KEY" not in env, name  # an empty key: no encryption
        assert env["AIRFLOW__CORE__FERNET_KEY_CMD"] == f"cat {key_file}", name
    # Given: AIRFLOW_FERNET_KEY; else generated once (kept across restarts), before any
    # airflow command reads it, readable by its owner only.
    assert services["airflow-init"]["environment"]["GIVEN_FERNET_KEY"] == ""
    given = compose_config({**GIVEN, "AIRFLOW_FERNET_KEY": "k" * 43 + "="})["services"]
    assert given["airflow-init"]["environment"]["GIVEN_FERNET_KEY"] == "k" * 43 + "="
    assert "Fernet.generate_key()" in script and '[ ! -s "$key" ]' in script
    assert script.index("umask 077") < script.index("fernet.key") < script.index("airflow db")


def test_flower_does_not_start_without_basic_auth(tmp_path: Path) -> None:
    flower = compose_config(GIVEN)["services"]["flower"]
    assert flower["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == ""
    with_auth = compose_config({**GIVEN, "FLOWER_BASIC_AUTH": "ops:pw"})["services"]["flower"]
    assert with_auth["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == "ops:pw"
    # Its command, run as the container would without the variable: it refuses to start.
    shell, flag, script = flower["command"]
    assert (shell, flag) == ("bash", "-c") and script.rstrip().endswith(
        "exec airflow celery flower"
    )
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CELERY__FLOWER_BASIC_AUTH"}
    done = subprocess.run(
        [shell, flag, script], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=30
    )
    assert done.returncode == 1 and "set FLOWER_BASIC_AUTH" in done.stderr


def test_the_auth_manager_is_configurable_and_production_is_documented() -> None:
    services = compose_config(GIVEN)["services"]
    manager = services["airflow-apiserver"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"]
    assert manager.endswith("SimpleAuthManager")  # development default
    fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    switched = compose_config({**GIVEN, "AIRFLOW_AUTH_MANAGER": fab})["services"]
    assert switched["airflow-apiserver"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == fab
    security = (REPO / "docs" / "security.md").read_text()
    assert fab in security and "apache-airflow-providers-fab" in security


# --- the prediction API and its metrics -------------------------------------------------------


def test_the_prediction_api_serves_the_registry_of_the_stack(services: dict[str, Any]) -> None:
    """`intentflow serve` on every interface of its container, replicas configurable, healthy
    when /ready answers; the registry, data volume and storage settings of the Airflow
    services (it serves what they register, and logs predictions to their lake)."""
    resolved = compose_config(GIVEN)["services"]
    serve = resolved["intentflow-serve"]
    assert serve["command"] == [
        "python", "-m", "ml.cli", "serve", "--host", "0.0.0.0", "--port", "8000",
    ]  # fmt: skip
    assert serve["environment"]["INTENTFLOW_SERVE_TOKENS"] == GIVEN["INTENTFLOW_SERVE_TOKENS"]
    airflow = resolved["airflow-worker"]["environment"]
    for key in ("INTENTFLOW_HOME", "INTENTFLOW_REGISTRY_URL", "INTENTFLOW_DATA_URL"):
        assert serve["environment"][key] == airflow[key], key
    home = serve["environment"]["INTENTFLOW_HOME"]
    assert f"intentflow-data:{home}" in serve["volumes"]
    assert serve["deploy"]["replicas"] == "2"
    scaled = compose_config({**GIVEN, "INTENTFLOW_SERVE_REPLICAS": "4"})["services"]
    assert scaled["intentflow-serve"]["deploy"]["replicas"] == "4"
    assert "localhost:8000/ready" in " ".join(serve["healthcheck"]["test"])
    assert serve["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert serve["stop_grace_period"] == "40s"  # > the service's own graceful 30 s
    # The GPU replica: only with its profile, one GPU reserved, the CUDA build of torch.
    gpu = services["intentflow-serve-gpu"]
    assert (
        gpu["profiles"] == ["serve-gpu"]
        and gpu["command"] == services["intentflow-serve"]["command"]
    )
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    assert "resources" not in services["intentflow-serve"]["deploy"]  # CPU replicas


def test_prometheus_scrapes_the_api_and_airflow(services: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [found] = jobs["intentflow-serve"]["dns_sd_configs"]
    assert found["names"] == ["intentflow-serve"] and found["port"] == 8000
    assert jobs["airflow"]["static_configs"][0]["targets"] == ["statsd-exporter:9102"]
    mount = "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert mount in services["prometheus"]["volumes"]
    # Every Airflow component sends StatsD to the exporter, on the port it listens on.
    exporter = " ".join(services["statsd-exporter"]["command"])
    for name in ["airflow-scheduler", *WORKERS]:
        env = services[name]["environment"]
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "true", name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
        assert f"--statsd.listen-udp=:{env['AIRFLOW__METRICS__STATSD_PORT']}" in exporter

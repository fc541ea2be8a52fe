"""Credentials from Airflow connections, for Intentflow's tasks.

Every task of the Intentflow DAGs runs `use_connections` first (its `pre_execute`): the
registry database and the object store are then read from Airflow connections, so a secrets
backend (Vault, AWS Secrets Manager...) or the metadata DB can hold them, not only the
environment:

- `intentflow_registry` (postgres, or sqlite): the registry database. It wins over
  INTENTFLOW_REGISTRY_URL inside a task; the environment stays the CLI's (and a fallback when
  the connection does not exist).
- `intentflow_storage` (aws): the object store of INTENTFLOW_DATA_URL / INTENTFLOW_ARTIFACTS_URL:
  login = access key id, password = secret key, extra `endpoint_url`, `region_name`.

The values go into the task process's environment only (ml/ reads its settings there and
knows nothing of Airflow); each task is its own process, and nothing is printed.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

REGISTRY_CONN_ID = "intentflow_registry"
STORAGE_CONN_ID = "intentflow_storage"


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException: the environment applies
        return None


def connection_env() -> dict[str, str]:
    """The environment the two connections stand for (empty where one does not exist)."""
    import json

    from ml.config import airflow_conn_to_url

    env: dict[str, str] = {}
    registry = _connection(REGISTRY_CONN_ID)
    if registry is not None and registry.conn_type == "sqlite":
        env["INTENTFLOW_REGISTRY_URL"] = f"sqlite:///{registry.host}"
    elif registry is not None:
        # The JSON form keeps a password with any characters intact.
        as_json = json.dumps(
            {
                "conn_type": registry.conn_type,
                "host": registry.host,
                "login": registry.login,
                "password": registry.password,
                "port": registry.port,
                "schema": registry.schema,
            }
        )
        env["INTENTFLOW_REGISTRY_URL"] = airflow_conn_to_url(
            as_json, f"connection {REGISTRY_CONN_ID}"
        )
    storage = _connection(STORAGE_CONN_ID)
    if storage is not None:
        extra = storage.extra_dejson or {}
        for var, value in (
            ("AWS_ACCESS_KEY_ID", storage.login),
            ("AWS_SECRET_ACCESS_KEY", storage.password),
            ("AWS_ENDPOINT_URL", extra.get("endpoint_url")),
            ("AWS_DEFAULT_REGION", extra.get("region_name")),
        ):
            if value:
                env[var] = str(value)
    return env


def use_connections(context: Any = None) -> None:
    """pre_execute of every Intentflow task: the connections into this task's environment."""
    env = connection_env()
    os.environ.update(env)
    if env:
        log.info("credentials from Airflow connections: %s", ", ".join(sorted(env)))

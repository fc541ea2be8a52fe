"""Where the registry lives: INTENTFLOW_REGISTRY_URL, Airflow's connection, or SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.config import ConfigError, airflow_conn_to_url, settings


def test_registry_url_precedence(intentflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().registry_url == f"sqlite:///{intentflow_home / 'registry.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTENTFLOW_REGISTRY", "postgres://u:p%40ss@db:5432/reg")
    assert settings().registry_url == "postgresql+psycopg2://u:p%40ss@db:5432/reg"
    monkeypatch.setenv("INTENTFLOW_REGISTRY_URL", "sqlite:///elsewhere.db")
    assert settings().registry_url == "sqlite:///elsewhere.db"


def test_airflow_connection_forms() -> None:
    as_json = json.dumps(
        {
            "conn_type": "postgres",
            "host": "db",
            "login": "intentflow",
            "password": "p@ss",
            "port": 5432,
            "schema": "registry",
        }
    )
    assert (
        airflow_conn_to_url(as_json) == "postgresql+psycopg2://intentflow:p%40ss@db:5432/registry"
    )
    assert airflow_conn_to_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    with pytest.raises(ConfigError, match="connection type 'mysql'"):
        airflow_conn_to_url("mysql://h/db")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        airflow_conn_to_url("{nope")


def test_ingest_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.config import ingest_workers

    monkeypatch.delenv("INTENTFLOW_INGEST_WORKERS", raising=False)
    assert 1 <= ingest_workers() <= 4
    monkeypatch.setenv("INTENTFLOW_INGEST_WORKERS", "3")
    assert ingest_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("INTENTFLOW_INGEST_WORKERS", bad)
        with pytest.raises(ConfigError, match="INTENTFLOW_INGEST_WORKERS"):
            ingest_workers()

"""Settings read from the environment (ml.config): each variable, its default and its errors."""

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
    # A container given one CPU's quota on a larger host: 1, not the host's count.
    monkeypatch.setattr("ml.threads._cgroup_quota", lambda: 1.0)
    assert ingest_workers() == 1
    monkeypatch.setenv("INTENTFLOW_INGEST_WORKERS", "3")
    assert ingest_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("INTENTFLOW_INGEST_WORKERS", bad)
        with pytest.raises(ConfigError, match="INTENTFLOW_INGEST_WORKERS"):
            ingest_workers()


def test_model_sources_and_models_file(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = (
        "INTENTFLOW_MODELS_FILE",
        "INTENTFLOW_ENTITIES_SOURCE",
        "INTENTFLOW_ANSWERS_SOURCE",
        "INTENTFLOW_ENTITIES_ABCD",
    )
    for name in names:
        monkeypatch.setenv(name, "  ")  # blank is unset
    cfg = settings()
    assert (cfg.models_file, cfg.entities_source, cfg.answers_source, cfg.entities_abcd) == (
        None,
        None,
        None,
        None,
    )
    monkeypatch.setenv("HOME", str(intentflow_home))
    monkeypatch.setenv("INTENTFLOW_MODELS_FILE", "~/models.json")
    monkeypatch.setenv("INTENTFLOW_ENTITIES_SOURCE", "s3://labeled/spans.csv")
    monkeypatch.setenv("INTENTFLOW_ANSWERS_SOURCE", "/data/pairs.csv")
    monkeypatch.setenv("INTENTFLOW_ENTITIES_ABCD", "/data/abcd.json")
    cfg = settings()
    assert cfg.models_file == intentflow_home / "models.json"
    assert (cfg.entities_source, cfg.answers_source, cfg.entities_abcd) == (
        "s3://labeled/spans.csv",
        "/data/pairs.csv",
        "/data/abcd.json",
    )


def test_retrain_max_active_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.config import retrain_max_active_runs

    monkeypatch.delenv("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS", raising=False)
    assert retrain_max_active_runs() == 1
    monkeypatch.setenv("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS", "2")
    assert retrain_max_active_runs() == 2
    for bad in ("0", "many"):
        monkeypatch.setenv("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS", bad)
        with pytest.raises(ConfigError, match="INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS"):
            retrain_max_active_runs()


def test_labels_progress_and_alert_recipients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.config import alert_email_to, labels_file, progress_mode

    for name in ("INTENTFLOW_LABELS", "INTENTFLOW_PROGRESS", "INTENTFLOW_ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)
    assert (labels_file(), progress_mode(), alert_email_to()) == (None, "auto", None)
    monkeypatch.setenv("INTENTFLOW_LABELS", str(tmp_path / "labels.txt"))
    monkeypatch.setenv("INTENTFLOW_PROGRESS", " Log ")
    monkeypatch.setenv("INTENTFLOW_ALERT_EMAIL_TO", "a@example.com, b@example.com")
    assert labels_file() == tmp_path / "labels.txt"
    assert progress_mode() == "log"
    assert alert_email_to() == "a@example.com, b@example.com"


def test_sources_file_names_the_sources_a_run_may_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.config import source_names

    monkeypatch.delenv("INTENTFLOW_SOURCES_FILE", raising=False)
    assert source_names() == ("default",)
    path = tmp_path / "sources.json"
    monkeypatch.setenv("INTENTFLOW_SOURCES_FILE", str(path))
    path.write_text(json.dumps({"crm": {"url": "/data/crm"}, "b77": {}}))
    assert source_names() == ("b77", "crm", "default")
    for bad, message in (
        ("[]", "expected an object"),
        ('{"../etc": {}}', "is not a word"),
        ('{"crm": "/data/crm"}', "'crm' is not an object"),
        ("{", "is not valid JSON"),
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            source_names()
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read it"):
        source_names()

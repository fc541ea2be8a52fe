"""The registry's `monitoring_days` table through ml.monitoring.store: one row per model and
day, a rerun replaces it, oldest first, figures parsed (a real registry: SQLite, and
PostgreSQL where a server is up, tests/pg.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.monitoring.store import monitoring_days, save_day
from ml.registry.errors import NotFoundError
from ml.registry.store import Registry

pytest_plugins = ("pg",)

SHA = "0" * 64


def _registered(url: str, model: str = "intent") -> None:
    with Registry(url, auto_upgrade=True) as registry:
        registry.register_version(
            model,
            artifact_uri="/nowhere",
            artifact_sha256=SHA,
            base_model="tiny",
            data_snapshot_hash="h",
            params={},
            lineage={},
            metrics={},
        )


def test_a_rerun_replaces_the_day_and_rows_come_oldest_first(db_url: str) -> None:
    url = db_url
    _registered(url)
    for day, status in (("2026-11-22", "ok"), ("2026-11-20", "drift"), ("2026-11-21", "no_data")):
        save_day(url, model="intent", day=day, version=1, reference_version=1, predictions=5,
                 status=status, figures={"predictions": 5, "checks": []}, report_url=None)  # fmt: skip
    again = save_day(
        url,
        model="intent",
        day="2026-11-22",
        version=1,
        reference_version=1,
        predictions=7,
        status="drift",
        figures={"predictions": 7, "drifted": ["label_psi"]},
        report_url="/r/2026-11-22.html",
    )
    rows = monitoring_days(url, "intent")
    assert [(r["day"], r["status"], r["predictions"]) for r in rows] == [
        ("2026-11-20", "drift", 5),
        ("2026-11-21", "no_data", 5),
        ("2026-11-22", "drift", 7),
    ]
    assert rows[-1] == again
    assert rows[-1]["figures"] == {"predictions": 7, "drifted": ["label_psi"]}
    assert rows[-1]["computed_at"].endswith("+00:00")
    assert rows[-1]["report_url"] == "/r/2026-11-22.html"
    assert [r["day"] for r in monitoring_days(url, "intent", limit=2)] == [
        "2026-11-21",
        "2026-11-22",
    ]
    assert monitoring_days(url, "other") == []


def test_an_unregistered_model_or_unknown_status_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _registered(url)
    row = dict(day="2026-11-22", version=1, reference_version=1, predictions=1, figures={},
               report_url=None)  # fmt: skip
    with pytest.raises(NotFoundError, match="'nobody' is not registered"):
        save_day(url, model="nobody", status="ok", **row)
    with pytest.raises(ValueError, match="status 'fine'"):
        save_day(url, model="intent", status="fine", **row)

"""Predictions logged by the service's own writer (ml.serving.prediction_log) into a real
`predictions` Delta table, for the corrections to name."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml.config import Settings, settings


@pytest.fixture
def cfg(intentflow_home: Path) -> Settings:
    return settings()


def logged(
    text: str,
    label: str,
    *,
    model: str = "intent",
    version: int = 1,
    ts: datetime | None = None,
    ranked: tuple[str, ...] = (),
) -> Any:
    from ml.serving.prediction_log import Logged

    top = [{"label": lbl, "confidence": 0.1} for lbl in (label, *ranked)]
    return Logged(
        uuid.uuid4().hex,
        ts or datetime.now(UTC),
        model,
        version,
        "intent",
        "torch",
        text,
        {"label": label, "confidence": 0.9, "top_k": top, "scores": {}},
        1.0,
    )


@pytest.fixture
def log_predictions(cfg: Settings) -> Callable[..., list[str]]:
    """log_predictions([(text, label), ...], days_ago=0, model="intent") -> prediction ids,
    written to the predictions table in one flush."""
    from ml.serving.prediction_log import PredictionLog, PredictionTable
    from ml.subjects import pii_key

    def write(pairs: list[tuple[str, str]], days_ago: int = 0, model: str = "intent") -> list[str]:
        ts = datetime.now(UTC) - timedelta(days=days_ago)
        rows = [logged(t, lbl, model=model, ts=ts) for t, lbl in pairs]
        log = PredictionLog(
            PredictionTable(cfg.predictions), pii_key(cfg), flush_s=60, max_rows=10**6
        )
        log.add(rows)
        assert log.flush() == len(rows)
        return [r.prediction_id for r in rows]

    return write

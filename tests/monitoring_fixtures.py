"""A served champion to monitor: the session's tiny trained intent model (conftest's
`tiny_artifact`, trained on a snapshot written by ml.snapshots.writer) registered as
`intent:1` champion with that snapshot in its lineage; and days of predictions written to a
real Delta `predictions` table through the service's own PredictionLog, with the model's real
answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml.config import settings


@pytest.fixture
def champion(intentflow_home: Path, tiny_artifact: dict[str, Any]) -> Any:
    """intent:1, the tiny model, champion; its lineage names its training snapshot."""
    from ml.registry.store import Registry

    snapshot = Path(tiny_artifact["snapshot_dir"])
    record = json.loads((snapshot / "snapshot.json").read_text())
    with Registry(settings().registry_url) as registry:
        registry.register_version(
            "intent",
            artifact_uri=tiny_artifact["artifact_dir"],
            artifact_sha256=tiny_artifact["artifact_sha256"],
            base_model=tiny_artifact["base_model"],
            data_snapshot_hash=record["hash"],
            params={},
            lineage={"snapshot_path": str(snapshot), "counts": record["counts"]},
            metrics={},
        )
        registry.set_alias("intent", "champion", 1, actor="test", reason="first")
        return registry.get("intent")


@pytest.fixture
def write_day(champion: Any) -> Callable[..., int]:
    """write_day(day, texts): the champion's answers to `texts` logged as the service logs
    them (ml.serving.prediction_log), spread over the day; returns the rows written."""
    from ml.serving.models import load_served
    from ml.serving.prediction_log import Logged, PredictionLog, PredictionTable
    from ml.serving.responses import api_prediction, log_fields

    cfg = settings()
    model = load_served(champion, cfg, "onnx-int8", threads=1)

    def write(day: str, texts: list[str]) -> int:
        log = PredictionLog(PredictionTable(cfg.predictions), b"k" * 32, flush_s=60, max_rows=10**6)
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        answers = model.predict(texts, 5)
        log.add(
            [
                Logged(
                    prediction_id=f"{day}-{i}",
                    ts=start + timedelta(seconds=i * 86400 // max(len(texts), 1)),
                    model="intent",
                    version=champion.version,
                    task="intent",
                    runtime=model.runtime,
                    text=text,
                    fields=log_fields(api_prediction(answer, f"{day}-{i}", 5)),
                    latency_ms=1.0,
                )
                for i, (text, answer) in enumerate(zip(texts, answers, strict=True))
            ]
        )
        return log.flush()

    return write

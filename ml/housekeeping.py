"""Housekeeping of the lake's Delta tables: what the maintenance DAG and `intentflow lake`
run. Nothing here reads Airflow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ml import delta
from ml.config import Settings
from ml.storage import Location


def tables(cfg: Settings) -> list[Location]:
    """Every Delta table of the lake: transcripts, quarantine, predictions, feedback."""
    return [cfg.lake, cfg.quarantine, cfg.predictions, cfg.feedback]


def maintain_all(cfg: Settings, retention_hours: int) -> list[dict[str, Any]]:
    """Compact, VACUUM past `retention_hours` and checkpoint each table (ml.delta.maintain)."""
    return [delta.maintain(root, retention_hours) for root in tables(cfg)]


def versions(root: Location, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` versions of the table at `root`: version, time (UTC), operation,
    and the days our commits named."""
    table = delta.open_table(root)
    if table is None:
        return []
    return [
        {
            "version": entry.get("version"),
            "time": datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, UTC).isoformat(
                timespec="seconds"
            ),
            "operation": entry.get("operation", ""),
            "days": sorted(json.loads(entry.get(delta.MANIFESTS) or "{}")),
        }
        for entry in table.history(limit)
    ]

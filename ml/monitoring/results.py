"""What the monitoring DAG's tasks hand each other through XCom (small dicts, no text)."""

from __future__ import annotations

from typing import Any, TypedDict


class Monitored(TypedDict):
    model: str
    days: list[dict[str, Any]]  # ml.monitoring.run.monitor_day's summaries

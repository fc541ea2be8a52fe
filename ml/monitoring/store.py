"""The registry's `monitoring_days` table (ml.registry.schema.MonitoringDay): one row per model
and day, written by ml.monitoring.run, read by the UI.

A rerun of a day replaces its row (unique model and day), so a backfill is safe to repeat.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ml.registry.errors import NotFoundError
from ml.registry.schema import MonitoringDay, RegisteredModel, json_dumps, utcnow

# The columns a row dict carries (figures parsed), in the table's order.
COLUMNS = tuple(c.key for c in MonitoringDay.__table__.columns)
STATUSES = ("ok", "drift", "no_data")


def _registry(registry_url: str) -> Any:
    from ml.registry.store import Registry

    return Registry(registry_url)


def _as_dict(row: MonitoringDay) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in COLUMNS}
    # JSON-ready: the day as YYYY-MM-DD, the time as ISO 8601 (UTC).
    out["day"] = row.day.isoformat()
    out["computed_at"] = row.computed_at.isoformat() if row.computed_at else None
    out["figures"] = dict(row.figures or {})
    return out


def monitoring_days(registry_url: str, model: str, limit: int = 90) -> list[dict]:
    """The model's last `limit` monitored days, oldest first: each row as a dict of the table's
    columns (`day` "YYYY-MM-DD", `computed_at` ISO text, `figures` parsed); [] when none."""
    registry = _registry(registry_url)
    try:

        def read(session: Session) -> list[dict]:
            query = (
                select(MonitoringDay)
                .where(MonitoringDay.model == model)
                .order_by(MonitoringDay.day.desc())
                .limit(max(int(limit), 0))
            )
            return [_as_dict(row) for row in session.scalars(query)][::-1]

        return registry.read(read)
    finally:
        registry.close()


def save_day(
    registry_url: str,
    *,
    model: str,
    day: date | str,
    version: int,
    reference_version: int,
    predictions: int,
    status: str,
    figures: dict[str, Any],
    report_url: str | None,
    computed_at: datetime | None = None,
) -> dict[str, Any]:
    """Write the model's row for `day`, replacing the one an earlier run wrote; the row as
    :func:`monitoring_days` returns it. NotFoundError when the model is not registered."""
    if status not in STATUSES:
        raise ValueError(f"monitoring status {status!r}: expected one of {', '.join(STATUSES)}")
    when = date.fromisoformat(day) if isinstance(day, str) else day
    # Stored as the engines' JSON serializer writes it, so a NaN or a date fails here, not later.
    stored = json.loads(json_dumps(figures))
    values = {
        "version": int(version),
        "reference_version": int(reference_version),
        "predictions": int(predictions),
        "status": status,
        "figures": stored,
        "report_url": report_url,
        "computed_at": computed_at or utcnow(),
    }
    registry = _registry(registry_url)
    try:

        def write(session: Session) -> dict[str, Any]:
            known = session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == model))
            if known is None:
                raise NotFoundError(f"model {model!r} is not registered")
            row = session.scalar(
                select(MonitoringDay).where(MonitoringDay.model == model, MonitoringDay.day == when)
            )
            if row is None:
                row = MonitoringDay(model=model, day=when, **values)
                session.add(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            session.flush()
            return _as_dict(row)

        # A racing writer of the same day makes the insert fail on the unique key: the retry
        # finds its row and replaces it.
        return registry.write(write)
    finally:
        registry.close()

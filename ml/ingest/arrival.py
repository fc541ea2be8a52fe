"""Whether a day's drop has arrived, and until when to wait for it.

The ingest DAG's first task waits for the drop (deferred between looks: no worker slot is
held) up to the day's deadline; a drop that never comes is a MissingDataError, which alerts
as "missing data", never as a failed data-quality gate. No Airflow here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


class MissingDataError(RuntimeError):
    """No drop for `day` by `deadline`: the source sent nothing (not bad data)."""

    def __init__(self, day: date, deadline: datetime, source: str) -> None:
        super().__init__(
            f"missing data: no drop for {day} from source {source!r} by {deadline:%Y-%m-%d %H:%M} UTC"
        )
        self.day, self.deadline, self.source = day, deadline, source


def drop_deadline(day: date, hours_after_day: float) -> datetime:
    """The latest time `day`'s drop may arrive: `hours_after_day` after the day ends (UTC)."""
    return datetime.combine(day + timedelta(days=1), time(), UTC) + timedelta(hours=hours_after_day)


def drop_present(source: str | None, day: date) -> bool:
    """Whether the source holds files for `day` (a SQL source is always there: it is queried)."""
    from ml.ingest import sources
    from ml.ingest.named_sources import resolve

    try:
        return bool(sources.discover(resolve(source), day))
    except FileNotFoundError:  # the source's folder itself is not there (yet)
        return False

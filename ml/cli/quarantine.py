"""`intentflow quarantine purge`: housekeeping of what ingest keeps outside the lake.

Ingest runs the same purge after each write; this command is for a deployment whose ingest
stopped, or after lowering the retention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ml.cli.output import emit
from ml.config import quarantine_retention_days, settings, staging_retention_hours

quarantine_app = typer.Typer(help="The quarantine of refused records.", no_args_is_help=True)


@quarantine_app.command("purge")
def purge(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Delete quarantine days past INTENTFLOW_QUARANTINE_RETENTION_DAYS and staged days older
    than INTENTFLOW_STAGING_RETENTION_HOURS."""
    from ml import lake
    from ml.ingest.steps import sweep_staging

    cfg = settings()
    days = lake.purge_quarantine(
        cfg.quarantine, datetime.now(UTC).date(), quarantine_retention_days()
    )
    staged = sweep_staging(cfg)
    result = {
        "quarantine_days_deleted": [d.isoformat() for d in days],
        "staged_days_removed": staged,
        "retention_days": quarantine_retention_days(),
        "staging_retention_hours": staging_retention_hours(),
    }
    text = (
        f"quarantine: deleted {len(days)} day(s) older than {result['retention_days']} days"
        + "".join(f"\n  {d}" for d in result["quarantine_days_deleted"])
        + f"\nstaging: removed {len(staged)} staged day(s) older than "
        f"{result['staging_retention_hours']:g} hours"
    )
    emit(result, as_json, text)

"""`intentflow lake`: the lake's Delta tables (transcripts, quarantine, predictions, feedback).

`migrate` converts a lake written before the Delta tables; `maintain` is the maintenance DAG's
work (compact, VACUUM past the retention, checkpoint), for a deployment without Airflow or
right after an erasure; `history` lists the transcripts table's versions (for `train --as-of`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ml.cli.output import emit
from ml.config import lake_retention_hours, settings

lake_app = typer.Typer(help="The lake's Delta tables.", no_args_is_help=True)


@lake_app.command("migrate")
def migrate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Convert a lake written before the Delta tables, in place (idempotent: rerun after a
    crash)."""
    from ml.lake_migrate import migrate as run

    result = run(settings())
    text = "\n".join(f"{table}: {len(days)} day(s) converted" for table, days in result.items())
    emit(result, as_json, text)


@lake_app.command("maintain")
def maintain(
    retention_hours: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Delete files replaced longer ago than this (default: "
            "INTENTFLOW_LAKE_RETENTION_HOURS); time travel reaches no further back.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compact, VACUUM and checkpoint every lake table."""
    from ml.housekeeping import maintain_all

    hours = lake_retention_hours() if retention_hours is None else retention_hours
    result = maintain_all(settings(), hours)
    text = "\n".join(
        f"{r['table']}: "
        + (
            f"version {r['version']}, {r['files_compacted']} file(s) compacted, "
            f"{r['files_vacuumed']} vacuumed"
            if r["exists"]
            else "no table"
        )
        for r in result
    )
    emit(result, as_json, f"retention {hours} h\n{text}")


@lake_app.command("history")
def history(
    limit: Annotated[int, typer.Option(min=1, help="Newest versions shown.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The transcripts table's versions: when, what operation, which days it changed."""
    from ml.housekeeping import versions

    rows = versions(settings().lake, limit)
    text = "\n".join(
        f"v{r['version']}  {r['time']}  {r['operation']:<10} {', '.join(r['days'])}" for r in rows
    )
    emit(rows, as_json, text or "no table yet")

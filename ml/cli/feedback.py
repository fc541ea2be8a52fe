"""`intentflow feedback import FILE`: agents' corrections from a file (ml.feedback.importer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ml.cli.output import emit, fail
from ml.config import settings

feedback_app = typer.Typer(help="Agents' corrections of served predictions.", no_args_is_help=True)


@feedback_app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(help="CSV (header: prediction_id,label,agent_id,note) or JSON Lines.")
    ],
    model: Annotated[
        str | None, typer.Option(help="The model corrected (default INTENTFLOW_MODEL_NAME's).")
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where bad records go (default FILE.rejected.jsonl).")
    ] = None,
    new_labels: Annotated[
        bool | None,
        typer.Option(
            "--new-labels/--no-new-labels",
            help="Allow labels outside the taxonomy (default INTENTFLOW_FEEDBACK_NEW_LABELS).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Import corrections: the valid records in one commit, the bad ones reported (file, line,
    field) and written aside. Exit 0: all imported; 1: some rejected (the rest imported);
    2: the file could not be read. A rerun is idempotent."""
    from ml.feedback.importer import ImportFileError, import_file

    cfg = settings()
    try:
        result = import_file(
            cfg, model or cfg.model_name, file, rejects=rejects, new_labels=new_labels
        )
    except ImportFileError as exc:
        fail(str(exc))
    s = result.summary
    lines = [
        f"{file}: {result.records} record(s): {s['created']} created, {s['replaced']} replaced, "
        f"{s['unchanged']} unchanged, {s['duplicate']} duplicate, {s['rejected']} rejected"
    ]
    lines += [
        f"  {r['file']}:{r['line']}: {r['field']}: {r['reason']}" for r in result.rejected[:50]
    ]
    if len(result.rejected) > 50:
        lines.append(f"  ... and {len(result.rejected) - 50} more")
    if result.rejects_file:
        lines.append(f"rejected records written to {result.rejects_file}")
    emit(result.as_dict(), as_json, "\n".join(lines))
    if result.rejected:
        raise typer.Exit(1)

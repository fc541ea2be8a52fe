"""`intentflow replay`: a day of a drop's customer messages through the served champion
(ml.serving.replay), for the feedback-loop scenario and its benchmark."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from ml.cli.output import emit, fail, name_check


def replay_command(
    drops: Annotated[Path, typer.Option(help="Folder of daily drops (DIR/YYYY-MM-DD/*.jsonl).")],
    day: Annotated[str, typer.Option(help="First day to replay (YYYY-MM-DD).")],
    days: Annotated[int, typer.Option(min=1, help="Days to replay from --day.")] = 1,
    url: Annotated[str, typer.Option(help="The service's base URL.")] = "http://127.0.0.1:8000",
    model: Annotated[str, typer.Option(help="Served model.", callback=name_check("model"))] = (
        "intent"
    ),
    keys: Annotated[
        Path,
        typer.Option(
            help="Folder for the key files (prediction id -> true label; benchmarks and tests "
            "only, outside the lake; no customer text)."
        ),
    ] = Path("replay-keys"),
    token_env: Annotated[
        str,
        typer.Option(
            help="Environment variable holding the bearer token (default: INTENTFLOW_TOKEN, "
            "else the first of INTENTFLOW_SERVE_TOKENS); never on the command line."
        ),
    ] = "INTENTFLOW_TOKEN",  # noqa: S107 (a variable name, not a token)
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Send each day's messages to POST /v1/models/MODEL/predict, dated by their arrival (the
    service runs with INTENTFLOW_SERVE_REPLAY=1), and write the prediction ids' true labels."""
    from ml.serving.replay import ReplayError, replay_day
    from ml.taxonomy import known_intents

    token = os.environ.get(token_env) or os.environ.get("INTENTFLOW_SERVE_TOKENS", "").split(",")[0]
    if not token.strip():
        fail(f"no bearer token: set {token_env} (or INTENTFLOW_SERVE_TOKENS)")
    first = date.fromisoformat(day)
    results = []
    try:
        for i in range(days):
            one = first + timedelta(days=i)
            results.append(
                replay_day(drops, one, url, model, token.strip(), keys, known_intents()).as_dict()
            )
    except (ReplayError, FileNotFoundError) as exc:
        fail(str(exc))
    lines = [
        f"{r['day']}  sent {r['sent']:5d}  accuracy {r['accuracy']}  versions {r['versions']}  "
        f"skipped {sum(r['skipped'].values())}"
        for r in results
    ]
    emit({"days": results}, as_json, "\n".join(lines))

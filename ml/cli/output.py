"""How every command answers: text (or JSON with --json) on stdout; errors on stderr, exit 2."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer


def emit(payload: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def metrics_text(metrics: dict[str, float], sep: str) -> str:
    return "  ".join(f"{k}{sep}{v:.4f}" for k, v in metrics.items()) or "-"


def headline(metrics: dict[str, Any], view: Any) -> str:
    """The test metrics a person reads first (an ml.registry.views.MetricView): the primary one,
    then the task's usual ones."""
    return f"test {metrics_text(view.headline(metrics), ' ')}  n={metrics.get('n')}"

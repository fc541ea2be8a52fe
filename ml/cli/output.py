"""How every command answers: text (or JSON with --json) on stdout; errors on stderr, exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from ml.credentials import hide_credentials


def emit(payload: Any, as_json: bool, text: str) -> None:
    """Print the answer; a password in any URL it names is masked (ml.credentials)."""
    typer.echo(hide_credentials(json.dumps(payload, indent=2, default=str) if as_json else text))


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {hide_credentials(message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def name_check(kind: str) -> Callable[[str | None], str | None]:
    """A typer callback: a `kind` ("model", "alias") name option must be one safe path
    segment (ml.registry.names), else the command stops with a usage error."""
    from ml.registry.names import InvalidNameError, check_name

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_name(kind, value)
        except InvalidNameError as exc:
            raise typer.BadParameter(str(exc)) from None

    return check


def metrics_text(metrics: dict[str, float], sep: str) -> str:
    return "  ".join(f"{k}{sep}{v:.4f}" for k, v in metrics.items()) or "-"


def headline(metrics: dict[str, Any], view: Any) -> str:
    """The test metrics a person reads first (an ml.registry.views.MetricView): the primary one,
    then the task's usual ones."""
    return f"test {metrics_text(view.headline(metrics), ' ')}  n={metrics.get('n')}"


def oos_text(metrics: dict[str, Any]) -> str | None:
    """An intent evaluation's out-of-scope figures on one line (ml.tasks.intent.out_of_scope);
    None for other tasks and artifacts without a detector."""
    if "oos_n" not in metrics:
        return None
    parts = []
    if "in_scope_accuracy" in metrics:
        parts.append(
            f"in-scope accuracy {metrics['in_scope_accuracy']:.4f} "
            f"(kept in scope {metrics['in_scope_kept']:.4f})"
        )
    if "oos_recall" in metrics:
        parts.append(
            f"OOS recall {metrics['oos_recall']:.4f}, precision {metrics['oos_precision']:.4f}"
        )
    if "oos_auroc" in metrics:
        parts.append(
            f"AUROC {metrics['oos_auroc']:.4f}, FPR@95%TPR {metrics['oos_fpr_at_95_tpr']:.4f}"
        )
    shown = "; ".join(parts) or "no rows"
    return f"out of scope ({metrics['oos_n']} labelled out of scope): {shown}"

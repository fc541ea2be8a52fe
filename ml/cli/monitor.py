"""`intentflow monitor`: one model's day of served predictions against its champion's training
snapshot, as the monitoring DAG's `monitor` task does it (ml.monitoring.run.monitor_day):
writes the report and the registry row, prints the checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer

from ml.cli.output import emit, fail, name_check


def monitor_command(
    model: Annotated[
        str | None,
        typer.Option(
            help="Registered model (default INTENTFLOW_MODEL_NAME).", callback=name_check("model")
        ),
    ] = None,
    day: Annotated[
        str | None, typer.Option(help="Day to monitor, YYYY-MM-DD (default: yesterday, UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare a day of a served model's predictions with its champion's training snapshot:
    label mix, confidence, out-of-scope rate, length and unseen words against the thresholds
    (INTENTFLOW_DRIFT_*). Exit 0 whatever it finds (the status says); 2 on an error."""  # fmt: skip
    from ml.config import ConfigError, settings
    from ml.monitoring.run import monitor_day
    from ml.registry.errors import RegistryError

    cfg = settings()
    when = day or (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    try:
        date.fromisoformat(when)
    except ValueError:
        fail(f"--day {when!r} is not a date (YYYY-MM-DD)")
    try:
        result = monitor_day(model or cfg.model_name, when, cfg)
    except (ConfigError, RegistryError, ValueError, OSError) as exc:
        fail(str(exc))
    emit(result, as_json, _text(result))


def _text(r: dict[str, Any]) -> str:
    if r["status"] == "no_model":
        return f"{r['model']} {r['day']}: no champion and no predictions: nothing monitored"
    lines = [
        f"{r['model']} {r['day']}: {r['status']} ({r['predictions']} predictions, "
        f"v{r['version']} against the snapshot of v{r['reference_version']})"
    ]
    for c in r["checks"]:
        mark = "DRIFT" if c["drift"] else "ok"
        value = "-" if c["value"] is None else f"{c['value']:.4f}"
        lines.append(f"  {c['name']:<20} {value:>8}  threshold {c['threshold']:.4f}  {mark}")
    lines.append(f"  report {r['report_url']}")
    return "\n".join(lines)

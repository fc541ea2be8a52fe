"""How a retrain is operated, without Airflow: its data-sized time limit, whether new data is
enough to start one, and what a person approving a promotion is shown.

The retrain DAGs (dags/model_retrain.py) call these from their tasks; standard library only,
so the DAG file may import it at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ml.config import OpsSettings
from ml.retrain.results import Evaluation, Registered, Snapshot

DEFAULT_EPOCHS = 6  # ml.training.config.BaseTrainConfig.epochs (not imported: it is heavier)


def fine_tune_timeout(snapshot: Snapshot, params: dict[str, Any], ops: OpsSettings) -> timedelta:
    """fine_tune's execution_timeout: the training examples times the epochs at the slowest
    rate the deployment accepts, plus a fixed overhead (loading, evaluation each epoch,
    writing the artifact), capped at INTENTFLOW_FINE_TUNE_MAX_HOURS. A hung training then
    frees its `gpu` slot after about its expected time, not never."""
    rows = int((snapshot.get("counts") or {}).get("train", 0))
    rows += int((snapshot.get("counts") or {}).get("validation", 0))
    epochs = int(params.get("epochs") or DEFAULT_EPOCHS)
    rate = max(ops.fine_tune_min_samples_per_second, 1e-6)
    seconds = ops.fine_tune_overhead_minutes * 60 + rows * epochs / rate
    return timedelta(seconds=max(1.0, min(seconds, ops.fine_tune_max_hours * 3600)))


def new_rows(events: Iterable[tuple[datetime, dict[str, Any]]], since: datetime | None) -> int:
    """Rows the `transcripts` Asset events after `since` announced (their `rows` extra); a
    day published again counts once, at its newest event."""
    newest: dict[str, tuple[datetime, int]] = {}
    for when, extra in events:
        if since is not None and when <= since:
            continue
        day = str(extra.get("day", when.isoformat()))
        if day not in newest or when > newest[day][0]:
            newest[day] = (when, int(extra.get("rows") or 0))
    return sum(rows for _, rows in newest.values())


def approval_body(
    registered: Registered,
    evaluation: Evaluation,
    metric: str,
    reasons: list[str],
    link: str | None,
    top: int = 10,
) -> str:
    """Markdown for the approval form: the policy's verdict, the headline metrics of the new
    version and the champion on the same test split, the largest per-class changes, and a link
    to the registry page. Metrics and labels only: no text from the data."""
    new, old = evaluation["challenger"], evaluation["champion"] or {}
    who = f"v{evaluation['champion_version']}" if evaluation["champion_version"] else "none"
    lines = [
        f"**{registered['model']} v{registered['version']}** against champion **{who}** "
        "on the same test split.",
        "",
        "| metric | new | champion | change |",
        "|---|---|---|---|",
    ]
    for name in dict.fromkeys([metric, "accuracy", "macro_f1", "micro_f1", "mrr", "oos_recall"]):
        if isinstance(new.get(name), int | float):
            before = old.get(name)
            change = f"{new[name] - before:+.3f}" if isinstance(before, int | float) else ""
            shown = f"{before:.3f}" if isinstance(before, int | float) else "-"
            lines.append(f"| {name} | {new[name]:.3f} | {shown} | {change} |")
    deltas = _class_deltas(new, old)
    if deltas:
        lines += ["", f"Largest per-class changes (of {len(deltas)}):", ""]
        lines += ["| class | new | champion | change | support |", "|---|---|---|---|---|"]
        for label, after, before, support in deltas[:top]:
            lines.append(
                f"| {label} | {after:.3f} | {before:.3f} | {after - before:+.3f} | {support} |"
            )
    lines += ["", "Policy checks:", ""] + [f"- {why}" for why in reasons]
    if link:
        lines += ["", f"[Registry page]({link})"]
    lines += ["", "Reject keeps the champion; give a reason (it is audited with your name)."]
    return "\n".join(lines)


def _class_deltas(new: dict, old: dict) -> list[tuple[str, float, float, int]]:
    """(label, new F1-like score, champion's, support), largest change first."""
    per_new, per_old = new.get("per_class") or {}, old.get("per_class") or {}
    out = []
    for label, before in per_old.items():
        score = next((k for k in ("f1", "mrr") if k in before), None)
        if score is None:
            continue
        after = float((per_new.get(label) or {}).get(score, 0.0))
        out.append((label, after, float(before[score]), int(before.get("support", 0))))
    return sorted(out, key=lambda d: -abs(d[1] - d[2]))


def repeat_pending_alarm(every: float = 1.0) -> None:
    """If a SIGALRM timer is armed (a task's execution_timeout), have it fire again every
    `every` seconds after it first fires, until whoever armed it disarms it.

    The timeout's handler raises in the main thread; when the alarm lands while a weakref
    callback or finalizer runs (frequent during training), Python reports that exception as
    unraisable and drops it, and a single alarm would let the training run on past its limit."""
    import signal

    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if remaining > 0:
        signal.setitimer(signal.ITIMER_REAL, remaining, every)

"""Alerts: what a person reads when a day fails its gate or never arrives, a task fails, a
retrain does not promote its model, or a run misses its deadline.

No Airflow here: `plugins/intentflow_alerts.py` wraps this in Airflow notifiers that send it
through the providers' HTTP, Slack and SMTP notifiers; this module builds the message (webhook
JSON, Slack blocks, e-mail HTML).

An alert leaves the platform for chat rooms and mailboxes, so it carries rules, counts and a
link to the report, never a record's content nor even its id (the report lists those).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ml.ingest.redact import redact
from ml.ingest.results import FailedExpectation

# What an alert says of each failed expectation: no ids, no values.
ALERT_FIELDS = ("expectation", "column", "rule", "unexpected_count")


@dataclass(frozen=True)
class Alert:
    dag_id: str
    run_id: str
    task_id: str
    logical_date: str | None
    error: str
    failed: list[dict[str, Any]] = field(default_factory=list)  # ALERT_FIELDS of each
    report: str | None = None  # the validation report (a path or URL)
    log_url: str | None = None
    # failure, data_quality, missing_data, not_promoted, deadline_missed, drift
    kind: str = "failure"
    headline: str | None = None  # what happened, where the kind's default does not say it

    @property
    def title(self) -> str:
        what = self.headline or (
            f"{self.task_id} failed its data-quality gate"
            if self.failed
            else f"{self.task_id} failed"
        )
        return f"[intentflow] {self.dag_id} {self.run_id}: {what}"

    def report_link(self) -> str | None:
        if not self.report:
            return None
        if "://" in self.report:
            return self.report
        return "file://" + quote(str(Path(self.report).absolute()), safe="/=:")

    def text(self) -> str:
        lines = [self.title, ""]
        for f in self.failed:
            col = f"({f['column']})" if f.get("column") else ""
            lines.append(f"- {f['expectation']}{col}: {f.get('unexpected_count')} unexpected")
            if f.get("rule"):
                lines.append(f"    rule: {f['rule']}")
        if not self.failed:
            lines.append(self.error[:1000])
        if self.report_link():
            lines += ["", f"Report: {self.report_link()}"]
        if self.log_url:
            lines.append(f"Log: {self.log_url}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "report_url": self.report_link()}

    def html(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(f['expectation'])}</td><td>{escape(str(f.get('column') or ''))}</td>"
            f"<td>{escape(str(f.get('unexpected_count')))}</td>"
            f"<td>{escape(str(f.get('rule') or ''))}</td></tr>"
            for f in self.failed
        )
        link = self.report_link()
        return (
            f"<h2>{escape(self.title)}</h2>"
            + (
                "<table><tr><th>expectation</th><th>column</th><th>unexpected</th>"
                f"<th>rule</th></tr>{rows}</table>"
                if rows
                else f"<pre>{escape(self.error[:2000])}</pre>"
            )
            + (f"<p><a href='{escape(link)}'>Validation report</a></p>" if link else "")
        )

    def slack_blocks(self) -> list[dict[str, Any]]:
        return [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{self.text()[:2900]}```"}},
        ]


def alert_from_failure(
    dag_id: str,
    run_id: str,
    task_id: str,
    exception: BaseException | str | None,
    logical_date: str | None = None,
    log_url: str | None = None,
) -> Alert:
    """Build the alert from a task's failure; a DataQualityError carries its expectations,
    also when the task re-raised it as the cause of a no-retry failure."""
    cause = getattr(exception, "__cause__", None)
    detail = exception if hasattr(exception, "failed") else cause
    failed: list[FailedExpectation] = list(getattr(detail, "failed", None) or [])
    report = getattr(detail, "report", None) or None
    missing = next((e for e in (exception, cause) if type(e).__name__ == "MissingDataError"), None)
    kind = "missing_data" if missing else ("data_quality" if failed else "failure")
    return Alert(
        kind=kind,
        headline=f"missing data for {missing.day}" if missing else None,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        logical_date=logical_date,
        error=_error_text(exception),
        failed=[{k: f.get(k) for k in ALERT_FIELDS} for f in failed],
        report=report,
        log_url=log_url,
    )


def _error_text(exception: BaseException | str | None) -> str:
    """The failure in words. A failed gate's message holds rules and counts only; any other
    error names no customer text either (ml raises none with it), redacted as a backstop."""
    if exception is None:
        return "unknown error"
    if isinstance(exception, str):
        return redact(exception)
    return f"{type(exception).__name__}: {redact(str(exception))}"


def not_promoted_alert(
    dag_id: str, run_id: str, model: str, version: int, reasons: list[str], link: str | None
) -> Alert:
    """A retrain registered `model` v`version` but did not make it the champion: why."""
    return Alert(
        dag_id=dag_id,
        run_id=run_id,
        task_id="promote",
        logical_date=None,
        error="\n".join(f"- {why}" for why in reasons),
        report=link,
        kind="not_promoted",
        headline=f"{model} v{version} not promoted",
    )


def deadline_alert(dag_id: str, run_id: str, deadline: str) -> Alert:
    """A run still not finished at its Deadline Alert's time."""
    return Alert(
        dag_id=dag_id,
        run_id=run_id,
        task_id="",
        logical_date=None,
        error=f"the run had not finished by its deadline, {deadline}",
        kind="deadline_missed",
        headline=f"missed its deadline ({deadline})",
    )


def drift_alert(
    dag_id: str, run_id: str, model: str, days: list[dict[str, Any]], link: str | None
) -> Alert:
    """Monitoring found `model`'s traffic drifted on some `days` (ml.monitoring.run summaries):
    per day, the predictions counted and the names of the checks past their thresholds; the
    report of the first such day. Never a message, a label share or a word."""
    drifted = [d for d in days if d.get("drifted")]
    lines = [
        f"- {d['day']}: {d['predictions']} predictions; past threshold: " + ", ".join(d["drifted"])
        for d in drifted
    ]
    return Alert(
        dag_id=dag_id,
        run_id=run_id,
        task_id="monitor",
        logical_date=None,
        error="\n".join(lines + ([f"Model page: {link}"] if link else [])),
        report=next((d.get("report_url") for d in drifted if d.get("report_url")), None),
        kind="drift",
        headline=f"{model} drifted on {len(drifted)} day(s): "
        + ", ".join(sorted({c for d in drifted for c in d["drifted"]})),
    )


def check_webhook_url(url: str) -> str:
    """`url`, refused unless http(s): a webhook connection must not name a file: or ftp: URL."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("an alert webhook URL must be http:// or https://")
    return url

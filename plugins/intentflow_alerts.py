"""Intentflow's Airflow notifiers: failed tasks (a failed data-quality gate, missing data, a
timed-out training...), retrains that did not promote their model, and missed deadlines.

Each builds its message with `ml/ingest/alerts.py` (rules, counts, reasons and links; never a
record's content) and sends it through the providers' notifiers to every channel whose Airflow
connection exists (a missing one is skipped, logged), so one DAG works with any subset:

- webhook: `HttpNotifier` (HTTP provider) on an `http` connection (default id
  `intentflow_webhook`) whose host is the full URL, e.g.
  AIRFLOW_CONN_INTENTFLOW_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example/dq"}'
- Slack: `SlackWebhookNotifier` (Slack provider) on a `slackwebhook` connection (default id
  `intentflow_slack`).
- e-mail: `SmtpNotifier` (SMTP provider) on an `smtp` connection (default id
  `intentflow_smtp`); recipients from `email_to` or INTENTFLOW_ALERT_EMAIL_TO (comma-separated).

`FailureNotifier` is every task's on_failure_callback, `NotPromotedNotifier` the retrain
`promote` task's on_success_callback, `DriftNotifier` the monitoring `monitor` task's, `DeadlineNotifier` the retrain DAGs' Deadline Alert
callback (it runs in the triggerer: `async_notify`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger(__name__)


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends: channel off
        return None


class IntentflowNotifier(BaseNotifier):
    """Sends what `alert(context)` builds to every configured channel; None: nothing to say."""

    template_fields = ("email_to",)

    def __init__(
        self,
        webhook_conn_id: str = "intentflow_webhook",
        slack_conn_id: str = "intentflow_slack",
        smtp_conn_id: str = "intentflow_smtp",
        email_to: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(context=context)
        self.webhook_conn_id = webhook_conn_id
        self.slack_conn_id = slack_conn_id
        self.smtp_conn_id = smtp_conn_id
        self.email_to = email_to

    def alert(self, context: dict[str, Any]) -> Any | None:
        raise NotImplementedError

    def notify(self, context: dict[str, Any]) -> None:
        alert = self.alert(context)
        if alert is None:
            return
        sent = []
        for name, channel in (
            ("webhook", self._webhook),
            ("slack", self._slack),
            ("email", self._email),
        ):
            try:
                notifier = channel(alert)
                if notifier is not None:
                    # notify(), not __call__: the message is final text, never a template.
                    notifier.notify(context)
                    sent.append(name)
            except Exception:  # noqa: BLE001 - one broken channel must not silence the others
                log.exception("%s alert via %s failed", alert.kind, name)
        log.info("%s alert for %s sent via %s", alert.kind, alert.run_id, sent or "no channel")

    async def async_notify(self, context: dict[str, Any]) -> None:
        # In the triggerer (Deadline Alerts): the same sends, off its event loop.
        await asyncio.to_thread(self.notify, context)

    def _webhook(self, alert: Any) -> Any | None:
        conn = _connection(self.webhook_conn_id)
        if conn is None:
            return None
        from airflow.providers.http.notifications.http import HttpNotifier

        from ml.ingest.alerts import check_webhook_url

        check_webhook_url(conn.host if "://" in (conn.host or "") else f"{conn.conn_type}://")
        return HttpNotifier(http_conn_id=self.webhook_conn_id, json=alert.payload())

    def _slack(self, alert: Any) -> Any | None:
        if _connection(self.slack_conn_id) is None:
            return None
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(
            slack_webhook_conn_id=self.slack_conn_id,
            text=alert.text(),
            blocks=alert.slack_blocks(),
        )

    def _email(self, alert: Any) -> Any | None:
        from ml.config import alert_email_to

        to = self.email_to or alert_email_to()
        if not to or _connection(self.smtp_conn_id) is None:
            return None
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=[t.strip() for t in to.split(",") if t.strip()],
            subject=alert.title,
            html_content=alert.html(),
            smtp_conn_id=self.smtp_conn_id,
        )


def _run_of(context: dict[str, Any]) -> tuple[str, str, str]:
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or ""
    run_id = getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "") or ""
    return dag_id, run_id, getattr(ti, "task_id", "") or ""


class FailureNotifier(IntentflowNotifier):
    """on_failure_callback of every task: which run and task, and why. A failed gate lists its
    rules, counts and report; a drop that never came says "missing data"."""

    def alert(self, context: dict[str, Any]) -> Any:
        from ml.ingest.alerts import alert_from_failure

        dag_id, run_id, task_id = _run_of(context)
        logical = context.get("logical_date")
        ti = context.get("ti") or context.get("task_instance")
        return alert_from_failure(
            dag_id=dag_id or str(context.get("dag", "")),
            run_id=run_id,
            task_id=task_id,
            exception=context.get("exception"),
            logical_date=logical.isoformat() if hasattr(logical, "isoformat") else None,
            log_url=getattr(ti, "log_url", None),
        )


class NotPromotedNotifier(IntentflowNotifier):
    """on_success_callback of a retrain's `promote`: tells when the new version did not become
    the champion, with the policy's (or the approver's) reasons. A promotion says nothing."""

    def alert(self, context: dict[str, Any]) -> Any | None:
        from ml.ingest.alerts import not_promoted_alert

        dag_id, run_id, task_id = _run_of(context)
        ti = context.get("ti") or context.get("task_instance")
        result = ti.xcom_pull(task_ids=task_id) if ti is not None else None
        if not result or result.get("alias") == "champion":
            return None
        return not_promoted_alert(
            dag_id,
            run_id,
            result["model"],
            result["version"],
            result.get("reasons") or [],
            registry_link(result["model"], result["version"]),
        )


class DriftNotifier(IntentflowNotifier):
    """on_success_callback of the monitoring DAG's `monitor` (one mapped task per model): tells
    when a day's checks crossed their thresholds, with counts and check names only; a quiet
    day says nothing."""

    def alert(self, context: dict[str, Any]) -> Any | None:
        from ml.ingest.alerts import drift_alert

        dag_id, run_id, task_id = _run_of(context)
        ti = context.get("ti") or context.get("task_instance")
        if ti is None:
            return None
        index = getattr(ti, "map_index", -1)
        result = ti.xcom_pull(task_ids=task_id, map_indexes=index if index >= 0 else None)
        if not result or not any(d.get("drifted") for d in result.get("days", [])):
            return None
        return drift_alert(
            dag_id, run_id, result["model"], result["days"], registry_link(result["model"])
        )


class DeadlineNotifier(IntentflowNotifier):
    """A retrain DAG's Deadline Alert: the run had not finished in time (Airflow hands the
    callback a small context: the run as the REST API shows it, and the deadline)."""

    def alert(self, context: dict[str, Any]) -> Any:
        from ml.ingest.alerts import deadline_alert

        run = context.get("dag_run") or {}
        deadline = (context.get("deadline") or {}).get("deadline_time")
        return deadline_alert(
            str(run.get("dag_id", "")), str(run.get("dag_run_id", "")), str(deadline)
        )


def registry_link(model: str, version: int | None = None) -> str | None:
    """The registry page of `model` (at `version`) in the Airflow UI ([api] base_url), if the
    base is known."""
    from urllib.parse import urlencode

    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - no configuration: no link
        return None
    query = {"model": model, **({"version": version} if version else {})}
    return f"{base.rstrip('/')}/intentflow/?{urlencode(query)}" if base else None

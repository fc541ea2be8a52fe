"""An Airflow notifier for failed ingests: webhook (JSON POST), Slack and e-mail.

Each channel is set up with an Airflow connection; a channel whose connection does not exist
is skipped (logged), so one DAG works with any subset:

- webhook: an `http` connection (default id `intentflow_webhook`) whose host is the full URL,
  e.g. AIRFLOW_CONN_INTENTFLOW_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example/dq"}'
- Slack: a `slackwebhook` connection (default id `intentflow_slack`), Slack provider.
- e-mail: an `smtp` connection (default id `intentflow_smtp`), SMTP provider; recipients
  from `email_to` or INTENTFLOW_ALERT_EMAIL_TO (comma-separated).

The message names the DAG run and task, the failed expectations with their rules and counts
(never a record's content), and links the validation report (`ml/ingest/alerts.py` builds it).
"""

from __future__ import annotations

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


def _http_url(conn: Any) -> str:
    host = conn.host or ""
    if "://" in host:
        return host
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema}" if conn.schema else ""
    return (
        f"{conn.conn_type if conn.conn_type in ('http', 'https') else 'http'}://{host}{port}{path}"
    )


class DataQualityNotifier(BaseNotifier):
    """on_failure_callback: tell a person which run, which rules, how many rows, where to look."""

    template_fields = ("email_to",)

    def __init__(
        self,
        webhook_conn_id: str = "intentflow_webhook",
        slack_conn_id: str = "intentflow_slack",
        smtp_conn_id: str = "intentflow_smtp",
        email_to: str | None = None,
    ) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id
        self.slack_conn_id = slack_conn_id
        self.smtp_conn_id = smtp_conn_id
        self.email_to = email_to

    def notify(self, context: dict[str, Any]) -> None:
        from ml.ingest.alerts import alert_from_failure

        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        logical = context.get("logical_date")
        alert = alert_from_failure(
            dag_id=getattr(ti, "dag_id", None) or str(context.get("dag", "")),
            run_id=getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "") or "",
            task_id=getattr(ti, "task_id", "") or "",
            exception=context.get("exception"),
            logical_date=logical.isoformat() if hasattr(logical, "isoformat") else None,
            log_url=getattr(ti, "log_url", None),
        )
        sent = []
        for name, send in (
            ("webhook", self._webhook),
            ("slack", self._slack),
            ("email", self._email),
        ):
            try:
                if send(alert):
                    sent.append(name)
            except Exception:  # noqa: BLE001 - one broken channel must not silence the others
                log.exception("data-quality alert via %s failed", name)
        log.info("data-quality alert for %s sent via %s", alert.run_id, sent or "no channel")

    def _webhook(self, alert: Any) -> bool:
        from ml.ingest.alerts import post_json

        conn = _connection(self.webhook_conn_id)
        if conn is None:
            return False
        post_json(_http_url(conn), alert.payload())
        return True

    def _slack(self, alert: Any) -> bool:
        if _connection(self.slack_conn_id) is None:
            return False
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        hook = SlackWebhookHook(slack_webhook_conn_id=self.slack_conn_id)
        hook.send(text=alert.text(), blocks=alert.slack_blocks())
        return True

    def _email(self, alert: Any) -> bool:
        from ml.config import alert_email_to

        to = self.email_to or alert_email_to()
        if not to or _connection(self.smtp_conn_id) is None:
            return False
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=self.smtp_conn_id) as hook:
            hook.send_email_smtp(
                to=[t.strip() for t in to.split(",") if t.strip()],
                subject=alert.title,
                html_content=alert.html(),
            )
        return True

"""Data-quality alerts reach a person: a real HTTP receiver (webhook and Slack) and SMTP server."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from alert_receiver import Receiver, connections

from ml.ingest.alerts import alert_from_failure
from ml.ingest.validation import DataQualityError

REPO = Path(__file__).resolve().parents[2]
FAILED = [
    {
        "expectation": "expect_column_values_to_be_unique",
        "column": "conversation_id",
        "rule": "ids unique",
        "unexpected_count": 2,
        "ids": ["c7", "c7"],
    }
]
# What an alert says of FAILED: rules and counts, no ids.
SENT = [{k: v for k, v in FAILED[0].items() if k != "ids"}]


def test_alert_names_run_rules_counts_and_report() -> None:
    exc = DataQualityError("day failed", FAILED, "/lake/reports/dt=2026-11-22/validation.html")
    alert = alert_from_failure("transcripts_ingest", "manual__1", "validate", exc)
    text = alert.text()
    for needle in (
        "transcripts_ingest",
        "manual__1",
        "validate",
        "conversation_id",
        "2 unexpected",
    ):
        assert needle in text
    assert "c7" not in text and "file:///lake/reports/dt=2026-11-22/validation.html" in text
    assert alert.payload()["failed"] == SENT
    assert "<table>" in alert.html()


def test_notifier_sends_webhook_slack_and_email(
    receiver: tuple[Receiver, str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    from intentflow_alerts import FailureNotifier

    exc = DataQualityError("day failed", FAILED, "/reports/validation.html")
    ti = SimpleNamespace(dag_id="transcripts_ingest", task_id="validate", run_id="r1", log_url=None)
    context = {
        "ti": ti,
        "dag_run": SimpleNamespace(run_id="r1"),
        "exception": exc,
        "logical_date": datetime(2026, 11, 22, tzinfo=UTC),
    }
    FailureNotifier().notify(context)
    paths = {p: body for p, body in got.posts}
    assert paths["/dq"]["run_id"] == "r1" and paths["/dq"]["failed"] == SENT
    assert paths["/dq"]["report_url"] == "file:///reports/validation.html"
    assert "conversation_id" in paths["/slack/T0/B0/XYZ"]["text"]
    [(to, mail)] = got.mails
    assert to == ["data-owner@example.com"] and "transcripts_ingest r1" in mail["Subject"]


# A day whose gate fails on values that are customer content: PII the redactor missed (a
# systemic fault) and markup typed into a field.
PII_EMAIL = "ann.lee@secret-mail.example"
MARKUP = "<img src=x onerror=alert(1)>"


def pii_failure(tmp_path: Path) -> DataQualityError:
    """The gate's real failure (run_suite) on such a day, raised as ml.ingest.steps does."""
    import pyarrow as pa

    from ml.ingest.validation import run_suite
    from ml.taxonomy import known_intents
    from ml.transcript import TRANSCRIPT_SCHEMA, content_hash

    def row(cid: str, **over: object) -> dict:
        r = {
            "conversation_id": cid,
            "source": "t",
            "started_at": datetime(2026, 11, 22, 10, tzinfo=UTC),
            "channel": "chat",
            "language": "en",
            "turns": [{"speaker": "customer", "text": "refund please"}],
            "intent": "refund_request",
            "text": "refund please",
            **over,
        }
        return {**r, "content_hash": content_hash(r)}

    rows = [row(f"c{i}") for i in range(5)] + [
        row("c-pii", text=f"mail me at {PII_EMAIL}"),
        row("c-markup", channel=MARKUP),
    ]
    table = pa.Table.from_pylist(rows, schema=TRANSCRIPT_SCHEMA)
    out = run_suite(table, date(2026, 11, 22), known_intents(), tmp_path / "report")
    assert not out.success
    return DataQualityError("transcripts 2026-11-22 failed", out.failed, out.report_path)


def test_alerts_carry_rules_counts_and_a_link_never_row_content(
    receiver: tuple[Receiver, str, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Webhook, Slack and e-mail: the failed rules, their counts and the report link; neither
    the missed e-mail address nor the typed markup, nor the rows' ids."""
    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    from intentflow_alerts import FailureNotifier

    exc = pii_failure(tmp_path)
    ti = SimpleNamespace(dag_id="transcripts_ingest", task_id="validate", run_id="r1", log_url=None)
    FailureNotifier().notify(
        {"ti": ti, "dag_run": SimpleNamespace(run_id="r1"), "exception": exc, "logical_date": None}
    )
    [(_, mail)] = got.mails
    mail_text = mail["Subject"] + "".join(
        part.get_payload(decode=True).decode() for part in mail.walk() if not part.is_multipart()
    )
    sent = [json.dumps(body) for _, body in got.posts] + [mail_text]
    assert len(sent) == 3  # webhook, Slack, e-mail
    for body in sent:
        assert PII_EMAIL not in body and "secret-mail" not in body
        assert "onerror" not in body and "<img" not in body
        assert "c-pii" not in body and "c-markup" not in body
        assert "expect_column_values_to_be_in_set" in body and "validation.html" in body
    webhook = next(b for p, b in got.posts if p == "/dq")
    assert len(webhook["failed"]) == 2  # the channel, and the address however it is caught
    assert {"column": "channel", "unexpected_count": 1} in [
        {k: f[k] for k in ("column", "unexpected_count")} for f in webhook["failed"]
    ]


@pytest.mark.slow
def test_failed_ingest_run_alerts_end_to_end(
    airflow_db: Path,
    intentflow_home: Path,
    tmp_path: Path,
    receiver: tuple[Receiver, str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real DAG run whose day fails the gate: the task fails, no publish, alerts arrive."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    got, base, smtp_port = receiver
    connections(monkeypatch, base, smtp_port)
    if str(REPO / "plugins") not in sys.path:
        monkeypatch.syspath_prepend(str(REPO / "plugins"))
    day = date(2026, 11, 22)
    drop = intentflow_home / "raw" / day.isoformat()
    drop.mkdir(parents=True)
    good = {
        "started_at": "2026-11-22T10:00:00Z",
        "turns": [{"speaker": "customer", "text": "refund please"}],
        "intent": "refund_request",
    }
    lines = [json.dumps({**good, "conversation_id": f"c{i}"}) for i in range(5)]
    (drop / "a.jsonl").write_text("\n".join(lines + ["{broken"] * 4) + "\n")  # 44% quarantined
    dag = DagBag(dag_folder=str(REPO / "dags" / "transcripts_ingest.py")).dags["transcripts_ingest"]
    run = dag.test(logical_date=datetime(2026, 11, 22, tzinfo=UTC))
    assert run.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["validate"] == "failed" and states["publish"] != "success"
    paths = {p: body for p, body in got.posts}
    assert paths["/dq"]["task_id"] == "validate" and paths["/dq"]["run_id"] == run.run_id
    assert paths["/dq"]["failed"][0]["expectation"] == "quarantine_share_at_most"
    assert Path(paths["/dq"]["report"]).exists()
    assert "/slack/T0/B0/XYZ" in paths and len(got.mails) == 1
    # The failed day left its (redacted) quarantine, and no staged day.
    from ml import lake
    from ml.config import settings

    assert lake.read_quarantine(settings().quarantine, date.fromisoformat(str(day))).num_rows
    assert not list(settings().staging.iterdir())


def test_a_webhook_url_must_be_http(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook connection naming a file: or ftp: URL is refused: nothing is read or sent."""
    from ml.ingest.alerts import check_webhook_url

    target = tmp_path / "secret.txt"
    target.write_text("x")
    for url in (f"file://{target}", "ftp://example.invalid/x"):
        with pytest.raises(ValueError, match="http"):
            check_webhook_url(url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_WEBHOOK",
        json.dumps({"conn_type": "http", "host": f"file://{target}"}),
    )
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    from intentflow_alerts import FailureNotifier

    with pytest.raises(ValueError, match="http"):
        FailureNotifier()._webhook(alert_from_failure("d", "r", "t", "boom"))

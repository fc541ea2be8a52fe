"""What ingest keeps beside the lake holds no PII the redactor finds, and not for long: the
quarantine (redacted, keyed for erasure, private, purged), staged days (removed after a failed
gate or when stale), and the reports of a failed day (no record value, no markup)."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import lake
from ml.config import settings
from ml.ingest.sources import SourceSpec
from ml.ingest.steps import discover, ingest_day, normalise, staging_dir_for, validate
from ml.ingest.validation import DataQualityError
from ml.subjects import pii_key, subject_key

DAY = date(2026, 11, 22)
MARKUP = "<img src=x onerror=alert(1)>"


def rec(cid: str, **over: object) -> dict:
    return {
        "conversation_id": cid,
        "started_at": "2026-11-22T10:00:00Z",
        "channel": "chat",
        "language": "en",
        "intent": "refund_request",
        "turns": [{"speaker": "customer", "text": "I want a refund"}],
        **over,
    }


def drop(root: Path, lines: list[str], day: date = DAY) -> Path:
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Records quarantined with PII in them, and the identifiers each holds.
PII_LINES = {
    # Malformed: only the raw text is there to redact.
    '{"conversation_id": "m1", "text": "ann.lee@secret-mail.example +44 20 7946 0958"': [
        ("email", "ann.lee@secret-mail.example"),
        ("phone", "+44 20 7946 0958"),
    ],
    # An e-mail given as the intent: in the raw record and in the reason.
    json.dumps(rec("u1", intent="bob@secret-mail.example")): [
        ("email", "bob@secret-mail.example"),
    ],
    # JSON escapes hide PII from a redactor reading the raw text: \u0040 for '@', and '\n'
    # right before a phone number (a letter: no word boundary).
    json.dumps(
        rec(
            "o1",
            started_at="2026-11-23T10:00:00Z",  # outside the day: quarantined
            turns=[
                {"speaker": "customer", "text": "mail carol＠secret-mail.example\n07700 900123"}
            ],
        ),
        ensure_ascii=True,
    ).replace("\\uff20", "\\u0040"): [
        ("email", "carol@secret-mail.example"),
        ("phone", "07700 900123"),
    ],
    # Nested deeper than Python decodes (RecursionError), escapes and all.
    '{"conversation_id": "d1", "x": '
    + "[" * 5000
    + '"mail dave\\u0040secret-mail.example\\n07700 900123"'
    + "]" * 5000
    + "}": [("email", "dave@secret-mail.example"), ("phone", "07700 900123")],
}


def test_quarantine_is_redacted_keyed_for_erasure_and_private(
    intentflow_home: Path, tmp_path: Path
) -> None:
    src = drop(tmp_path / "raw", [json.dumps(rec(f"c{i}")) for i in range(20)] + list(PII_LINES))
    result = ingest_day(DAY, SourceSpec(str(src)))
    assert result["rows_quarantined"] == len(PII_LINES)
    path = Path(result["quarantine_file"])  # the day's folder of the quarantine table
    quarantine = lake.read_quarantine(settings().quarantine, DAY).to_pylist()
    key = pii_key(settings())
    by_record = {q["record"]: q for q in quarantine}
    for number, found in enumerate(PII_LINES.values(), start=21):
        q = by_record[number]
        text = json.dumps(q)
        assert "secret-mail" not in text and "7946" not in text and "900123" not in text, q
        assert "[EMAIL]" in q["raw"] and q["subject_keys"] == sorted(
            {subject_key(kind, value, key) for kind, value in found}
        )
    assert json.loads(by_record[22]["raw"])["intent"] == "[EMAIL]"  # still the record, as JSON
    # Only this user reads it: every file of the table 0600 (data and log), its folders 0700.
    files = [p for p in Path(settings().quarantine).rglob("*") if p.is_file()]
    assert files and all(mode(p) == 0o600 for p in files)
    assert mode(path) == 0o700 and mode(settings().quarantine) == 0o700
    assert mode(Path(settings().quarantine) / "_delta_log") == 0o700


def test_quarantine_days_past_retention_are_purged_by_ingest_and_the_command(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ml.cli.main import app

    today = datetime.now(UTC).date()
    cfg = settings()
    old, recent = today - timedelta(days=31), today - timedelta(days=29)
    for day in (old, recent):
        lake.write_quarantine(_one_record(), cfg.quarantine, day)
    good = [json.dumps(rec(f"c{i}", started_at=f"{today}T10:00:00Z")) for i in range(9)]
    lines = [*good, "{broken"]  # one record in ten quarantined: under the gate's share
    src = drop(tmp_path / "raw", lines, today)
    ingest_day(today, SourceSpec(str(src)))
    assert lake.quarantine_days(cfg.quarantine) == [recent, today]  # the default: 30 days

    monkeypatch.setenv("INTENTFLOW_QUARANTINE_RETENTION_DAYS", "7")
    out = CliRunner().invoke(app, ["quarantine", "purge", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["quarantine_days_deleted"] == [recent.isoformat()]
    assert lake.quarantine_days(cfg.quarantine) == [today]
    # The purged days' files go at the next VACUUM past the lake's retention.
    lake.maintain(cfg.quarantine, retention_hours=0)
    assert not list((cfg.quarantine / f"dt={old}").glob("*.parquet"))
    assert not list((cfg.quarantine / f"dt={recent}").glob("*.parquet"))


def _one_record() -> pa.Table:
    from ml.quarantine import quarantine_table

    record = {"source_file": "a.jsonl", "record": 1, "rule": "r", "reason": "why", "raw": "{}"}
    return quarantine_table([record])


def test_a_failed_gate_keeps_the_quarantine_and_report_and_removes_the_staged_day(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """The DAG's path: normalise, then validate fails (no retry follows). The staged day held
    the raw lines: gone; what a person needs stays: the report and the redacted quarantine."""
    cfg = settings()
    lines = [json.dumps(rec("c1")), "{broken ann.lee@secret-mail.example", "{x"]
    src = drop(tmp_path / "raw", lines)
    scratch = staging_dir_for(cfg, DAY, "manual__1")
    staged = normalise(discover(SourceSpec(str(src)), DAY), DAY, scratch, SourceSpec(str(src)))
    assert scratch.exists() and mode(scratch) == 0o700
    with pytest.raises(DataQualityError) as failed:
        validate(staged, cfg.reports, cfg.lake, cfg.quarantine)
    assert not scratch.exists()
    quarantine = lake.quarantine_path(cfg.quarantine, DAY)
    raws = lake.read_quarantine(cfg.quarantine, DAY).column("raw").to_pylist()
    assert raws == ["{broken [EMAIL]", "{x"]
    assert (cfg.reports / f"dt={DAY}" / "validation.html").exists()
    # What Airflow logs and the alert says: rules, counts and where to look.
    message = str(failed.value)
    assert "quarantine_share_at_most" in message and "=2" in message
    assert str(quarantine) in message and "secret-mail" not in message
    assert lake.list_partitions(cfg.lake) == []


def test_stale_staged_days_are_removed_by_the_next_ingest(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """A run that never reached its gate (a lost worker, retries spent) leaves a staged day:
    the next ingest removes it once older than INTENTFLOW_STAGING_RETENTION_HOURS (24)."""
    cfg = settings()
    stale, fresh = cfg.staging / "2026-11-01__lost", cfg.staging / "2026-11-02__running"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "rows.parquet").write_text("raw lines")
    old = time.time() - 25 * 3600
    for p in (stale / "rows.parquet", stale):
        os.utime(p, (old, old))
    src = drop(tmp_path / "raw", [json.dumps(rec("c1"))])
    ingest_day(DAY, SourceSpec(str(src)))
    assert not stale.exists() and fresh.exists()


def test_stale_staged_days_on_object_storage_are_removed() -> None:
    import fsspec

    from ml.ingest.staged_day import sweep

    fs = fsspec.filesystem("memory")
    for name in ("2026-11-01__lost", "2026-11-02__running"):
        fs.pipe(f"/sweep-staging/{name}/rows.parquet", b"raw lines")
    fs.store["/sweep-staging/2026-11-01__lost/rows.parquet"].modified = datetime.now(
        UTC
    ) - timedelta(hours=25)
    removed = sweep(Path("/nonexistent"), "memory://sweep-staging", 24)
    assert removed == ["memory://sweep-staging/2026-11-01__lost"]
    assert fs.ls("/sweep-staging", detail=False) == ["/sweep-staging/2026-11-02__running"]


def test_markup_typed_as_a_channel_never_reaches_the_reports(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored XSS: a fault lets `channel: <img onerror=...>` past parsing (both paths' rule
    widened here); the gate fails the day, and none of its pages holds the value."""
    from ml.ingest import fast_jsonl, parse

    widened = frozenset({*parse.ALLOWED_CHANNELS, MARKUP.lower()})
    monkeypatch.setattr(parse, "ALLOWED_CHANNELS", widened)
    monkeypatch.setattr(fast_jsonl, "ALLOWED_CHANNELS", widened)
    lines = [json.dumps(rec(f"c{i}")) for i in range(10)]
    src = drop(tmp_path / "raw", [*lines, json.dumps(rec("x1", channel=MARKUP))])
    with pytest.raises(DataQualityError, match=r"expect_column_values_to_be_in_set\(channel\)=1"):
        ingest_day(DAY, SourceSpec(str(src)))
    pages = list((settings().reports / f"dt={DAY}").rglob("*.html"))
    assert len(pages) >= 3  # the summary and the Data Docs pages
    for page in [*pages, settings().reports / f"dt={DAY}" / "validation.json"]:
        body = page.read_text()
        assert "onerror" not in body and "alert(1)" not in body and "src=x" not in body, page


def test_pii_disguised_in_a_quarantined_record_is_redacted(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """A full-width `＠`, a zero-width space or a bidi control inside an e-mail, in a malformed
    line or a JSON escape, hides nothing from the quarantine's redaction."""
    lines = [
        '{"conversation_id": "d1", "text": "mail ann.lee＠secret-mail.example"',  # malformed
        '{"conversation_id": "d2", "text": "mail ann.l\u200bee@secret-mail.example"',
        json.dumps(rec("d3", intent="bob@secret\u202e-mail.example")),  # \\u escapes in JSON
        json.dumps(rec("d4", intent="bob\uff20secret-mail.example")),
    ]
    src = drop(tmp_path / "raw", [json.dumps(rec(f"c{i}")) for i in range(20)] + lines)
    result = ingest_day(DAY, SourceSpec(str(src)))
    assert result["rows_quarantined"] == 4
    for q in pq.read_table(result["quarantine_file"]).to_pylist():
        assert "secret" not in q["raw"] and "secret" not in q["reason"], q["record"]
        assert q["subject_keys"], q["record"]

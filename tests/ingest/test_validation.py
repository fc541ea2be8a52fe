"""The Great Expectations gate: each rule fails on the fault it guards, with a Data Docs report."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ml.ingest.validation import min_volume, run_suite
from ml.taxonomy import known_intents
from ml.transcript import TRANSCRIPT_SCHEMA, content_hash

DAY = date(2026, 11, 22)


def row(i: int, **over: Any) -> dict[str, Any]:
    r = {
        "conversation_id": f"c{i}",
        "source": "t",
        "started_at": datetime(2026, 11, 22, 10, tzinfo=UTC),
        "channel": "chat",
        "language": "en",
        "turns": [
            {"speaker": "customer", "text": "refund please"},
            {"speaker": "agent", "text": "sure"},
        ],
        "intent": "refund_request",
        "text": "refund please",
        "subject_keys": [],
    }
    r.update(over)
    r["content_hash"] = content_hash(r)
    return r


def check(tmp_path: Path, rows: list[dict[str, Any]], **kw: Any):
    table = pa.Table.from_pylist(rows, schema=TRANSCRIPT_SCHEMA)
    return run_suite(table, DAY, known_intents(), tmp_path / "report", **kw)


def failed_rules(outcome) -> dict[str, Any]:
    return {(f["expectation"], f["column"]): f["unexpected_count"] for f in outcome.failed}


def test_clean_day_passes_and_writes_data_docs(tmp_path: Path) -> None:
    out = check(tmp_path, [row(i) for i in range(10)])
    assert out.success and out.failed == [] and out.evaluated >= 11
    docs = Path(out.data_docs)
    assert docs.exists() and docs.suffix == ".html" and "data_docs" in docs.parts
    assert (tmp_path / "report" / "data_docs" / "index.html").exists()
    assert "conversation_id" in docs.read_text() and "unique" in docs.read_text()
    assert docs.as_uri() in Path(out.report_path).read_text()  # the summary links it


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (row(0), ("expect_column_values_to_be_unique", "conversation_id")),
        (
            row(90, started_at=datetime(2026, 11, 23, 0, 0, tzinfo=UTC)),
            ("expect_column_values_to_be_between", "started_at"),
        ),
        (
            row(91, turns=[{"speaker": "bot", "text": "hi"}]),
            ("expect_column_values_to_match_regex", "speakers"),
        ),
        (
            row(92, turns=[{"speaker": "customer", "text": "x" * 10_001}]),
            ("expect_column_values_to_be_between", "longest_turn"),
        ),
        (row(93, language="fr"), ("expect_column_values_to_be_in_set", "language")),
        (row(94, intent="pizza_order"), ("expect_column_values_to_be_in_set", "intent")),
        (row(95, text="mail a@b.com"), ("expect_column_values_to_be_null", "pii_left")),
        (
            row(96, turns=[{"speaker": "agent", "text": "call me on +44 20 7946 0123"}]),
            ("expect_column_values_to_be_null", "pii_left"),
        ),
        # Metadata too, with the redactor's detectors: a card written with dots, an IBAN in
        # lower case, a non-ASCII address.
        (
            row(97, conversation_id="4111.1111.1111.1111"),
            ("expect_column_values_to_be_null", "pii_left"),
        ),
        (
            row(98, source="de89 3704 0044 0532 0130 00"),
            ("expect_column_values_to_be_null", "pii_left"),
        ),
        (row(99, text="jürgen@exämple.de"), ("expect_column_values_to_be_null", "pii_left")),
    ],
)
def test_each_rule_fails_on_its_fault(tmp_path: Path, bad: dict, rule: tuple) -> None:
    out = check(tmp_path, [row(i) for i in range(10)] + [bad])
    assert not out.success
    assert set(failed_rules(out)) == {rule} and failed_rules(out)[rule] >= 1
    [f] = out.failed
    assert f["rule"] and bad["conversation_id"] in f["ids"]  # the row's id, not its value


def test_volume_drop_against_trailing_days_fails(tmp_path: Path) -> None:
    assert min_volume([100, 100]) == 1  # too little history to judge
    assert min_volume([100, 120, 80]) == 50
    out = check(tmp_path, [row(i) for i in range(40)], min_rows=min_volume([100, 120, 80]))
    assert failed_rules(out) == {("expect_table_row_count_to_be_between", None): 40}


def test_allowed_languages_come_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTFLOW_LANGUAGES", "en,fr")
    assert check(tmp_path, [row(0, language="fr")]).success


def test_batches_are_checked_one_by_one_and_counted_together(tmp_path: Path) -> None:
    """A big day is validated in batches (bounded memory); counts add up over them."""
    batches = [
        pa.Table.from_pylist(
            [row(i) for i in range(k * 10, k * 10 + 10)]
            + [row(90 + k, text="mail a@b.com"), row(95 + k, language="fr")],
            schema=TRANSCRIPT_SCHEMA,
        )
        for k in range(3)
    ]
    out = run_suite(
        iter(batches), DAY, known_intents(), tmp_path / "report", min_rows=40, row_count=36
    )
    assert failed_rules(out) == {
        ("expect_column_values_to_be_null", "pii_left"): 3,
        ("expect_column_values_to_be_in_set", "language"): 3,
        ("expect_table_row_count_to_be_between", None): 36,
    }
    language = next(f for f in out.failed if f["column"] == "language")
    assert language["ids"] == ["c95", "c96", "c97"]
    # One Data Docs page per batch and one for the day, all linked from the summary.
    pages = list((tmp_path / "report" / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 4
    summary = Path(out.report_path).read_text()
    assert all(p.as_uri() in summary for p in pages) and "3 batch(es)" in summary


def test_no_temporary_docs_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """GX's default ephemeral context adds a Data Docs site in a temporary folder."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with caplog.at_level("INFO", logger="great_expectations"):
        assert check(tmp_path, [row(i) for i in range(3)]).success
    assert "temporary directory" not in caplog.text
    assert not list((tmp_path / "tmp").iterdir())


def test_gx_usage_analytics_are_off_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation runs beside customer data: GX reports nothing, even when its variable says so."""
    from ml.ingest.validation import _context

    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "true")
    context, _ = _context(tmp_path)
    assert context.variables.analytics_enabled is False


# Values a failed expectation must never copy into a report: PII the redactor missed, an
# address typed as an intent, markup typed as a channel (Data Docs would render it).
LEAKS = {
    "text": "write to ann.lee@secret-mail.example",
    "intent": "bob@secret-mail.example",
    "channel": "<img src=x onerror=alert(1)>",
}


def report_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".html", ".json")]


def test_failed_expectations_report_ids_and_counts_never_values(tmp_path: Path) -> None:
    """validation.json, the summary and every Data Docs page: rule, count, row ids; no value."""
    bad = [row(100 + i, **{field: value}) for i, (field, value) in enumerate(LEAKS.items())]
    out = check(tmp_path, [row(i) for i in range(10)] + bad)
    files = report_files(tmp_path / "report")
    assert len([p for p in files if "data_docs" in p.parts]) >= 2
    for path in files:
        body = path.read_text()
        for value in LEAKS.values():
            assert value not in body, path
        assert "secret-mail" not in body and "onerror" not in body, path
    # Which rows broke which rule: their ids (whichever expectation catches the address).
    assert {cid for f in out.failed for cid in f["ids"]} == {"c100", "c101", "c102"}
    assert {f["column"]: f["ids"] for f in out.failed if f["column"] in ("intent", "channel")} == {
        "intent": ["c101"],
        "channel": ["c102"],
    }
    summary = Path(out.report_path).read_text()
    assert "c100" in summary and "c102" in summary  # which rows, for the data owner


def test_ids_kept_per_expectation_are_bounded(tmp_path: Path) -> None:
    """A day where every row fails a rule keeps its count, and a few ids, not every one."""
    out = check(tmp_path, [row(i, language="fr") for i in range(40)])
    [language] = out.failed
    assert language["unexpected_count"] == 40 and len(language["ids"]) == 5
    import json

    [_, batch] = json.loads((tmp_path / "report" / "validation.json").read_text())
    [failed] = [r["result"] for r in batch["results"] if not r["success"]]
    assert failed["unexpected_count"] == 40 and len(failed["partial_unexpected_index_list"]) == 5
    assert not {"partial_unexpected_list", "partial_unexpected_counts", "unexpected_list"} & set(
        failed
    )

"""The PII gate: one detector set with the redactor; a leaky row is quarantined, not the day."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ml import lake
from ml.config import settings
from ml.ingest import fast_jsonl, parse
from ml.ingest import normalise as step
from ml.ingest.sources import SourceSpec
from ml.ingest.steps import ingest_day
from ml.ingest.validation import DataQualityError

DAY = date(2026, 11, 22)


def rec(cid: str, text: str = "I want a refund", **over: object) -> str:
    return json.dumps(
        {
            "conversation_id": cid,
            "started_at": "2026-11-22T10:00:00Z",
            "channel": "chat",
            "language": "en",
            "intent": "refund_request",
            "turns": [{"speaker": "customer", "text": text}],
            **over,
        }
    )


def drop(root: Path, lines: list[str], day: date = DAY) -> SourceSpec:
    folder = root / "raw" / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    return SourceSpec(str(root / "raw"))


@pytest.mark.parametrize("fast", [True, False])
def test_a_card_like_typo_does_not_fail_the_day(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """Digits that look like a card but fail Luhn (or an IBAN failing mod 97) are no PII to
    the redactor's detectors, hence none to the gate: the day is published with them."""
    monkeypatch.setattr(step, "FAST_PATH", fast)
    typos = ["my card 4111 1111 1111 1112 is blocked", "iban de89 3704 0044 0532 0130 09 ok"]
    source = drop(
        tmp_path, [rec(f"g{i}") for i in range(40)] + [rec("t1", typos[0]), rec("t2", typos[1])]
    )
    result = ingest_day(DAY, source)
    assert (result["rows_written"], result["rows_quarantined"]) == (42, 0)
    texts = set(lake.read_partition(settings().lake, DAY).column("text").to_pylist())
    assert set(typos) <= texts


def _leaky(monkeypatch: pytest.MonkeyPatch) -> None:
    """A redactor bug: texts holding "LEAK" come back unredacted, on both parsing paths."""
    many, array = parse.redact_many, fast_jsonl.redact_array

    def redact_many(texts, known, found=None):  # type: ignore[no-untyped-def]
        return [
            t if "LEAK" in t else r for t, r in zip(texts, many(texts, known, found), strict=True)
        ]

    def redact_array(texts, known=None, found=None):  # type: ignore[no-untyped-def]
        out = array(texts, known, found)
        return pc.if_else(pc.match_substring(texts, "LEAK"), texts, out)

    monkeypatch.setattr(parse, "redact_many", redact_many)
    monkeypatch.setattr(fast_jsonl, "redact_array", redact_array)


@pytest.mark.parametrize("fast", [True, False])
def test_rows_with_pii_left_are_quarantined_and_only_many_fail_the_day(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    monkeypatch.setattr(step, "FAST_PATH", fast)
    _leaky(monkeypatch)
    leak = "LEAK card 4111 1111 1111 1111"
    source = drop(tmp_path, [rec(f"g{i}") for i in range(200)] + [rec("bad", leak)])
    result = ingest_day(DAY, source)
    assert result["quarantine_rules"] == {"pii_after_redaction": 1}
    assert result["rows_written"] == 200
    [row] = pq.read_table(result["quarantine_file"]).to_pylist()
    assert row["rule"] == "pii_after_redaction" and "4111" not in row["reason"]
    assert "4111" not in json.dumps(
        lake.read_partition(settings().lake, DAY).to_pylist(), default=str
    )

    # Past INTENTFLOW_MAX_PII_SHARE the redactor is broken: the day fails, nothing published.
    monkeypatch.setenv("INTENTFLOW_MAX_PII_SHARE", "0.001")
    with pytest.raises(DataQualityError, match=r"pii_after_redaction_share_at_most\(\)=1"):
        ingest_day(DAY, source)


def test_unknown_intents_are_named_only_when_they_are_labels_without_pii(
    intentflow_home: Path, tmp_path: Path
) -> None:
    intents = ["pizza_order", "carol@example.net", "call me on +44 20 7946 0958", "pizza_order"]
    lines = [rec(f"g{i}") for i in range(40)] + [
        rec(f"i{i}", intent=intent) for i, intent in enumerate(intents)
    ]
    result = ingest_day(DAY, drop(tmp_path, lines))
    assert result["new_intents"] == {"[masked]": 2, "pizza_order": 2}
    # The manifest lives in the table's log (ml.delta): none of the log may hold them.
    log_folder = Path(result["partition"]).parent / "_delta_log"
    manifest = "".join(p.read_text() for p in sorted(log_folder.glob("*.json")))
    assert "carol" not in manifest and "7946" not in manifest


def test_a_partition_written_before_subject_keys_reads_with_none(intentflow_home: Path) -> None:
    """Lakes from before the column (and before the Delta tables) migrate: the day reads with
    it empty, its manifest says so, and it feeds snapshots."""
    from datetime import UTC, datetime

    import legacy_lake

    from ml.lake_migrate import migrate
    from ml.snapshots.lake_window import make_snapshot
    from ml.transcript import TRANSCRIPT_SCHEMA

    old_schema = pa.schema([f for f in TRANSCRIPT_SCHEMA if f.name != "subject_keys"])
    rows = [
        {
            "conversation_id": f"c{i}",
            "source": "s",
            "started_at": datetime(2026, 11, 22, 10, tzinfo=UTC),
            "channel": "chat",
            "language": "en",
            "turns": [{"speaker": "customer", "text": "refund"}],
            "intent": "refund_request",
            "text": "refund",
            "content_hash": f"{i:064d}",
        }
        for i in range(30)
    ]
    cfg = settings()
    legacy_lake.write_day(cfg.lake, DAY, pa.Table.from_pylist(rows, schema=old_schema), {})
    assert migrate(cfg)["transcripts"] == [DAY.isoformat()]
    table = lake.read_partition(cfg.lake, DAY)
    assert lake.read_manifest(cfg.lake, DAY)[lake.NO_SUBJECT_KEYS] is True
    assert table.schema.field("subject_keys") == TRANSCRIPT_SCHEMA.field("subject_keys")
    assert table.column("subject_keys").to_pylist() == [[]] * 30
    assert make_snapshot(cfg.lake, cfg.snapshots, DAY, 1)

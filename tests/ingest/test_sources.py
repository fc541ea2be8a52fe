"""Sources chosen by configuration: folders, memory://, CSV, ABCD, the public sets, SQL.

How a run picks one of them by name, and what it may not read, is test_named_sources.py's.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import fsspec
import pytest
from ci import dataset
from sqlalchemy import create_engine, text

from ml import lake
from ml.config import settings
from ml.ingest.sources import SourceSpec, assigned_start, parse_source
from ml.ingest.steps import discover, ingest_day

pytest_plugins = ("pg",)

DAY = date(2026, 11, 22)


def spec(**kw) -> SourceSpec:
    """A source spec as an administrator writes it (checked as a configured entry is)."""
    return parse_source(kw)


def labels_file(tmp_path: Path, labels: set[str]) -> str:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(sorted(labels)) + "\n")
    return str(path)


def set_labels(folder: Path) -> set[str]:
    """The label set of a public set without a label file, read straight from its files."""
    import csv

    if (folder / "train.csv").exists():
        with open(folder / "train.csv", newline="", encoding="utf-8") as fh:
            return {r["intent"] for r in csv.DictReader(fh)}
    if list(folder.glob("*.jsonl")):
        return {
            json.loads(line)["intent"]
            for f in folder.glob("*.jsonl")
            for line in f.read_text().splitlines()
            if line.strip()
        }
    data = json.loads(next(folder.glob("*.json")).read_text())
    return {intent for part in data.values() for _, intent in part}


def test_plain_url_is_daily_jsonl() -> None:
    s = parse_source("/data/feed")
    assert (s.format, s.layout, s.display_name) == ("jsonl", "daily", "feed")
    with pytest.raises(ValueError, match="unknown keys"):
        parse_source('{"url": "x", "colums": {}}')
    with pytest.raises(ValueError, match="format"):
        parse_source('{"url": "x", "format": "xml"}')
    assert parse_source(json.dumps({"url": "/data/feed", "format": "csv"})).format == "csv"


def test_csv_with_column_mapping_on_a_local_folder(intentflow_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "crm" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text(
        "ticket,opened,msg,label\n"
        't1,2026-11-22T08:00:00Z,"I lost my card, mail me at a.b@example.com",lost_card\n'
        "t2,2026-11-22T09:00:00Z,refund please,refund_request\n"
        "t3,2026-11-22T09:30:00Z,,refund_request\n"
        "t4,2026-11-23T09:30:00Z,too late,refund_request\n"
        + "".join(f"x{i},2026-11-22T10:00:00Z,refund {i},refund_request\n" for i in range(8))
    )
    source = spec(
        format="csv",
        url=str(tmp_path / "crm"),
        columns={
            "conversation_id": "ticket",
            "started_at": "opened",
            "text": "msg",
            "intent": "label",
        },
    )
    result = ingest_day(DAY, source)
    assert (result["rows_read"], result["rows_written"]) == (12, 10)
    assert result["quarantine_rules"] == {"empty_text": 1, "outside_interval": 1}
    table = lake.read_partition(settings().lake, DAY).to_pylist()
    assert table[0]["text"] == "I lost my card, mail me at [EMAIL]"
    assert table[0]["source"] == "crm"


def test_memory_filesystem_jsonl_and_csv(intentflow_home: Path) -> None:
    fs = fsspec.filesystem("memory")
    line = {
        "conversation_id": "m1",
        "started_at": "2026-11-22T10:00:00Z",
        "turns": [{"speaker": "customer", "text": "where is my order"}],
        "intent": "order_status",
    }
    fs.pipe("/mem-feed/2026-11-22/a.jsonl", (json.dumps(line) + "\n").encode())
    fs.pipe(
        "/mem-csv/2026-11-22/a.csv",
        b"id,when,text\nc1,2026-11-22T01:00:00+00:00,my parcel is late\n",
    )
    assert ingest_day(DAY, SourceSpec("memory://mem-feed"))["rows_written"] == 1
    source = spec(
        format="csv",
        url="memory://mem-csv",
        columns={"conversation_id": "id", "started_at": "when", "text": "text"},
    )
    assert discover(source, DAY) == ["memory:///mem-csv/2026-11-22/a.csv"]
    assert ingest_day(DAY, source)["rows_written"] == 1


def test_assigned_dates_are_deterministic_and_inside_the_range() -> None:
    s = spec(url="x", dates=["2026-11-01", "2026-11-30"])
    starts = [assigned_start(s, f"id{i}") for i in range(300)]
    assert starts == [assigned_start(s, f"id{i}") for i in range(300)]
    assert {d.date() for d in starts} <= {date(2026, 11, d) for d in range(1, 31)}
    assert len({d.date() for d in starts}) > 20


def test_abcd_conversations_with_their_scenario_pii_redacted(
    intentflow_home: Path, tmp_path: Path
) -> None:
    folder = dataset("abcd-sample")
    data = json.loads((folder / "abcd_sample.json").read_text())
    source = spec(
        format="abcd",
        url=str(folder / "abcd_sample.json"),
        layout="static",
        name="abcd",
        labels=str(folder / "ontology.json"),
        dates=[DAY.isoformat(), DAY.isoformat()],
    )
    result = ingest_day(DAY, source)
    assert (result["rows_read"], result["rows_written"]) == (len(data), len(data))
    rows = {r["conversation_id"]: r for r in lake.read_partition(settings().lake, DAY).to_pylist()}
    assert rows["abcd-3695"]["intent"] == "timing"  # timing_4 → the ontology's name
    for convo in data:
        stored = " ".join(t["text"] for t in rows[f"abcd-{convo['convo_id']}"]["turns"]).lower()
        values = [
            *convo["scenario"]["personal"].values(),
            convo["scenario"]["order"].get("order_id"),
        ]
        for value in values:
            if value and value not in {"bronze", "gold", "silver", "guest"}:
                assert str(value).lower() not in stored, value
    assert "system" in {t["speaker"] for r in rows.values() for t in r["turns"]}


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        (
            "banking77",
            {
                "format": "csv",
                "pattern": "train.csv",
                "columns": {"text": "text", "intent": "category"},
                "labels": "categories.json",
            },
        ),
        (
            "bitext-customer-support",
            {
                "format": "csv",
                "pattern": "train.csv",
                "columns": {"text": "instruction", "intent": "intent", "agent_text": "response"},
            },
        ),
        (
            "dstc11-intents",
            {
                "format": "jsonl",
                "columns": {
                    "conversation_id": "utterance_id",
                    "text": "utterance",
                    "intent": "intent",
                },
            },
        ),
        ("clinc150", {"format": "clinc150", "splits": ["train", "val"]}),
    ],
)
def test_single_message_public_sets_load_as_one_turn_transcripts(
    intentflow_home: Path, tmp_path: Path, name: str, kw: dict
) -> None:
    folder = dataset(name)
    kw = {**kw, "url": str(folder), "layout": "static", "name": name}
    kw["dates"] = ["2026-11-01", "2026-11-30"]
    if "labels" in kw:
        kw["labels"] = str(folder / kw["labels"])
    else:
        kw["labels"] = labels_file(tmp_path, set_labels(folder))
    result = ingest_day(DAY, spec(**kw))
    assert 0 < result["rows_read"] < 2000  # about 1/30 of the set lands on one day
    assert result["rows_quarantined"] <= result["rows_read"] * 0.01
    rows = lake.read_partition(settings().lake, DAY).to_pylist()
    assert all(r["turns"][0]["speaker"] == "customer" and r["text"] for r in rows)
    assert all(r["intent"] for r in rows)
    assert len({r["conversation_id"] for r in rows}) == len(rows)


def test_sql_table_source_reads_the_data_interval(
    intentflow_home: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named SQL source: its table through an Airflow connection whose role may only read."""
    from pg import read_only_role

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE chats (id text primary key, started_at timestamptz, body text, "
                "label text)"
            )
        )
        for i, ts in enumerate(
            [datetime(2026, 11, 21, 23, 59, tzinfo=UTC)]
            + [datetime(2026, 11, 22, h, tzinfo=UTC) for h in range(0, 24, 4)]
            + [datetime(2026, 11, 23, 0, 0, tzinfo=UTC)]
        ):
            conn.execute(
                text("INSERT INTO chats VALUES (:i, :t, :b, 'refund_request')"),
                {"i": f"r{i}", "t": ts, "b": f"refund for order ORD-1234567{i} please"},
            )
    engine.dispose()
    with read_only_role(pg_url, "chats") as (role_url, schema):
        monkeypatch.setenv("AIRFLOW_CONN_CRM_READONLY", role_url)
        columns = {"conversation_id": "id", "started_at": "started_at", "text": "body"}
        crm = {
            "format": "sql",
            "conn_id": "crm_readonly",
            "table": "chats",
            "schema": schema,
            "columns": {**columns, "intent": "label"},
        }
        (tmp_path / "sources.json").write_text(json.dumps({"crm": crm}))
        monkeypatch.setenv("INTENTFLOW_SOURCES_FILE", str(tmp_path / "sources.json"))
        result = ingest_day(DAY, "crm")
    assert (result["rows_read"], result["rows_written"], result["rows_quarantined"]) == (6, 6, 0)
    assert result["source"] == "crm"
    rows = lake.read_partition(settings().lake, DAY).to_pylist()
    assert [r["conversation_id"] for r in rows] == [f"r{i}" for i in range(1, 7)]
    assert rows[0]["text"] == "refund for order [ORDER_ID] please"

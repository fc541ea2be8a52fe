"""`intentflow lake migrate`: a lake in the layout written before the Delta tables (the
transcripts' manifests and, on object storage, version folders; quarantine files; the
prediction log's files) becomes Delta tables in place, with the same rows, manifests and
content hashes; the old files go; a rerun changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import legacy_lake
import pyarrow as pa
import pytest
from s3_server import make_bucket, moto_server, s3_env
from typer.testing import CliRunner

from ml import lake, storage
from ml.cli.main import app
from ml.config import settings
from ml.quarantine import quarantine_table
from ml.serving.prediction_log import SCHEMA as PREDICTIONS
from ml.serving.prediction_log import PredictionTable
from ml.transcript import TRANSCRIPT_SCHEMA, content_hash

D1, D2 = date(2026, 11, 21), date(2026, 11, 22)


def rows(day: date, n: int) -> pa.Table:
    out = []
    for i in range(n):
        row = {
            "conversation_id": f"{day:%d}-{i:04d}",
            "source": "chat-export",
            "started_at": datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
            "channel": "chat",
            "language": "en",
            "turns": [{"speaker": "customer", "text": f"message {i}"}],
            "intent": "lost_card",
            "text": f"message {i}",
            "subject_keys": [],
        }
        out.append({**row, "content_hash": content_hash(row)})
    return pa.Table.from_pylist(out, schema=TRANSCRIPT_SCHEMA)


def predicted(i: int) -> dict:
    return {
        "prediction_id": f"p{i}",
        "ts": datetime(2026, 11, 22, 9, i, tzinfo=UTC),
        "model": "intent",
        "version": 1,
        "task": "intent",
        "runtime": "onnx",
        "text": "hello",
        "label": "lost_card",
        "confidence": 0.9,
        "top_k": [],
        "scores": [],
        "latency_ms": 3.0,
        "subject_keys": [],
    }


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def home(
    request: pytest.FixtureRequest, intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    if request.param == "s3":
        for key, value in s3_env(request.getfixturevalue("s3_endpoint")).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("INTENTFLOW_DATA_URL", f"{make_bucket()}/intentflow")
    return intentflow_home


def test_migrate_converts_every_table_in_place_and_a_rerun_changes_nothing(home: Path) -> None:
    cfg = settings()
    manifests = {}
    for day, n in ((D1, 40), (D2, 25)):
        manifest = {"day": day.isoformat(), "rows_read": n + 1, "rows_written": n,
                    "rows_quarantined": 1, "quarantine_rules": {"malformed_json": 1}}  # fmt: skip
        legacy_lake.write_day(cfg.lake, day, rows(day, n), manifest)
        manifests[day] = json.loads(
            storage.read_bytes(storage.join(cfg.lake, f"dt={day}", "_manifest.json"))
        )
        record = {"source_file": "a.jsonl", "record": n + 1, "rule": "malformed_json",
                  "reason": "not JSON", "raw": "{x"}  # fmt: skip
        legacy_lake.write_quarantine(cfg.quarantine, day, quarantine_table([record]))
    logged = pa.Table.from_pylist([predicted(i) for i in range(3)], schema=PREDICTIONS)
    legacy_lake.write_predictions(
        cfg.predictions, D2, logged.slice(0, 2), "20261122T090000-0123456789ab"
    )
    legacy_lake.write_predictions(
        cfg.predictions, D2, logged.slice(2), "20261122T090500-ba9876543210"
    )

    out = CliRunner().invoke(app, ["lake", "migrate", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {
        "transcripts": [D1.isoformat(), D2.isoformat()],
        "quarantine": [D1.isoformat(), D2.isoformat()],
        "predictions": [D2.isoformat()],
    }
    assert lake.list_partitions(cfg.lake) == [D1, D2]
    for day, n in ((D1, 40), (D2, 25)):
        got = lake.read_partition(cfg.lake, day)
        assert got.equals(rows(day, n).sort_by("conversation_id"))
        manifest = lake.read_manifest(cfg.lake, day)
        old = {k: v for k, v in manifests[day].items() if k not in ("version", "previous_version")}
        assert manifest == old  # content hash included: the rows kept their order
        assert manifest["content_hash"] == lake.table_content_hash(got)
        assert lake.read_quarantine(cfg.quarantine, day).num_rows == 1
        # The old layout is gone: the manifest, the data file, the version folders.
        for name in ("_manifest.json", "part-00000.parquet", "_versions"):
            assert not storage.exists(storage.join(cfg.lake, f"dt={day}", name)), name
        assert not storage.exists(storage.join(cfg.quarantine, f"dt={day}", "quarantine.parquet"))
    predictions = PredictionTable(cfg.predictions)
    assert predictions.days() == [D2.isoformat()]
    assert sorted(predictions.read_day(D2.isoformat()).column("prediction_id").to_pylist()) == [
        "p0",
        "p1",
        "p2",
    ]
    versions = lake.table_version(cfg.lake)
    again = CliRunner().invoke(app, ["lake", "migrate", "--json"], catch_exceptions=False)
    assert json.loads(again.stdout) == {"transcripts": [], "quarantine": [], "predictions": []}
    assert lake.table_version(cfg.lake) == versions

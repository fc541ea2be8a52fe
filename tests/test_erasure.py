"""`intentflow erase`: one person's rows leave the lake, quarantine and snapshots; nothing else
changes; the audit names no identifier; the model versions that saw the data are listed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import legacy_lake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ml import erasure, lake, storage
from ml.cli.main import app
from ml.config import Settings, settings
from ml.lake_migrate import migrate
from ml.quarantine import QUARANTINE_SCHEMA
from ml.registry.store import Registry
from ml.serving.prediction_log import SCHEMA as PREDICTIONS
from ml.serving.prediction_log import PredictionTable
from ml.snapshots.lake_window import make_snapshot
from ml.subjects import pii_key, subject_key
from ml.transcript import TRANSCRIPT_SCHEMA, content_hash

runner = CliRunner()

D1, D2, D3, D4 = (date(2026, 11, d) for d in (20, 21, 22, 19))  # D4: written before the keys
EMAIL, PHONE, CUSTOMER = "Ada.Lovelace@example.com", "+44 20 7946 0958", "CUST-4471"
OTHER_EMAIL = "someone.else@example.org"
# What the person's identifiers look like anywhere they might leak: the values, their parts.
LEAKS = ("lovelace", "7946", "0958", "cust-4471")
PREDATING = TRANSCRIPT_SCHEMA.remove(TRANSCRIPT_SCHEMA.get_field_index("subject_keys"))
QUARANTINE_PREDATING = QUARANTINE_SCHEMA.remove(QUARANTINE_SCHEMA.get_field_index("subject_keys"))


def row(cid: str, keys: list[str], day: date, intent: str = "lost_card") -> dict[str, Any]:
    """A redacted lake row; its `subject_keys` are those of the identifiers removed from it."""
    text = f"customer message of {cid} about {intent}"
    out = {
        "conversation_id": cid,
        "source": "chat-export",
        "started_at": datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
        "channel": "chat",
        "language": "en",
        "turns": [{"speaker": "customer", "text": text}],
        "intent": intent,
        "text": text,
        "subject_keys": sorted(set(keys)),
    }
    return {**out, "content_hash": content_hash(out)}


def quarantined(cid: str | None, record: int, keys: list[str] | None) -> dict[str, Any]:
    out = {
        "source_file": "drop.jsonl",
        "record": record,
        "rule": "bad_timestamp",
        "reason": "started_at is not a date",
        "conversation_id": cid,
        "raw": "{redacted record}",
    }
    return out if keys is None else {**out, "subject_keys": sorted(keys)}


def publish(cfg: Settings, day: date, rows: list[dict], quarantine: pa.Table | None) -> None:
    """A day as ingest leaves it: quarantine, then the partition with ingest's manifest."""
    schema = TRANSCRIPT_SCHEMA if all("subject_keys" in r for r in rows) else PREDATING
    table = pa.Table.from_pylist(rows, schema=schema)
    q = quarantine.num_rows if quarantine is not None else 0
    if quarantine is not None:
        lake.write_quarantine(quarantine, cfg.quarantine, day)
    rules = {"bad_timestamp": q} if q else {}
    manifest = {
        "day": day.isoformat(),
        "rows_read": len(rows) + q,
        "rows_written": len(rows),
        "rows_quarantined": q,
        "quarantine_rules": rules,
        "source": "chat-export",
    }
    lake.write_partition(table, cfg.lake, day, manifest)


@dataclass
class World:
    cfg: Settings
    snapshot: dict[str, Any]


def predicted(prediction_id: str, keys: list[str]) -> dict[str, Any]:
    """A row of `intentflow serve`'s prediction log (its text already redacted)."""
    return {
        "prediction_id": prediction_id,
        "ts": datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        "model": "intent",
        "version": 1,
        "task": "intent",
        "runtime": "onnx",
        "text": "call me on [PHONE]",
        "label": "refund_request",
        "confidence": 0.9,
        "top_k": [],
        "scores": [],
        "latency_ms": 3.0,
        "subject_keys": keys,
    }


def build(cfg: Settings) -> World:
    """Four days (one written before subject keys), quarantine on two, a snapshot of three,
    and three registered versions: on that snapshot, on an untouched day, on an erased day
    whose snapshot is gone."""
    key = pii_key(cfg)
    email, phone = subject_key("email", EMAIL, key), subject_key("phone", PHONE, key)
    customer, other = (
        subject_key("customer_id", CUSTOMER, key),
        subject_key("email", OTHER_EMAIL, key),
    )
    publish(cfg, D1, [row("p-1", [email], D1), row("x-1", [other], D1), row("x-2", [], D1)], None)
    # The service's prediction log: one message of the person's (by phone), one of another's.
    logged = [predicted("pr-1", [phone]), predicted("pr-2", [other]), predicted("pr-3", [])]
    PredictionTable(cfg.predictions).append(pa.Table.from_pylist(logged, schema=PREDICTIONS))
    q2 = pa.Table.from_pylist(
        [
            quarantined("p-2", 1, [phone]),
            quarantined("y-9", 2, [other]),
            quarantined(None, 3, [customer]),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    publish(cfg, D2, [row("p-2", [phone, other], D2, "refund_request"), row("y-1", [], D2)], q2)
    publish(cfg, D3, [row("z-1", [other], D3), row("z-2", [], D3, "refund_request")], None)
    # D4 was written by a lake before the Delta tables and before subject keys, and migrated.
    q4 = pa.Table.from_pylist(
        [quarantined("p-1", 1, None), quarantined("w-1", 2, None)], schema=QUARANTINE_PREDATING
    )
    old = [{k: v for k, v in row(f"w-{i}", [], D4).items() if k != "subject_keys"} for i in (1, 2)]
    legacy_lake.write_quarantine(cfg.quarantine, D4, q4)
    legacy_lake.write_day(
        cfg.lake,
        D4,
        pa.Table.from_pylist(old, schema=PREDATING),
        {
            "day": D4.isoformat(),
            "rows_read": 4,
            "rows_written": 2,
            "rows_quarantined": 2,
            "quarantine_rules": {"bad_timestamp": 2},
            "source": "chat-export",
        },
    )
    migrate(cfg)
    snapshot = make_snapshot(cfg.lake, cfg.snapshots, D3, 3)
    with Registry(cfg.registry_url) as registry:
        for snapshot_hash, partitions in (
            (snapshot["hash"], snapshot["partitions"]),
            ("f" * 64, [{"day": D3.isoformat(), "content_hash": "x"}]),
            ("e" * 64, [{"day": D1.isoformat(), "content_hash": "x"}]),
        ):
            registry.register_version(
                "intent",
                artifact_uri="/artifacts/intent",
                artifact_sha256="0" * 64,
                base_model="minilm",
                data_snapshot_hash=snapshot_hash,
                params={},
                lineage={"partitions": partitions},
                metrics={},
            )
    return World(cfg, snapshot)


@pytest.fixture
def world(intentflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("INTENTFLOW_PII_KEY", "a-test-secret")
    return build(settings())


def files(root: Path) -> dict[str, str]:
    """Every data file under `root` by sha256 (the registry database aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".parquet", ".json")
    }


def ids(table: pa.Table) -> set[str | None]:
    return set(table.column("conversation_id").to_pylist())


def snapshot_ids(snapshot: dict[str, Any]) -> set[str | None]:
    return set().union(*(ids(erasure._split(snapshot["path"], s)) for s in erasure.SNAPSHOT_SPLITS))


def cli(*args: str) -> Any:
    return runner.invoke(app, ["erase", *args], catch_exceptions=False)


def erase_person(*extra: str) -> dict[str, Any]:
    result = cli("--email", EMAIL, "--phone", "+44-20-7946-0958", "--customer-id", CUSTOMER, *extra)
    assert result.exit_code == 0, result.output
    assert not any(leak in result.output.casefold() for leak in LEAKS), result.output
    return json.loads(result.stdout) if "--json" in extra else {"text": result.stdout}


# --- end to end through the CLI --------------------------------------------------------------


def test_erase_removes_the_persons_rows_everywhere_and_nothing_else(world: World) -> None:
    cfg = world.cfg
    untouched = lake.read_manifest(cfg.lake, D3)
    untouched_file = files(Path(cfg.lake) / "dt=2026-11-22")
    assert {"p-1", "p-2"} <= snapshot_ids(world.snapshot)

    result = erase_person("--reason", "ticket PRIV-118", "--json")

    assert result["removed"] == {
        "lake": 2,
        "quarantine": 3,
        "snapshots": 2,
        "predictions": 1,
        "feedback": 0,
    }
    assert result["days"] == {
        "lake": ["2026-11-20", "2026-11-21"],
        "quarantine": ["2026-11-19", "2026-11-21"],
        "predictions": ["2026-11-22"],
    }
    assert result["snapshots"] == [world.snapshot["hash"]]
    # The prediction log: the person's message gone, the others' kept.
    logged = PredictionTable(cfg.predictions).read_day("2026-11-22")
    assert sorted(logged.column("prediction_id").to_pylist()) == [
        "pr-2",
        "pr-3",
    ]
    assert result["models"] == ["intent:1", "intent:3"]  # not intent:2 (trained on D3 only)
    assert result["identifiers"] == {"email": 1, "phone": 1, "customer_id": 1}
    assert any("1 lake partition(s) predate subject keys" in n for n in result["notes"])
    # Delta keeps the replaced files for time travel: the result says until when.
    assert any(n.startswith("lake: the files replaced") for n in result["notes"])
    # The lake: the person's rows gone, the others' kept, each manifest recounted.
    assert ids(lake.read_partition(cfg.lake, D1)) == {"x-1", "x-2"}
    assert ids(lake.read_partition(cfg.lake, D2)) == {"y-1"}
    # D2 read 2 rows and quarantined 3: one row and two quarantined records were the person's.
    for day, erased, quarantined_rows in ((D1, 1, 0), (D2, 3, 1)):
        manifest = lake.read_manifest(cfg.lake, day)
        assert manifest["content_hash"] == lake.table_content_hash(
            lake.read_partition(cfg.lake, day)
        )
        assert (
            manifest["rows_erased"] == erased and manifest["rows_quarantined"] == quarantined_rows
        )
        assert manifest["rows_read"] == manifest["rows_written"] + quarantined_rows + erased
        assert manifest["quarantine_rules"] == ({"bad_timestamp": 1} if quarantined_rows else {})
    # An untouched day is not rewritten at all.
    assert lake.read_manifest(cfg.lake, D3) == untouched
    assert files(Path(cfg.lake) / "dt=2026-11-22") == untouched_file
    # Quarantine: matched by key, and by the conversation id where the file has no keys.
    assert ids(lake.read_quarantine(cfg.quarantine, D2)) == {"y-9"}
    assert ids(lake.read_quarantine(cfg.quarantine, D4)) == {"w-1"}
    # The snapshot: same folder and hash (the model's lineage names it), without the rows.
    left = snapshot_ids(world.snapshot)
    assert not {"p-1", "p-2"} & left and {"x-1", "z-1"} <= left
    record = json.loads(Path(world.snapshot["path"], "snapshot.json").read_text())
    assert record["hash"] == world.snapshot["hash"] and record["erasures"][0]["rows"] == 2
    assert (
        sum(record["counts"][s] for s in erasure.SNAPSHOT_SPLITS)
        == sum(world.snapshot["counts"][s] for s in erasure.SNAPSHOT_SPLITS) - 2
    )
    # The audit: who, why, what where; no identifier, no key.
    with Registry(cfg.registry_url) as registry:
        (audit,) = registry.erasures()
    assert audit["status"] == "done" and audit["reason"] == "ticket PRIV-118"
    assert audit["removed"] == result["removed"] and audit["models"] == ["intent:1", "intent:3"]
    assert audit["days"] == ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
    stored = json.dumps(audit, default=str).casefold()
    key = pii_key(cfg)
    keys = [
        subject_key(k, v, key)
        for k, v in (("email", EMAIL), ("phone", PHONE), ("customer_id", CUSTOMER))
    ]
    assert not any(leak in stored for leak in (*LEAKS, *keys))


def test_dry_run_changes_and_records_nothing(world: World) -> None:
    before = files(Path(world.cfg.home))
    result = erase_person("--dry-run", "--json")
    assert result["dry_run"] and result["erasure_id"] is None
    assert result["removed"] == {
        "lake": 2,
        "quarantine": 3,
        "snapshots": 2,
        "predictions": 1,
        "feedback": 0,
    }
    assert result["models"] == ["intent:1", "intent:3"]
    assert files(Path(world.cfg.home)) == before
    with Registry(world.cfg.registry_url) as registry:
        assert registry.erasures() == []


def test_a_second_erase_changes_nothing_and_is_recorded(world: World) -> None:
    erase_person()
    after_first = files(Path(world.cfg.home))
    again = erase_person("--json")
    assert again["removed"] == {
        "lake": 0,
        "quarantine": 0,
        "snapshots": 0,
        "predictions": 0,
        "feedback": 0,
    }
    assert again["models"] == [] and again["days"] == {}
    assert files(Path(world.cfg.home)) == after_first
    with Registry(world.cfg.registry_url) as registry:
        assert [e["status"] for e in registry.erasures()] == ["done", "done"]


def test_text_output_names_counts_days_snapshots_and_models(world: World) -> None:
    text = erase_person("--reason", "case 7")["text"]
    assert "erasure 1 done" in text
    assert "lake         2 row(s) in 2026-11-20, 2026-11-21" in text
    assert f"snapshots    2 row(s) in {world.snapshot['hash'][:16]}" in text
    assert "models that saw the data: intent:1, intent:3" in text


def test_no_identifier_is_a_clear_error(world: World) -> None:
    result = cli("--reason", "ticket 1")
    assert result.exit_code == 2
    assert "give at least one identifier: --email, --phone or --customer-id" in result.output


def test_a_home_that_never_ingested_is_refused_not_reported_clean(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without INTENTFLOW_PII_KEY or the home's key file, a key generated now matches nothing:
    the erasure must say so instead of reporting that the person holds no rows."""
    monkeypatch.delenv("INTENTFLOW_PII_KEY", raising=False)
    result = cli("--email", EMAIL)
    assert result.exit_code == 2 and "no pseudonymisation key" in result.output
    assert not (intentflow_home / "secrets").exists()


def test_a_reason_holding_an_identifier_is_refused_before_anything_changes(world: World) -> None:
    before = files(Path(world.cfg.home))
    result = cli("--phone", PHONE, "--reason", "erase 020 7946 0958 please")
    assert result.exit_code == 2 and "reason contains the phone" in result.output
    assert "7946" not in result.output
    assert files(Path(world.cfg.home)) == before


def test_identifiers_from_a_file_stay_off_the_command_line(world: World, tmp_path: Path) -> None:
    listed = tmp_path / "person.txt"
    listed.write_text(f"# ticket 9\nemail={EMAIL}\nphone = {PHONE}\ncustomer-id={CUSTOMER}\n")
    result = cli("--identifiers-file", str(listed), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == {
        "lake": 2,
        "quarantine": 3,
        "snapshots": 2,
        "predictions": 1,
        "feedback": 0,
    }


# --- safety ------------------------------------------------------------------------------------


def test_a_crash_midway_leaves_every_day_whole_and_a_rerun_finishes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last day's rewrite fails (D4, then D1 are done): every partition still reads whole
    and agrees with its manifest, the audit says `failed` (with the models listed), and a rerun
    erases the rest."""
    cfg, real, calls = world.cfg, lake.rewrite_partition, []

    def crash_on_second(*args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk gone")
        return real(*args, **kwargs)

    monkeypatch.setattr(lake, "rewrite_partition", crash_on_second)
    with pytest.raises(OSError, match="disk gone"):
        erasure.erase(cfg, {"email": [EMAIL], "phone": [PHONE]}, "tester", "ticket 3")
    for day in (D1, D2, D3, D4):
        manifest = lake.read_manifest(cfg.lake, day)
        assert manifest["content_hash"] == lake.table_content_hash(
            lake.read_partition(cfg.lake, day)
        )
    assert "p-2" in ids(lake.read_partition(cfg.lake, D2))  # not reached
    with Registry(cfg.registry_url) as registry:
        (failed,) = registry.erasures()
    assert failed["status"] == "failed" and failed["models"] == ["intent:1", "intent:3"]

    monkeypatch.setattr(lake, "rewrite_partition", real)
    rerun = erasure.erase(cfg, {"email": [EMAIL], "phone": [PHONE]}, "tester", "ticket 3")
    assert rerun.removed["lake"] == 1  # D2's row; D1's went in the first run
    assert ids(lake.read_partition(cfg.lake, D2)) == {"y-1"}
    assert not {"p-1", "p-2"} & snapshot_ids(world.snapshot)


def parquet_holding(root: Path, key: str) -> list[Path]:
    """Every Parquet file under `root` (committed or not, current or replaced) holding `key`."""
    held = []
    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path)
        if "subject_keys" in table.column_names and any(
            key in keys for keys in table.column("subject_keys").to_pylist()
        ):
            held.append(path)
    return held


def test_erase_then_vacuum_past_the_retention_leaves_no_copy_of_the_person(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure rewrites the days; the replaced files keep the rows for time travel until
    VACUUM past the retention (the maintenance DAG's `intentflow lake maintain`) deletes them."""
    cfg = world.cfg
    key = subject_key("email", EMAIL, pii_key(cfg))
    before = lake.table_version(cfg.lake)
    erase_person()
    assert ids(lake.read_partition(cfg.lake, D1)) == {"x-1", "x-2"}
    # Time travel still reads the day as it was, and the old file is on disk: a week's
    # retention (the default) keeps it at the next maintenance.
    assert "p-1" in ids(lake.read_partition(cfg.lake, D1, as_of=before))
    maintained = runner.invoke(app, ["lake", "maintain", "--json"])
    assert maintained.exit_code == 0, maintained.output
    assert parquet_holding(Path(cfg.lake), key)
    # Past the retention the maintenance deletes every copy, in every table.
    monkeypatch.setenv("INTENTFLOW_LAKE_RETENTION_HOURS", "0")
    maintained = runner.invoke(app, ["lake", "maintain", "--json"])
    assert maintained.exit_code == 0, maintained.output
    assert [r["table"] for r in json.loads(maintained.stdout)] == [
        str(cfg.lake),
        str(cfg.quarantine),
        str(cfg.predictions),
        str(cfg.feedback),
    ]
    for root in (cfg.lake, cfg.quarantine, cfg.predictions):
        for k in (key, subject_key("phone", PHONE, pii_key(cfg))):
            assert parquet_holding(Path(root), k) == [], root
    with pytest.raises(Exception, match=r"(?i)not found|no such file|object"):
        lake.read_partition(cfg.lake, D1, as_of=before)
    assert ids(lake.read_partition(cfg.lake, D1)) == {"x-1", "x-2"}  # the current day reads


def test_a_publish_during_the_rewrite_makes_it_read_the_day_again(tmp_path: Path) -> None:
    """An ingest publishing the same day while the erasure filters it: the erasure's commit
    conflicts, it reads the new day and filters that; neither overwrites the other's rows."""
    import threading

    first = pa.Table.from_pylist([row("a", [], D1), row("b", [], D1)], schema=TRANSCRIPT_SCHEMA)
    newer = pa.Table.from_pylist([row("a", [], D1), row("c", [], D1)], schema=TRANSCRIPT_SCHEMA)
    lake.write_partition(first, tmp_path, D1, {"tag": "first"})
    seen: list[set[str | None]] = []

    def drop_a(rows: pa.Table, manifest: dict) -> tuple[pa.Table, dict]:
        seen.append(ids(rows))
        if len(seen) == 1:  # the publish lands between the erasure's read and its commit
            ingest = threading.Thread(
                target=lake.write_partition, args=(newer, tmp_path, D1, {"tag": "new"})
            )
            ingest.start()
            ingest.join()
        return rows.filter(
            pa.array([c != "a" for c in rows.column("conversation_id").to_pylist()])
        ), manifest

    assert lake.rewrite_partition(tmp_path, D1, drop_a)
    assert seen == [{"a", "b"}, {"a", "c"}]
    assert ids(lake.read_partition(tmp_path, D1)) == {"c"}
    assert lake.read_manifest(tmp_path, D1)["tag"] == "new"


# --- object storage ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from s3_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


def test_erase_on_s3_leaves_no_copy_after_vacuum_or_stale_cached_snapshot(
    s3_endpoint: str, intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3 as locally: a rerun of a day keeps its previous file for time travel, the
    erasure rewrites the current one and VACUUM past the retention deletes both. Nor may this
    machine's cached copy of the snapshot stay, nor another worker's be used again."""
    from s3_server import make_bucket, s3_env

    from ml import delta
    from ml.snapshots.writer import local_snapshot

    for name, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INTENTFLOW_DATA_URL", f"{make_bucket()}/intentflow")
    monkeypatch.setenv("INTENTFLOW_PII_KEY", "a-test-secret")
    world = build(settings())
    cfg = world.cfg
    # A rerun of D1's publish: the previous file (with the person's rows) stays beside it.
    publish(
        cfg,
        D1,
        [row("p-1", [subject_key("email", EMAIL, pii_key(cfg))], D1), row("x-1", [], D1)],
        None,
    )
    assert delta.unvacuumed(cfg.lake)
    cached = local_snapshot(world.snapshot["path"], cfg.cache)
    other_worker = local_snapshot(world.snapshot["path"], intentflow_home / "worker-2")
    assert "p-1" in snapshot_ids({"path": cached}) & snapshot_ids({"path": other_worker})

    person = {"email": [EMAIL], "phone": [PHONE], "customer_id": [CUSTOMER]}
    result = erasure.erase(cfg, person, "tester", "ticket 4")

    assert result.removed["lake"] == 2 and result.snapshots == [world.snapshot["hash"]]
    assert ids(lake.read_partition(cfg.lake, D1)) == {"x-1"}
    assert any(n.startswith("lake: the files replaced") for n in result.notes)
    lake.maintain(cfg.lake, retention_hours=0)
    lake.maintain(cfg.quarantine, retention_hours=0)
    assert delta.unvacuumed(cfg.lake) == [] and delta.unvacuumed(cfg.quarantine) == []
    assert ids(lake.read_quarantine(cfg.quarantine, D2)) == {"y-9"}
    assert not {"p-1", "p-2"} & snapshot_ids(world.snapshot)
    assert not cached.exists()
    # Another worker's cache is fetched again on its next use: snapshot.json changed.
    fresh = local_snapshot(world.snapshot["path"], intentflow_home / "worker-2")
    assert not {"p-1", "p-2"} & snapshot_ids({"path": fresh})
    assert storage.exists(f"{world.snapshot['path']}/snapshot.json")


def test_erase_finds_what_a_real_ingest_recorded(intentflow_home: Path, tmp_path: Path) -> None:
    """Ingest (the CLI, the real parser) records the keys; erase finds by them the person's
    rows in the lake, an e-mail used as conversation id included, and their quarantined
    records; another person's rows stay."""

    def transcript(cid: str, text: str) -> str:
        return json.dumps(
            {
                "conversation_id": cid,
                "started_at": f"{D1.isoformat()}T10:00:00Z",
                "channel": "chat",
                "language": "en",
                "intent": "refund_request",
                "turns": [{"speaker": "customer", "text": text}],
            }
        )

    lines = [transcript(f"c{i}", "I want a refund please") for i in range(30)]
    lines += [
        transcript("p1", f"refund to {EMAIL.upper()} please"),
        transcript(EMAIL, "I want my money back"),  # the e-mail as conversation id
        transcript("p3", f"call me on {PHONE}"),
        transcript("o1", f"write to {OTHER_EMAIL}"),
        '{"conversation_id": "q1", "text": "' + EMAIL + '"',  # malformed: quarantined
    ]
    folder = tmp_path / "feed" / D1.isoformat()
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    ingested = runner.invoke(
        app, ["ingest", "--date", D1.isoformat(), "--path", str(tmp_path / "feed"), "--json"]
    )
    assert ingested.exit_code == 0, ingested.output
    cfg = settings()
    assert lake.read_partition(cfg.lake, D1).num_rows == 34
    assert lake.read_quarantine(cfg.quarantine, D1).num_rows == 1

    result = cli("--email", EMAIL, "--phone", PHONE, "--reason", "ticket 7781", "--json")
    assert result.exit_code == 0, result.output
    table = lake.read_partition(cfg.lake, D1)
    assert table.num_rows == 31  # 30 others and o1
    assert "o1" in table.column("conversation_id").to_pylist()
    text = json.dumps(table.to_pylist(), default=str).casefold()
    assert not any(leak in text for leak in LEAKS)
    assert lake.read_quarantine(cfg.quarantine, D1).num_rows == 0

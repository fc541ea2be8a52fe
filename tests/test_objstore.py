"""Lake, snapshots and artifacts on object storage.

Unit tests run on fsspec's `memory://`. The end-to-end tests run against a real S3 API:
moto's server mode (tests/s3_server.py), a subprocess on a free port, stands in for S3 (s3fs
speaks to it over HTTP exactly as to AWS; only the endpoint differs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from partition_writer import table
from s3_server import make_bucket, moto_server, s3_env

from ml import delta, lake, storage
from ml.config import ConfigError, settings
from ml.ingest import staged_day as handover
from ml.ingest.sources import SourceSpec

DAY = date(2026, 11, 22)
REPO = Path(__file__).resolve().parent.parent


def day_bytes(root: str, day: date = DAY) -> bytes:
    """The bytes of the day's one data file in the table's current version."""
    (uri,) = [u for u in delta.open_table(root).file_uris() if f"dt={day.isoformat()}/" in u]
    return storage.read_bytes(uri)


# --- configuration ---------------------------------------------------------------------------


def test_data_and_artifacts_urls_choose_the_storage(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = settings()
    assert cfg.lake == intentflow_home / "lake" / "transcripts"  # default: unchanged paths
    assert cfg.artifacts == intentflow_home / "artifacts"
    monkeypatch.setenv("INTENTFLOW_DATA_URL", "s3://bucket/intentflow/")
    cfg = settings()
    assert cfg.lake == "s3://bucket/intentflow/lake/transcripts"
    assert cfg.quarantine == "s3://bucket/intentflow/quarantine"
    assert cfg.reports == "s3://bucket/intentflow/reports"
    assert cfg.snapshots == "s3://bucket/intentflow/snapshots"
    assert cfg.artifacts == "s3://bucket/intentflow/artifacts"
    assert cfg.cache == intentflow_home / "cache"  # downloads stay local
    monkeypatch.setenv("INTENTFLOW_ARTIFACTS_URL", "gs://models/intent")
    assert settings().artifacts == "gs://models/intent"
    monkeypatch.setenv("INTENTFLOW_DATA_URL", "file:///srv/data")
    assert settings().lake == Path("/srv/data/lake/transcripts")
    monkeypatch.setenv("INTENTFLOW_HOME", "s3://bucket/home")
    with pytest.raises(ConfigError, match="INTENTFLOW_HOME.*must be a local folder"):
        settings()


def test_quarantine_and_snapshot_on_object_storage(bucket: str, tmp_path: Path) -> None:
    from ml.quarantine import QUARANTINE_SCHEMA, quarantine_table
    from ml.snapshots.lake_window import make_snapshot
    from ml.snapshots.writer import local_snapshot

    mem_root = f"{bucket}/lake/transcripts"
    record = {"source_file": "a.jsonl", "record": 1, "rule": "r", "reason": "why", "raw": "{}"}
    url = lake.write_quarantine(quarantine_table([record]), f"{mem_root}-quarantine", DAY)
    assert url == f"{mem_root}-quarantine/dt=2026-11-22"
    got = lake.read_quarantine(f"{mem_root}-quarantine", DAY)
    assert got.num_rows == 1 and got.schema.names == QUARANTINE_SCHEMA.names

    rows = table("s", 40).append_column("intent", pa.array(["a", "b"] * 20))
    rows = rows.append_column(
        "started_at", pa.array([f"2026-11-22T{i % 24:02d}" for i in range(40)])
    )
    lake.write_partition(rows, mem_root, DAY, {"tag": "s"})
    snaps = f"{mem_root}-snapshots"
    snap = make_snapshot(mem_root, snaps, DAY, 1)
    assert snap["path"] == f"{snaps}/{snap['hash'][:16]}"
    assert make_snapshot(mem_root, snaps, DAY, 1)["hash"] == snap["hash"]  # reused
    local = local_snapshot(snap["path"], tmp_path / "cache")
    assert sorted(p.name for p in local.iterdir()) == [
        "snapshot.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    assert json.loads((local / "snapshot.json").read_text())["counts"] == snap["counts"]


# --- end to end against a real S3 API (moto server) -----------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; the AWS_* settings are the ones a deployment sets."""
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    return make_bucket()


def test_ingest_a_day_to_s3_twice_gives_the_same_partition(
    bucket: str, intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.ingest.steps import ingest_day
    from ml.synthetic.generate import generate

    monkeypatch.setenv("INTENTFLOW_DATA_URL", f"{bucket}/intentflow")
    generate(intentflow_home / "raw", days=1, per_day=150, start=DAY, seed=3)
    first = ingest_day(DAY)
    cfg = settings()
    assert first["partition"] == f"{bucket}/intentflow/lake/transcripts/dt=2026-11-22"
    assert first["rows_read"] == first["rows_written"] + first["rows_quarantined"]
    data = day_bytes(str(cfg.lake))
    again = ingest_day(DAY)
    assert again["content_hash"] == first["content_hash"]
    assert day_bytes(str(cfg.lake)) == data  # byte-identical Parquet
    assert lake.read_partition(cfg.lake, DAY).num_rows == first["rows_written"]
    assert lake.table_version(cfg.lake) == 2  # created, then one commit per publish
    # The quarantine (a Delta table too) and the validation report sit on the same store.
    assert again["quarantine_file"] == f"{cfg.quarantine}/dt=2026-11-22"
    assert lake.read_quarantine(cfg.quarantine, DAY).num_rows == again["rows_quarantined"]
    assert again["validation_report"].startswith(f"{cfg.reports}/dt=2026-11-22/")
    assert storage.exists(again["validation_report"])
    assert not (intentflow_home / "lake").exists()  # nothing of the lake on local disk


def test_snapshot_train_register_evaluate_and_predict_with_everything_on_s3(
    bucket: str,
    intentflow_home: Path,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    from typer.testing import CliRunner

    from ml.artifact.integrity import ArtifactIntegrityError
    from ml.artifact.store import fetch_artifact
    from ml.cli.main import app
    from ml.ingest.steps import ingest_day
    from ml.registry.store import Registry
    from ml.retrain.steps import run_on_snapshot, snapshot_step
    from ml.synthetic.generate import generate

    monkeypatch.setenv("INTENTFLOW_DATA_URL", f"{bucket}/data")
    monkeypatch.setenv("INTENTFLOW_ARTIFACTS_URL", f"{bucket}/models")
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "0")
    for day in generate(intentflow_home / "raw", days=2, per_day=120, start=DAY, seed=5):
        ingest_day(day.day)
    cfg = settings()
    snap = snapshot_step(date(2026, 11, 23), 2, cfg)
    assert snap["path"].startswith(f"{bucket}/data/snapshots/")
    # fine_tune may run on another machine: it reads the snapshot from the store, not from here.
    shutil.rmtree(cfg.cache, ignore_errors=True)
    params = {"epochs": 1, "batch_size": 16, "num_threads": 1}
    result = run_on_snapshot(snap, params, "run-1", actor="test", cfg=cfg)
    assert result["alias"] == "champion"

    version = Registry(cfg.registry_url).get(cfg.model_name, alias="champion")
    assert version.artifact_uri == f"{bucket}/models/intent/run-1/model"
    assert storage.exists(f"{version.artifact_uri}/model.safetensors")
    reports = version.lineage["evaluation_reports"]
    assert reports == f"{bucket}/models/intent/run-1/evaluation"
    assert storage.exists(f"{reports}/challenger/test/metrics.json")
    assert not (intentflow_home / "artifacts").exists()

    # predict on a machine with an empty cache: download, verify the sha256, load.
    shutil.rmtree(cfg.cache)
    out = CliRunner().invoke(app, ["predict", "I lost my card", "--json"])
    assert out.exit_code == 0, out.output
    cached = cfg.cache / "artifacts" / version.artifact_sha256
    assert (cached / "model.safetensors").is_file()
    labels = json.loads((cached / "labels.json").read_text())
    assert json.loads(out.stdout)[0]["intent"] in labels

    # A tampered object in the bucket is refused, not served.
    fs, path = storage.filesystem(version.artifact_uri)
    fs.pipe_file(f"{path}/labels.json", b'["x"]')
    with pytest.raises(ArtifactIntegrityError, match="does not match its recorded hash"):
        fetch_artifact(version.artifact_uri, version.artifact_sha256, intentflow_home / "fresh")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["entities", "answers"])
def test_labeled_task_types_run_end_to_end_on_s3(
    task: str,
    bucket: str,
    intentflow_home: Path,
    tiny_bert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_bitext: Any,
) -> None:
    """Every task type on object storage: the labeled source's snapshot (with its quarantine),
    the artifact and its evaluation reports in the bucket; predict on an empty cache; and
    `intentflow train --data` writing its snapshot to the bucket too."""
    import shutil

    from answer_pairs import pairs_csv
    from typer.testing import CliRunner

    from ml.cli.main import app
    from ml.registry.store import Registry
    from ml.retrain.steps import run_on_snapshot, snapshot_step

    if task == "entities":
        source = tmp_path / "bitext.csv"
        write_bitext(source, 160)
        monkeypatch.setenv("INTENTFLOW_ENTITIES_SOURCE", str(source))
    else:
        source = pairs_csv(tmp_path / "pairs.csv")
        monkeypatch.setenv("INTENTFLOW_ANSWERS_SOURCE", str(source))
    monkeypatch.setenv("INTENTFLOW_DATA_URL", f"{bucket}/data")
    monkeypatch.setenv("INTENTFLOW_ARTIFACTS_URL", f"{bucket}/models")
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "0")
    cfg = settings()
    snap = snapshot_step(date.today(), 1, cfg, task)
    assert snap["path"].startswith(f"{bucket}/data/snapshots/{task}/")
    assert storage.exists(f"{snap['path']}/quarantine.parquet")
    assert storage.exists(f"{snap['path']}/snapshot.json")
    shutil.rmtree(cfg.cache, ignore_errors=True)  # training reads the snapshot from the store
    params = {"epochs": 1, "batch_size": 16, "num_threads": 1}
    result = run_on_snapshot(snap, params, "run-1", actor="test", cfg=cfg, model=task)
    assert (result["task"], result["alias"]) == (task, "champion")
    version = Registry(cfg.registry_url).get(task, alias="champion")
    assert version.artifact_uri == f"{bucket}/models/{task}/run-1/model"
    reports = version.lineage["evaluation_reports"]
    assert storage.exists(f"{reports}/challenger/test/metrics.json")
    assert not (intentflow_home / "artifacts").exists()

    shutil.rmtree(cfg.cache)
    runner = CliRunner()
    out = runner.invoke(app, ["predict", "--model", f"{task}@champion", "cancel order 1003"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        app, ["train", "--task", task, "--data", str(source), "--epochs", "1", "--json"]
    )
    assert out.exit_code == 0, out.output
    trained = json.loads(out.stdout)
    snapshot = Registry(cfg.registry_url).get(task, version=trained["version"]).lineage
    assert snapshot["snapshot_path"].startswith(f"{bucket}/data/snapshots/{task}/")


# --- ingest's tasks on different hosts, the staged day on the store ---------------------------


def _host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """Settings as a worker `name` sees them: its own INTENTFLOW_HOME, the shared data URL."""
    monkeypatch.setenv("INTENTFLOW_HOME", str(tmp_path / f"host-{name}"))
    return settings()


def _staged_files(url: str) -> list[str]:
    fs, path = storage.filesystem(url)
    fs.invalidate_cache(path)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(path))


@pytest.fixture
def mem_data(bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The data on the store (moto's S3: the lake's Delta tables need a store delta-rs
    speaks; fsspec's memory:// is not one)."""
    url = f"{bucket}/data"
    monkeypatch.setenv("INTENTFLOW_DATA_URL", url)
    monkeypatch.setenv("INTENTFLOW_PII_KEY", "test-pii-key")  # required on object storage
    return url


def test_a_retried_normalise_replaces_its_staging_prefix_and_a_failed_day_is_unstaged(
    mem_data: str, intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.ingest import steps as ingest
    from ml.ingest.validation import DataQualityError
    from ml.synthetic.generate import generate

    raw = tmp_path / "raw"
    generate(raw, days=1, per_day=60, start=DAY, seed=4, broken_share=0.5)
    files = ingest.discover(SourceSpec(str(raw)), DAY)
    cfg = _host(tmp_path, monkeypatch, "a")
    run = "manual__2026-11-22T00:00:00+00:00"
    scratch = ingest.staging_dir_for(cfg, DAY, run)
    url = ingest.staging_url_for(cfg, scratch)
    assert url == f"{mem_data}/staging/2026-11-22__manual__2026-11-22T00_00_00_00_00"
    staged = ingest.normalise(files, DAY, scratch, SourceSpec(str(raw)), url)
    assert staged["staging_dir"] == url and not scratch.exists()  # no scratch left behind
    assert _staged_files(url) == [
        handover.STAGED_MARKER,
        handover.QUARANTINE_FILE,
        handover.ROWS_FILE,
    ]

    # A retry that dies uploading the rows: the old marker is gone first, so the half-upload
    # is never taken for the staged day; its scratch is removed all the same.
    fs, _ = storage.filesystem(url)
    fs.pipe_file(f"{storage.filesystem(url)[1]}/stale.arrow", b"from an earlier attempt")
    real_put = fs.put_file

    def die_on_rows(lpath: str, rpath: str, **kwargs: Any) -> None:
        if rpath.endswith(handover.ROWS_FILE):
            raise ConnectionError("worker lost mid-upload")
        real_put(lpath, rpath, **kwargs)

    monkeypatch.setattr(fs, "put_file", die_on_rows)
    with pytest.raises(ConnectionError):
        ingest.normalise(files, DAY, scratch, SourceSpec(str(raw)), url)
    monkeypatch.setattr(fs, "put_file", real_put)
    assert _staged_files(url) == [handover.QUARANTINE_FILE] and not scratch.exists()
    cfg = _host(tmp_path, monkeypatch, "b")
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        ingest.validate(staged, cfg.reports, cfg.lake)

    # The next retry stages the same day again, whole.
    cfg = _host(tmp_path, monkeypatch, "c")
    again = ingest.normalise(
        files, DAY, ingest.staging_dir_for(cfg, DAY, run), SourceSpec(str(raw)), url
    )
    assert again == staged
    assert _staged_files(url) == [
        handover.STAGED_MARKER,
        handover.QUARANTINE_FILE,
        handover.ROWS_FILE,
    ]

    # Half the feed is broken: the gate fails on another host. The staged day (raw lines) is
    # removed from the store, as a local staging folder is; its quarantine is kept.
    cfg = _host(tmp_path, monkeypatch, "d")
    with pytest.raises(DataQualityError, match="quarantine_share"):
        ingest.validate(json.loads(json.dumps(again)), cfg.reports, cfg.lake, cfg.quarantine)
    assert _staged_files(url) == []
    assert lake.list_partitions(cfg.lake) == []
    assert lake.read_quarantine(cfg.quarantine, DAY).num_rows == again["rows_quarantined"]

    # A file of the day cannot be read at all: nothing is staged for that day, on the store
    # either (as a local staging folder is removed), and the error names the file.
    from ml.ingest.sources import SourceError

    cfg = _host(tmp_path, monkeypatch, "e")
    scratch = ingest.staging_dir_for(cfg, DAY, run)
    gone = str(raw / DAY.isoformat() / "vanished.jsonl")
    with pytest.raises(SourceError, match="vanished.jsonl"):
        ingest.normalise([*files, gone], DAY, scratch, SourceSpec(str(raw)), url)
    assert _staged_files(url) == [] and not scratch.exists()


def test_s3_ingest_tasks_on_three_hosts_give_the_local_ingests_partition(
    bucket: str, intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """normalise, validate and publish each with its own INTENTFLOW_HOME, the data on s3://;
    publish dies between the copy and the commit once, and its retry publishes the day."""
    import pyarrow.parquet as pq

    from ml.ingest import steps as ingest
    from ml.synthetic.generate import generate

    raw = tmp_path / "raw"
    generate(raw, days=1, per_day=150, start=DAY, seed=3)
    reference = ingest.ingest_day(DAY, SourceSpec(str(raw)))  # all local, one host
    assert not storage.is_remote(reference["partition"])
    reference_lake, reference_quarantine = settings().lake, settings().quarantine

    data = f"{bucket}/intentflow"
    monkeypatch.setenv("INTENTFLOW_DATA_URL", data)
    cfg = _host(tmp_path, monkeypatch, "normalise")
    files = ingest.discover(SourceSpec(str(raw)), DAY)
    scratch = ingest.staging_dir_for(cfg, DAY, "scheduled__2026-11-22")
    url = ingest.staging_url_for(cfg, scratch)
    assert url == f"{data}/staging/2026-11-22__scheduled__2026-11-22"
    # Every hand-over goes through JSON, as through XCom.
    staged = json.loads(
        json.dumps(ingest.normalise(files, DAY, scratch, SourceSpec(str(raw)), url))
    )
    assert staged["staging_dir"] == url

    cfg = _host(tmp_path, monkeypatch, "validate")
    validated = json.loads(json.dumps(ingest.validate(staged, cfg.reports, cfg.lake)))
    assert validated["validation_report"].startswith(f"{data}/reports/dt=2026-11-22/")

    # publish: the staged file is copied within the store (never uploaded from the worker)
    # into the table's folder; the worker dies before the commit.
    cfg = _host(tmp_path, monkeypatch, "publish")
    fs, _ = storage.filesystem(data)
    real_copy, real_table_for = fs.copy, delta._table_for
    copies: list[tuple[str, str]] = []

    def crash_before_commit(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("worker lost before the commit")

    def no_upload(lpath: str, rpath: str, **kwargs: Any) -> None:
        raise AssertionError(f"publish uploaded {lpath} to {rpath}")

    def copy(path1: str, path2: str, **kwargs: Any) -> None:
        copies.append((path1, path2))
        real_copy(path1, path2, **kwargs)

    monkeypatch.setattr(delta, "_table_for", crash_before_commit)
    monkeypatch.setattr(fs, "put_file", no_upload)
    monkeypatch.setattr(fs, "copy", copy)
    with pytest.raises(ConnectionError):
        ingest.publish(validated, cfg)
    monkeypatch.setattr(delta, "_table_for", real_table_for)
    assert len(copies) == 1 and copies[0][0].endswith(f"{url[5:]}/{handover.ROWS_FILE}")
    assert lake.read_manifest(cfg.lake, DAY) is None and lake.table_version(cfg.lake) is None
    assert handover.STAGED_MARKER in _staged_files(url)  # kept for the retry

    # The retry, on yet another worker, publishes the whole day.
    cfg = _host(tmp_path, monkeypatch, "publish-retry")
    summary = ingest.publish(validated, cfg)
    assert len(copies) == 2
    assert summary["partition"] == f"{data}/lake/transcripts/dt=2026-11-22"
    assert summary["content_hash"] == reference["content_hash"]
    for key in ("rows_read", "rows_written", "rows_quarantined", "quarantine_rules"):
        assert summary[key] == reference[key], key
    local_rows = [u for u in delta.open_table(reference_lake).file_uris()]
    assert len(local_rows) == 1
    assert day_bytes(str(cfg.lake)) == Path(local_rows[0]).read_bytes()  # the very same file
    assert lake.read_partition(cfg.lake, DAY).equals(pq.read_table(local_rows[0]))
    assert lake.read_quarantine(cfg.quarantine, DAY).equals(
        lake.read_quarantine(reference_quarantine, DAY)
    )
    # The crashed copy is not in the table; VACUUM deletes it.
    assert len(delta.unvacuumed(cfg.lake)) == 1
    lake.maintain(cfg.lake, retention_hours=0)
    assert delta.unvacuumed(cfg.lake) == []
    assert lake.read_partition(cfg.lake, DAY).num_rows == summary["rows_written"]

    # Nothing staged is left, on any worker or on the store; a late retry of publish finds
    # the day committed with the same content.
    for host in ("normalise", "validate", "publish", "publish-retry"):
        staging = tmp_path / f"host-{host}" / "staging"
        assert not staging.exists() or not list(staging.iterdir()), host
    fs.invalidate_cache()
    assert not fs.exists(f"{data[5:]}/staging") or not fs.find(f"{data[5:]}/staging")
    assert ingest.publish(validated, cfg)["content_hash"] == reference["content_hash"]
    assert len(copies) == 2

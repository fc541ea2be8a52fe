"""One day's ingest as four steps: discover → normalise → validate → publish.

The Airflow DAG runs each step as a task; :func:`ingest_day` runs them in order for the CLI.
Steps hand over a small JSON-serialisable dict (the staged day), never data. The staged day
is a folder under `$INTENTFLOW_HOME/staging` when the data root is local; when it is on object
storage, `normalise` uploads it to `<data root>/staging/<day>__<run>/`, so `validate` and
`publish` may run on any worker (publish copies it into the lake within the store).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import shutil
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml import handover, jsonl_arrow, lake, sources, staging, storage
from ml.config import Settings, ingest_workers, settings
from ml.handover import QUARANTINE_FILE, ROWS_FILE
from ml.parse import Rejected, parse_items
from ml.schema import QUARANTINE_SCHEMA, TRANSCRIPT_SCHEMA
from ml.sources import Item, SourceError, SourceSpec, parse_source
from ml.taxonomy import known_intents
from ml.validation import DataQualityError, min_volume, run_suite

log = logging.getLogger(__name__)

# A day where more than this share of records is quarantined fails its gate: the feed is broken.
MAX_QUARANTINE_SHARE = 0.2
# Rows per run file written by the record-by-record path: bounds memory whatever the feed.
BATCH_ROWS = 20_000
# Quarantined records held before they are written: a day of bad records stays bounded too.
QUARANTINE_BATCH = 10_000
# Rows the GX suite sees at once (its pandas frame): bounds validation's memory.
VALIDATION_BATCH_ROWS = 1_000_000


def discover(source: str, day: date) -> list[str]:
    """The files of `day` for a source (a URL of daily JSONL drops, or a JSON source spec)."""
    spec = parse_source(source)
    files = sources.discover(spec, day)
    log.info("discovered %d file(s) for %s under %s", len(files), day, spec.display_name)
    return files


def _belongs(spec: SourceSpec, item: Item, day: date) -> bool:
    """Static sets hold every day: keep this day's records, dating undated ones by id hash."""
    record = item.record
    if spec.layout != "static":
        return True
    if isinstance(record, dict) and isinstance(record.get("started_at"), str):
        return record["started_at"][:10] == day.isoformat()
    cid = record.get("conversation_id") if isinstance(record, dict) else None
    key = cid if isinstance(cid, str) and cid else f"{spec.display_name}:{item.number}"
    start = sources.assigned_start(spec, key)
    if isinstance(record, dict):
        record["started_at"] = start.isoformat()
    return start.date() == day


def normalise(
    files: list[str],
    day: date,
    staging_dir: Path,
    source: str | None = None,
    upload_to: str | None = None,
) -> dict[str, Any]:
    """Parse and redact every record; stage the day's rows (one sorted Parquet file) and quarantine.

    Streams: parsed pieces go straight to bucketed run files (ml/staging.py), merged one
    bucket at a time, so memory does not grow with the feed. Plain JSONL drops take the Arrow
    fast path (ml.jsonl_arrow), in worker processes for a big day; it gives the same rows.

    `staging_dir` is local scratch. With `upload_to` (a URL on object storage, see
    :func:`staging_url_for`) the staged files are uploaded there (replacing a retried run's),
    the scratch is removed, and the returned dict points at the URL.
    """
    if upload_to is None:
        return _stage(files, day, staging_dir, source)
    try:
        try:
            staged = _stage(files, day, staging_dir, source)
        except SourceError:
            handover.remove(upload_to)  # nothing is staged for that day, as locally
            raise
        staged = {**staged, "staging_dir": upload_to}
        handover.upload(staging_dir, upload_to, staged)
        return staged
    finally:  # the next task reads the store; a retry here stages from scratch anyway
        shutil.rmtree(staging_dir, ignore_errors=True)


def _stage(
    files: list[str], day: date, staging_dir: Path, source: str | None = None
) -> dict[str, Any]:
    """The day staged in the local folder `staging_dir` (see :func:`normalise`)."""
    spec = parse_source(source) if source else SourceSpec(url="unknown")
    labels = sources.load_labels(spec.labels) if spec.labels else known_intents()
    staging_dir.mkdir(parents=True, exist_ok=True)
    # A retried task reuses its run's folder: runs a killed attempt left must not be merged.
    shutil.rmtree(staging_dir / RUNS_DIR, ignore_errors=True)
    size = _input_bytes(files)
    stage = _Stage(staging_dir, staging.bucket_count(size))
    try:
        with stage:
            fast = FAST_PATH and jsonl_arrow.fast_path_applies(spec)
            with _block_pool(size if fast else 0) as pool:
                for index, url in enumerate(files):
                    if fast:
                        _normalise_blocks(stage, spec, url, index, day, labels, pool)
                    else:
                        _normalise_items(stage, spec, url, index, day, labels)
                stage.drain()
            with _LineReader(files) as lines:
                merged = staging.merge(
                    stage.runs,
                    stage.buckets,
                    staging_dir / ROWS_FILE,
                    files,
                    lines.read,
                    lambda repeats: stage.add(0, repeats),
                )
    except SourceError:
        shutil.rmtree(staging_dir, ignore_errors=True)  # nothing is written for that day
        raise
    if stage.read != merged.rows + stage.quarantined:
        raise AssertionError(
            f"lost records: read {stage.read}, wrote {merged.rows}, quarantined {stage.quarantined}"
        )
    staged = {
        "day": day.isoformat(),
        "staging_dir": str(staging_dir),
        "source": spec.display_name,
        "labels_file": spec.labels,
        "files": files,
        "rows_read": stage.read,
        "rows_written": merged.rows,
        "rows_quarantined": stage.quarantined,
        "content_hash": merged.content_hash,
        "quarantine_rules": dict(sorted(stage.rules.items())),
        # Flagged for the data owner: labels the taxonomy lacks are quarantined, never trained on.
        "new_intents": dict(sorted(stage.new_intents.items())),
    }
    log.info("normalised %s: %s", day, {k: v for k, v in staged.items() if k != "files"})
    return staged


# The Arrow fast path for plain JSONL; False sends every record through ml.parse (tests compare).
FAST_PATH = True
RUNS_DIR = "runs"


class _Stage:
    """Counts, the run files being written (numbered) and the quarantine, streamed to disk."""

    def __init__(self, staging_dir: Path, buckets: int) -> None:
        self.runs, self.buckets = staging_dir / RUNS_DIR, buckets
        self.quarantine_file = staging_dir / QUARANTINE_FILE
        self.read = self.quarantined = self.seq = 0
        self.rules: Counter[str] = Counter()
        self.new_intents: Counter[str] = Counter()
        self.pending: deque[Any] = deque()  # worker futures, in submission order
        self._held: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _Stage:
        self._writer = pq.ParquetWriter(self.quarantine_file, QUARANTINE_SCHEMA)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._writer is not None
        self._flush()
        self._writer.close()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, read: int, rejected: list[Rejected]) -> None:
        """`read` records more, of which `rejected` (quarantined, in order)."""
        self.read += read
        self.quarantined += len(rejected)
        for r in rejected:
            self.rules[r.rule] += 1
            if r.rule == "unknown_intent":
                self.new_intents[_intent_of(r)] += 1
            self._held.append(r.as_row())
        if len(self._held) >= QUARANTINE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._held and self._writer is not None:
            self._writer.write_table(pa.Table.from_pylist(self._held, schema=QUARANTINE_SCHEMA))
            self._held = []

    def drain(self) -> None:
        """Wait for the blocks still being parsed by worker processes."""
        while self.pending:
            self.add(*self.pending.popleft().result())


class _LineReader:
    """Reads back one line of a source file by byte offset (a repeated id's raw record)."""

    def __init__(self, files: list[str]) -> None:
        self.files = files
        self.open: dict[int, Any] = {}

    def __enter__(self) -> _LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for fh in self.open.values():
            fh.close()

    def read(self, file: int, offset: int) -> str:
        fh = self.open.get(file)
        if fh is None:
            url = self.files[file]
            # A local file directly: a file delivered twice is a million of these reads.
            local = not storage.is_remote(url) or url.startswith("file://")
            fh = open(url.removeprefix("file://"), "rb") if local else sources.open_file(url)  # noqa: SIM115
            self.open[file] = fh
        fh.seek(offset)
        return fh.readline().decode("utf-8").rstrip("\r\n")


def _normalise_items(
    stage: _Stage, spec: SourceSpec, url: str, index: int, day: date, labels: frozenset[str]
) -> None:
    """Record by record through ml.parse (every format)."""
    items = (i for i in sources.read_items(spec, url, day) if _belongs(spec, i, day))
    batch: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for item, outcome in parse_items(items, url, day, labels, spec.display_name):
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            batch.append({**outcome, "file": index, "line": item.number, "raw": item.raw})
        if len(batch) + len(rejected) >= BATCH_ROWS:
            _write_items(stage, batch)
            stage.add(len(rejected), rejected)
            batch, rejected = [], []
    _write_items(stage, batch)
    stage.add(len(rejected), rejected)


def _write_items(stage: _Stage, batch: list[dict[str, Any]]) -> None:
    rows = pa.Table.from_pylist(batch, schema=staging.RUN_SCHEMA)
    staging.write_run(stage.runs, stage.buckets, stage.next_seq(), rows)
    stage.add(rows.num_rows, [])


def _normalise_blocks(
    stage: _Stage,
    spec: SourceSpec,
    url: str,
    index: int,
    day: date,
    labels: frozenset[str],
    pool: Any,
) -> None:
    """Plain JSONL in blocks through ml.jsonl_arrow; in worker processes when `pool` is given.

    Each block's rows go to the run files from the process that parsed them. With a pool the
    blocks of every file form one queue (no worker waits at a file's end), at most two per
    worker in flight (bounded memory); :meth:`_Stage.drain` collects the last ones.
    """
    args = (spec, url, index, day, labels, stage.runs, stage.buckets)
    with sources.open_file(url) as fh:
        try:
            for data, first_line, offset in jsonl_arrow.split_blocks(fh):
                job = (*args, stage.next_seq(), data, first_line, offset)
                if pool is None:
                    stage.add(*stage_block(*job))
                    continue
                stage.pending.append(pool.submit(stage_block, *job))
                while len(stage.pending) > 2 * pool._max_workers:
                    stage.add(*stage.pending.popleft().result())
        except OSError as exc:
            raise SourceError(f"cannot read {url}: {exc}") from exc


def stage_block(
    spec: SourceSpec,
    url: str,
    index: int,
    day: date,
    labels: frozenset[str],
    runs: Path,
    buckets: int,
    seq: int,
    data: bytes,
    first_line: int,
    offset: int,
) -> tuple[int, list[Rejected]]:
    """Parse one block and write its rows to the runs; (records read, records rejected)."""
    block = jsonl_arrow.parse_block(
        spec, url, day, labels, spec.display_name, data, first_line, offset
    )
    rows = block.rows
    n = rows.num_rows
    rows = rows.append_column("file", pa.array(np.full(n, index, np.int32))).append_column(
        "raw", pa.nulls(n, pa.string())
    )
    slow_rows, rejected = [], []
    for line, raw, outcome in block.slow:
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            slow_rows.append({**outcome, "file": index, "line": line, "raw": raw})
    rows = rows.select(staging.RUN_SCHEMA.names).cast(staging.RUN_SCHEMA)
    if slow_rows:
        rows = pa.concat_tables([rows, pa.Table.from_pylist(slow_rows, schema=staging.RUN_SCHEMA)])
    staging.write_run(runs, buckets, seq, rows)
    return rows.num_rows + len(rejected), rejected


def _input_bytes(files: list[str]) -> int:
    size = 0
    for url in files:
        with contextlib.suppress(OSError):
            size += fsspec.core.url_to_fs(url)[0].size(url) or 0
    return size


@contextlib.contextmanager
def _block_pool(size: int) -> Iterator[Any]:
    """Worker processes for a day big enough to repay starting them (spawned: fork-safe)."""
    workers = ingest_workers()
    if workers < 2 or size < 4 * jsonl_arrow.BLOCK_BYTES:
        yield None
        return
    if multiprocessing.current_process().daemon:  # e.g. a Celery prefork child: no children
        log.info("daemonic process: parsing in this process only")
        yield None
        return
    log.info("parsing %.0f MB of JSONL in %d worker processes", size / 1e6, workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield pool


def trailing_rows(lake_root: storage.Location, day: date, days: int = 7) -> list[int]:
    """Rows written on each of the `days` days before `day` that have a partition."""
    counts = []
    for d in lake.days_in_window(day - timedelta(days=1), days):
        manifest = lake.read_manifest(lake_root, d)
        if manifest is not None:
            counts.append(int(manifest["rows_written"]))
    return counts


def _intent_of(rejected: Rejected) -> str:
    try:
        return str(json.loads(rejected.raw).get("intent"))
    except (ValueError, AttributeError):
        return "?"


def validate(
    staged: dict[str, Any], report_root: storage.Location, lake_root: storage.Location | None = None
) -> dict[str, Any]:
    """Run the GX suite on the staged rows; raise DataQualityError when the day fails.

    `lake_root` enables the volume check against the trailing days' partitions.
    """
    day = date.fromisoformat(staged["day"])
    # Only what the suite reads: the content hash alone is 64 bytes a row.
    columns = [n for n in TRANSCRIPT_SCHEMA.names if n not in ("source", "content_hash")]
    min_rows = min_volume(trailing_rows(lake_root, day)) if lake_root else 1
    labels = sources.load_labels(staged["labels_file"]) if staged.get("labels_file") else None
    # Reports go next to the day's partition, on the same storage (uploaded when remote).
    report_at = lake.partition_path(report_root, day)
    handover.require(staged)
    with (
        handover.open_file(staged, ROWS_FILE) as source,
        storage.local_output(report_at) as report_dir,
    ):
        rows = pq.ParquetFile(source)
        outcome = run_suite(
            # A batch at a time (bounded memory); the staged day holds each id once.
            (
                pa.Table.from_batches([b])
                for b in rows.iter_batches(VALIDATION_BATCH_ROWS, columns=columns)
            ),
            day,
            labels or known_intents(),
            report_dir,
            min_rows=min_rows,
            run_name=str(staged["staging_dir"]).rstrip("/").rsplit("/", 1)[-1],
            row_count=rows.metadata.num_rows,
        )
    outcome = storage.rebase_paths(outcome, report_dir, report_at, ("report_path", "data_docs"))
    failed = list(outcome.failed)
    share = staged["rows_quarantined"] / staged["rows_read"] if staged["rows_read"] else 0.0
    if share > MAX_QUARANTINE_SHARE:
        failed.append(
            {
                "expectation": "quarantine_share_at_most",
                "column": None,
                "rule": f"at most {MAX_QUARANTINE_SHARE:.0%} of records quarantined",
                "unexpected_count": staged["rows_quarantined"],
                "examples": [f"{share:.1%} quarantined > {MAX_QUARANTINE_SHARE:.0%}"],
            }
        )
    result = {
        **staged,
        "validation_report": outcome.report_path,
        "data_docs": outcome.data_docs,
        "min_rows": min_rows,
        "failed_expectations": failed,
    }
    if failed:
        names = ", ".join(
            f"{f['expectation']}({f['column'] or ''})={f['unexpected_count']}" for f in failed
        )
        raise DataQualityError(
            f"transcripts {day} failed validation: {names}; report: {outcome.report_path}",
            failed,
            outcome.report_path,
        )
    return result


def publish(validated: dict[str, Any], cfg: Settings) -> dict[str, Any]:
    """Swap the staged day into the lake and quarantine; remove the staged day.

    Staged on object storage, the rows are copied into the lake within the store. The staged
    day is removed only after the commit, so a retry after a crash publishes it again; a retry
    after the removal finds the day committed with the same content and returns it.
    """
    day = date.fromisoformat(validated["day"])
    staging = handover.location(validated)
    if not handover.is_whole(validated):
        done = lake.read_manifest(cfg.lake, day)
        if not done or done.get("content_hash") != validated["content_hash"]:
            handover.require(validated)
        log.info("%s is already published (staged day removed after the commit)", day)
        return _summary(cfg, day, lake.partition_path(cfg.lake, day))
    with handover.open_file(validated, QUARANTINE_FILE) as source:
        quarantine = pq.read_table(source)
    quarantine_path = lake.write_quarantine(quarantine, cfg.quarantine, day)
    manifest = {
        k: validated[k]
        for k in (
            "day",
            "files",
            "rows_read",
            "rows_written",
            "rows_quarantined",
            "quarantine_rules",
            "source",
            "validation_report",
            "data_docs",
            "new_intents",
            "content_hash",
        )
        if k in validated
    }
    manifest["rows"] = validated["rows_written"]
    partition = lake.publish_file(storage.join(staging, ROWS_FILE), cfg.lake, day, manifest)
    if storage.is_remote(staging):
        handover.remove(str(staging))
    else:
        shutil.rmtree(staging, ignore_errors=True)
    summary = {**_summary(cfg, day, partition), "quarantine_file": str(quarantine_path)}
    log.info(
        "published %s: %d rows, %d quarantined",
        day,
        summary["rows_written"],
        summary["rows_quarantined"],
    )
    return summary


def _summary(cfg: Settings, day: date, partition: storage.Location) -> dict[str, Any]:
    quarantine = storage.join(lake.partition_path(cfg.quarantine, day), "quarantine.parquet")
    return {
        **(lake.read_manifest(cfg.lake, day) or {}),
        "partition": str(partition),
        "quarantine_file": str(quarantine),
    }


def staging_url_for(cfg: Settings, staging_dir: Path) -> str | None:
    """Where `normalise` uploads the day staged in `staging_dir` (same name), when the data is
    on object storage; None when the data root is local (the folder itself is handed over)."""
    store = cfg.staging_store
    return f"{store}/{staging_dir.name}" if store is not None else None


def staging_dir_for(cfg: Settings, day: date, run_key: str | None = None) -> Path:
    key = "".join(c if c.isalnum() or c in "-_." else "_" for c in (run_key or uuid.uuid4().hex))
    return cfg.staging / f"{day.isoformat()}__{key}"


def ingest_day(day: date, source: str | None = None, cfg: Settings | None = None) -> dict[str, Any]:
    """discover → normalise → validate → publish for one day, as the DAG does."""
    cfg = cfg or settings()
    source = source or cfg.source
    files = discover(source, day)
    scratch = staging_dir_for(cfg, day)
    staged = normalise(files, day, scratch, source, staging_url_for(cfg, scratch))
    return publish(validate(staged, cfg.reports, cfg.lake), cfg)

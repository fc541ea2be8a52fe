"""One day's ingest as four steps: discover → normalise → validate → publish.

The Airflow DAG runs each step as a task; :func:`ingest_day` runs them in order for the CLI.
Steps hand over a small JSON-serialisable dict (the staged day), never data, so the same
staging folder works in one process and across Celery workers sharing the store.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import shutil
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ml import jsonl_arrow, lake, sources, storage
from ml.config import Settings, ingest_workers, settings
from ml.parse import Rejected, parse_items
from ml.schema import QUARANTINE_SCHEMA, TRANSCRIPT_SCHEMA
from ml.sources import Item, SourceError, SourceSpec, parse_source
from ml.taxonomy import known_intents
from ml.validation import DataQualityError, min_volume, run_suite

log = logging.getLogger(__name__)

ROWS_FILE = "rows.parquet"
QUARANTINE_FILE = "quarantine.parquet"
# A day where more than this share of records is quarantined fails its gate: the feed is broken.
MAX_QUARANTINE_SHARE = 0.2
# Rows per Parquet write while staging: bounds memory whatever the size of the feed.
BATCH_ROWS = 20_000


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
    files: list[str], day: date, staging_dir: Path, source: str | None = None
) -> dict[str, Any]:
    """Parse and redact every record; stage canonical rows and quarantine as Parquet.

    Streams: rows go to the staging file in batches, so memory does not grow with the feed.
    Plain JSONL drops take the Arrow fast path (ml.jsonl_arrow), which gives the same rows.
    """
    spec = parse_source(source) if source else SourceSpec(url="unknown")
    labels = sources.load_labels(spec.labels) if spec.labels else known_intents()
    staging_dir.mkdir(parents=True, exist_ok=True)
    try:
        fast = FAST_PATH and jsonl_arrow.fast_path_applies(spec)
        with (
            pq.ParquetWriter(staging_dir / ROWS_FILE, TRANSCRIPT_SCHEMA) as writer,
            _block_pool(files if fast else []) as pool,
        ):
            stage = _Stage(writer)
            for url in files:
                if fast:
                    _normalise_blocks(stage, spec, url, day, labels, pool)
                else:
                    _normalise_items(stage, spec, url, day, labels)
    except SourceError:
        shutil.rmtree(staging_dir, ignore_errors=True)  # nothing is written for that day
        raise
    rejected, read, written = stage.rejected, stage.read, stage.written
    quarantine = pa.Table.from_pylist([r.as_row() for r in rejected], schema=QUARANTINE_SCHEMA)
    pq.write_table(quarantine, staging_dir / QUARANTINE_FILE)
    if read != written + quarantine.num_rows:
        raise AssertionError(
            f"lost records: read {read}, wrote {written}, quarantined {quarantine.num_rows}"
        )
    staged = {
        "day": day.isoformat(),
        "staging_dir": str(staging_dir),
        "source": spec.display_name,
        "labels_file": spec.labels,
        "files": files,
        "rows_read": read,
        "rows_written": written,
        "rows_quarantined": quarantine.num_rows,
        "quarantine_rules": dict(sorted(Counter(r.rule for r in rejected).items())),
        # Flagged for the data owner: labels the taxonomy lacks are quarantined, never trained on.
        "new_intents": dict(
            sorted(Counter(_intent_of(r) for r in rejected if r.rule == "unknown_intent").items())
        ),
    }
    log.info("normalised %s: %s", day, {k: v for k, v in staged.items() if k != "files"})
    return staged


# The Arrow fast path for plain JSONL; False sends every record through ml.parse (tests compare).
FAST_PATH = True
_STAGED = TRANSCRIPT_SCHEMA.append(pa.field("line", pa.int64()))


class _Stage:
    """Rows in file and line order, the first of each conversation id written, repeats kept."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.rejected: list[Rejected] = []
        # conversation id -> file index << 40 | line of its first row: an int, not a string,
        # since the set of a day's ids is the part of staging that grows with the feed.
        self.seen: dict[str, int] = {}
        self.names: list[str] = []
        self.read = self.written = 0

    def add(self, url: str, rows: pa.Table, raw_of: Callable[[int], str]) -> None:
        """`rows`: canonical rows of one file with their `line`, in line order."""
        name = Path(url).name
        if not self.names or self.names[-1] != name:
            self.names.append(name)
        base = (len(self.names) - 1) << 40
        keep = []
        seen = self.seen
        cids = rows.column("conversation_id").to_pylist()
        for cid, line in zip(cids, rows.column("line").to_pylist(), strict=True):
            first = seen.get(cid)
            if first is not None:
                # First occurrence wins; the repeat is kept in quarantine, not lost.
                where = f"{self.names[first >> 40]}:{first & ((1 << 40) - 1)}"
                reason = f"conversation_id {cid!r} already seen at {where}"
                self.rejected.append(Rejected(url, line, "duplicate_id", reason, raw_of(line), cid))
                keep.append(False)
            else:
                seen[cid] = base | line
                keep.append(True)
        self.read += rows.num_rows
        out = rows.filter(pa.array(keep, pa.bool_())).drop_columns(["line"])
        self.writer.write_table(out)
        self.written += out.num_rows

    def reject(self, rejected: Rejected) -> None:
        self.read += 1
        self.rejected.append(rejected)


def _normalise_items(
    stage: _Stage, spec: SourceSpec, url: str, day: date, labels: frozenset[str]
) -> None:
    """Record by record through ml.parse (every format)."""
    items = (i for i in sources.read_items(spec, url, day) if _belongs(spec, i, day))
    batch: list[dict[str, Any]] = []
    raws: dict[int, str] = {}
    for item, outcome in parse_items(items, url, day, labels, spec.display_name):
        if isinstance(outcome, Rejected):
            stage.reject(outcome)
            continue
        batch.append({**outcome, "line": item.number})
        raws[item.number] = item.raw
        if len(batch) >= BATCH_ROWS:
            stage.add(url, pa.Table.from_pylist(batch, schema=_STAGED), raws.__getitem__)
            batch, raws = [], {}
    stage.add(url, pa.Table.from_pylist(batch, schema=_STAGED), raws.__getitem__)


def _normalise_blocks(
    stage: _Stage, spec: SourceSpec, url: str, day: date, labels: frozenset[str], pool: Any
) -> None:
    """Plain JSONL in blocks through ml.jsonl_arrow; in worker processes when `pool` is given.

    Blocks are staged in file order, at most two per worker in flight (bounded memory).
    """
    args = (spec, url, day, labels, spec.display_name)
    pending: deque[tuple[bytes, Any]] = deque()
    with sources.open_file(url) as fh:
        try:
            for data, first_line in jsonl_arrow.split_blocks(fh):
                if pool is None:
                    _stage_block(stage, url, jsonl_arrow.parse_block(*args, data, first_line))
                    continue
                pending.append(
                    (data, pool.submit(jsonl_arrow.parse_block, *args, data, first_line))
                )
                while len(pending) > 2 * pool._max_workers:
                    _stage_block(stage, url, _result(*pending.popleft()))
        except OSError as exc:
            raise SourceError(f"cannot read {url}: {exc}") from exc
    while pending:
        _stage_block(stage, url, _result(*pending.popleft()))


def _result(data: bytes, future: Any) -> jsonl_arrow.Block:
    block = future.result()
    block.data = data  # the worker does not send the bytes back
    return block


def _stage_block(stage: _Stage, url: str, block: jsonl_arrow.Block) -> None:
    slow_rows, raws = [], {}
    for line, raw, outcome in block.slow:
        if isinstance(outcome, Rejected):
            stage.reject(outcome)
        else:
            slow_rows.append({**outcome, "line": line})
            raws[line] = raw
    rows = block.rows
    if slow_rows:
        rows = pa.concat_tables([rows, pa.Table.from_pylist(slow_rows, schema=_STAGED)])
        rows = rows.sort_by("line")
    stage.add(url, rows, lambda line: raws.get(line) or block.raw(line))


@contextlib.contextmanager
def _block_pool(files: list[str]) -> Iterator[Any]:
    """Worker processes for a day big enough to repay starting them (spawned: fork-safe)."""
    workers = ingest_workers()
    size = 0
    for url in files:
        with contextlib.suppress(OSError):
            size += fsspec.core.url_to_fs(url)[0].size(url) or 0
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
    with storage.local_output(report_at) as report_dir:
        outcome = run_suite(
            # Not bound here: run_suite lets the table go once the suite's frame is built.
            pq.read_table(Path(staged["staging_dir"]) / ROWS_FILE, columns=columns),
            day,
            labels or known_intents(),
            report_dir,
            min_rows=min_rows,
            run_name=Path(staged["staging_dir"]).name,
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
    """Swap the staged day into the lake and quarantine; remove the staging folder."""
    day = date.fromisoformat(validated["day"])
    staging = Path(validated["staging_dir"])
    quarantine = pq.read_table(staging / QUARANTINE_FILE)
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
        )
        if k in validated
    }
    partition = lake.write_partition(pq.read_table(staging / ROWS_FILE), cfg.lake, day, manifest)
    shutil.rmtree(staging, ignore_errors=True)
    summary = {
        **lake.read_manifest(cfg.lake, day),
        "partition": str(partition),
        "quarantine_file": str(quarantine_path),
    }
    log.info(
        "published %s: %d rows, %d quarantined",
        day,
        summary["rows_written"],
        summary["rows_quarantined"],
    )
    return summary


def staging_dir_for(cfg: Settings, day: date, run_key: str | None = None) -> Path:
    key = "".join(c if c.isalnum() or c in "-_." else "_" for c in (run_key or uuid.uuid4().hex))
    return cfg.staging / f"{day.isoformat()}__{key}"


def ingest_day(day: date, source: str | None = None, cfg: Settings | None = None) -> dict[str, Any]:
    """discover → normalise → validate → publish for one day, as the DAG does."""
    cfg = cfg or settings()
    source = source or cfg.source
    files = discover(source, day)
    staged = normalise(files, day, staging_dir_for(cfg, day), source)
    validated = validate(staged, cfg.reports, cfg.lake)
    # Hand the suite's frame back to the OS before the day is read again to be written.
    gc.collect()
    pa.default_memory_pool().release_unused()
    return publish(validated, cfg)

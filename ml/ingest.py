"""One day's ingest as four steps: discover → normalise → validate → publish.

The Airflow DAG runs each step as a task; :func:`ingest_day` runs them in order for the CLI.
Steps hand over a small JSON-serialisable dict (the staged day), never data, so the same
staging folder works in one process and across Celery workers sharing the store.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml import lake, sources, storage
from ml.config import Settings, settings
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
    """
    spec = parse_source(source) if source else SourceSpec(url="unknown")
    labels = sources.load_labels(spec.labels) if spec.labels else known_intents()
    rejected: list[Rejected] = []
    seen: dict[str, str] = {}
    read = written = 0
    staging_dir.mkdir(parents=True, exist_ok=True)
    batch: list[dict[str, Any]] = []
    try:
        with pq.ParquetWriter(staging_dir / ROWS_FILE, TRANSCRIPT_SCHEMA) as writer:
            for url in files:
                name = Path(url).name
                items = (i for i in sources.read_items(spec, url, day) if _belongs(spec, i, day))
                for item, outcome in parse_items(items, url, day, labels, spec.display_name):
                    read += 1
                    if isinstance(outcome, Rejected):
                        rejected.append(outcome)
                        continue
                    cid = outcome["conversation_id"]
                    if cid in seen:
                        # First occurrence wins; the repeat is kept in quarantine, not lost.
                        reason = f"conversation_id {cid!r} already seen at {seen[cid]}"
                        rejected.append(
                            Rejected(url, item.number, "duplicate_id", reason, item.raw, cid)
                        )
                        continue
                    seen[cid] = f"{name}:{item.number}"
                    batch.append(outcome)
                    if len(batch) >= BATCH_ROWS:
                        writer.write_table(pa.Table.from_pylist(batch, schema=TRANSCRIPT_SCHEMA))
                        written += len(batch)
                        batch = []
            writer.write_table(pa.Table.from_pylist(batch, schema=TRANSCRIPT_SCHEMA))
            written += len(batch)
    except SourceError:
        shutil.rmtree(staging_dir, ignore_errors=True)  # nothing is written for that day
        raise
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
    table = pq.read_table(Path(staged["staging_dir"]) / ROWS_FILE)
    min_rows = min_volume(trailing_rows(lake_root, day)) if lake_root else 1
    labels = sources.load_labels(staged["labels_file"]) if staged.get("labels_file") else None
    # Reports go next to the day's partition, on the same storage (uploaded when remote).
    report_at = lake.partition_path(report_root, day)
    with storage.local_output(report_at) as report_dir:
        outcome = run_suite(
            table,
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
    return publish(validate(staged, cfg.reports, cfg.lake), cfg)

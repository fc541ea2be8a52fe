"""One day's ingest as four steps: discover → normalise → validate → publish.

The Airflow DAG runs each step as a task; :func:`ingest_day` runs them in order for the CLI.
Steps hand over a small JSON-serialisable dict (ml.ingest.results), never data. The staged day
is a folder under `$INTENTFLOW_HOME/staging` when the data root is local; when it is on object
storage, `normalise` uploads it to `<data root>/staging/<day>__<run>/`, so `validate` and
`publish` may run on any worker (publish copies it into the lake within the store).
A source is a configured name (ml.ingest.named_sources), which the DAG's tasks hand each
other: never a path, URL or query typed into a form.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml import lake, storage
from ml.config import (
    Settings,
    max_pii_share,
    quarantine_retention_days,
    settings,
    staging_retention_hours,
)
from ml.ingest import sources
from ml.ingest import staged_day as handover
from ml.ingest.named_sources import resolve
from ml.ingest.normalise import stage_day
from ml.ingest.parse import PII_RULE
from ml.ingest.results import FailedExpectation, Published, Staged, Validated
from ml.ingest.sources import SourceError, SourceSpec
from ml.ingest.staged_day import ROWS_FILE
from ml.ingest.validation import DataQualityError, import_in_background, min_volume, run_suite
from ml.quarantine import QUARANTINE_FILE
from ml.taxonomy import known_intents
from ml.transcript import TRANSCRIPT_SCHEMA

log = logging.getLogger(__name__)

# A day where more than this share of records is quarantined fails its gate: the feed is broken.
MAX_QUARANTINE_SHARE = 0.2
# What the GX suite sees at once (its pandas frame): bounds validation's memory. At most this
# many rows, fewer when rows are long (Arrow bytes of the staged day per row).
VALIDATION_BATCH_ROWS = 1_000_000
VALIDATION_BATCH_BYTES = 256 << 20


def discover(source: str | SourceSpec | None, day: date) -> list[str]:
    """The files of `day` for a source: a configured source's name (None: `default`;
    ml.ingest.named_sources) or a SourceSpec given in code."""
    spec = resolve(source)
    files = sources.discover(spec, day)
    if not files:
        raise SourceError(f"no input files for {day} under {spec.url}")
    log.info("discovered %d file(s) for %s under %s", len(files), day, spec.display_name)
    return files


def normalise(
    files: list[str],
    day: date,
    staging_dir: Path,
    source: str | SourceSpec | None = None,
    upload_to: str | None = None,
) -> Staged:
    """Parse and redact every record; stage the day's rows (one sorted Parquet file) and quarantine.

    `files` are read as files of `source` (as :func:`discover`): a file linked out of the
    source's folder is refused however the list was made.

    Streams: parsed pieces go straight to bucketed run files (ml/ingest/staging.py), merged one
    bucket at a time, so memory does not grow with the feed. Plain JSONL drops take the Arrow
    fast path (ml.ingest.fast_jsonl), in worker processes for a big day; it gives the same rows.

    `staging_dir` is local scratch. With `upload_to` (a URL on object storage, see
    :func:`staging_url_for`) the staged files are uploaded there (replacing a retried run's),
    the scratch is removed, and the staged day's `staging_dir` is the URL.
    """
    spec = resolve(source)
    if upload_to is None:
        return stage_day(files, day, staging_dir, spec)
    try:
        try:
            staged = stage_day(files, day, staging_dir, spec)
        except SourceError:
            handover.remove(upload_to)  # nothing is staged for that day, as locally
            raise
        staged = {**staged, "staging_dir": upload_to}
        handover.upload(staging_dir, upload_to, staged)
        return staged
    finally:  # the next task reads the store; a retry here stages from scratch anyway
        shutil.rmtree(staging_dir, ignore_errors=True)


def trailing_rows(lake_root: storage.Location, day: date, days: int = 7) -> list[int]:
    """Rows written on each of the `days` days before `day` that have a partition."""
    published = lake.manifests(lake_root)  # one read of the table's log
    counts = []
    for d in lake.days_in_window(day - timedelta(days=1), days):
        manifest = published.get(d)
        if manifest is not None and "rows_written" in manifest:
            counts.append(int(manifest["rows_written"]))
    return counts


def validate(
    staged: Staged,
    report_root: storage.Location,
    lake_root: storage.Location | None = None,
    quarantine_root: storage.Location | None = None,
) -> Validated:
    """Run the GX suite on the staged rows; raise DataQualityError when the day fails.

    `lake_root` enables the volume check against the trailing days' partitions. A day that
    fails its gate is not kept staged (rows the gate refused): its quarantine goes to
    `quarantine_root` (default: the configured one), the report says the rest, and the staged
    day is removed; no retry follows (a rerun starts again from `normalise`).
    """
    day = date.fromisoformat(staged["day"])
    # Only what the suite reads: the content hash alone is 64 bytes a row.
    columns = [n for n in TRANSCRIPT_SCHEMA.names if n not in ("content_hash", "subject_keys")]
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
                for b in rows.iter_batches(validation_batch_rows(rows.metadata), columns=columns)
            ),
            day,
            labels or known_intents(),
            report_dir,
            min_rows=min_rows,
            run_name=str(staged["staging_dir"]).rstrip("/").rsplit("/", 1)[-1],
            row_count=rows.metadata.num_rows,
        )
    outcome = storage.rebase_paths(outcome, report_dir, report_at, ("report_path", "data_docs"))
    failed: list[FailedExpectation] = list(outcome.failed)
    share = staged["rows_quarantined"] / staged["rows_read"] if staged["rows_read"] else 0.0
    if share > MAX_QUARANTINE_SHARE:
        failed.append(
            {
                "expectation": "quarantine_share_at_most",
                "column": None,
                "rule": f"at most {MAX_QUARANTINE_SHARE:.0%} of records quarantined "
                f"(this day: {share:.1%})",
                "unexpected_count": staged["rows_quarantined"],
                "ids": [],  # the quarantine lists them, by file and line
            }
        )
    failed += _pii_share(staged)
    result: Validated = {
        **staged,
        "validation_report": outcome.report_path,
        "data_docs": outcome.data_docs,
        "min_rows": min_rows,
        "failed_expectations": failed,
    }
    if failed:
        where = _keep_quarantine(staged, quarantine_root or settings().quarantine, day)
        handover.discard(handover.location(staged))
        # Rules and counts only: Airflow logs this message and the alert carries it.
        names = ", ".join(
            f"{f['expectation']}({f['column'] or ''})={f['unexpected_count']}" for f in failed
        )
        raise DataQualityError(
            f"transcripts {day} failed validation: {names}; report: {outcome.report_path}; "
            f"quarantine: {where}",
            failed,
            outcome.report_path,
        )
    return result


def _keep_quarantine(staged: Staged, root: storage.Location, day: date) -> storage.Location:
    """Write the staged day's quarantine (already redacted) to `root`; purge expired days."""
    with handover.open_file(staged, QUARANTINE_FILE) as source:
        quarantine = pq.read_table(source)
    where = lake.write_quarantine(quarantine, root, day)
    lake.purge_quarantine(root, datetime.now(UTC).date(), quarantine_retention_days())
    return where


def sweep_staging(cfg: Settings) -> list[str]:
    """Remove staged days older than INTENTFLOW_STAGING_RETENTION_HOURS (run before staging)."""
    return handover.sweep(cfg.staging, cfg.staging_store, staging_retention_hours())


def _pii_share(staged: Staged) -> list[FailedExpectation]:
    """Rows with PII left after redaction are quarantined one by one (ml.ingest.parse); past
    INTENTFLOW_MAX_PII_SHARE of the day they are a systemic fault, and the day fails."""
    count = staged["quarantine_rules"].get(PII_RULE, 0)
    limit = max_pii_share()
    share = count / staged["rows_read"] if staged["rows_read"] else 0.0
    if share <= limit:
        return []
    return [
        {
            "expectation": "pii_after_redaction_share_at_most",
            "column": None,
            "rule": f"at most {limit:.1%} of records with PII left after redaction "
            f"(this day: {share:.1%}; INTENTFLOW_MAX_PII_SHARE)",
            "unexpected_count": count,
            "ids": [],  # the quarantine lists them, by file and line
        }
    ]


def validation_batch_rows(meta: pq.FileMetaData) -> int:
    """Rows per GX batch: VALIDATION_BATCH_BYTES of the day's (uncompressed) rows, capped."""
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    per_row = size / meta.num_rows if meta.num_rows else 1
    return max(1, min(VALIDATION_BATCH_ROWS, int(VALIDATION_BATCH_BYTES / max(per_row, 1))))


def publish(validated: Validated, cfg: Settings) -> Published:
    """Commit the staged day to the lake and quarantine tables; remove the staged day.

    The staged file is streamed into the day's one commit (ml.lake.publish_file). The staged
    day is removed only after the commit, so a retry after a crash publishes it again; a retry
    after the removal finds the day committed with the same content and returns it.
    """
    day = date.fromisoformat(validated["day"])
    staging = handover.location(validated)
    if not handover.is_whole(validated):
        done = lake.read_manifest(cfg.lake, day)
        if not done or done.get("content_hash") != validated["content_hash"]:
            raise handover.missing(validated)
        log.info("%s is already published (staged day removed after the commit)", day)
        return _summary(cfg, day, lake.partition_path(cfg.lake, day))
    quarantine_path = _keep_quarantine(validated, cfg.quarantine, day)
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
    handover.discard(staging)
    summary: Published = {
        **_summary(cfg, day, partition),
        "quarantine_file": str(quarantine_path),
    }
    log.info(
        "published %s: %d rows, %d quarantined",
        day,
        summary["rows_written"],
        summary["rows_quarantined"],
    )
    return summary


def _summary(cfg: Settings, day: date, partition: storage.Location) -> Published:
    quarantine = lake.quarantine_path(cfg.quarantine, day)
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


def ingest_day(
    day: date, source: str | SourceSpec | None = None, cfg: Settings | None = None
) -> Published:
    """discover → normalise → validate → publish for one day, as the DAG does; `source` as
    :func:`discover` takes it."""
    cfg = cfg or settings()
    spec = resolve(source, cfg)
    sweep_staging(cfg)
    files = discover(spec, day)
    scratch = staging_dir_for(cfg, day)
    upload_to = staging_url_for(cfg, scratch)
    # Validation's import runs beside normalise (whose workers parse; this process waits).
    gx_import = import_in_background()
    try:
        staged = normalise(files, day, scratch, spec, upload_to)
        gx_import.join()
        return publish(validate(staged, cfg.reports, cfg.lake, cfg.quarantine), cfg)
    except BaseException:
        gx_import.join()  # a half-done import is not left to the interpreter's exit
        # No retry follows here (the DAG retries its tasks): leave no staged day behind.
        for where in (scratch, upload_to):
            if where is not None:
                try:
                    handover.discard(where)
                except Exception as exc:  # the first error is the one to report
                    log.warning("could not remove the staged day at %s: %s", where, exc)
        raise

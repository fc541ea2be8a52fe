"""The normalise step's work: a day's source files become the staged day.

Records are parsed, checked and redacted (plain JSONL in blocks through ml.ingest.fast_jsonl, in
worker processes on a big day; every other format record by record through ml.ingest.parse); rows go
to bucketed run files, merged into the staged day by ml.ingest.staging; bad records go to the
quarantine file as they are found. :func:`ml.ingest.normalise` hands the result on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import shutil
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ml import storage
from ml.config import ingest_workers, settings
from ml.ingest import fast_jsonl as jsonl_arrow
from ml.ingest import sources, staging
from ml.ingest.identifiers import shown_label
from ml.ingest.parse import Rejected, clean_field, parse_items
from ml.ingest.results import Staged
from ml.ingest.sources import Item, SourceError, SourceSpec
from ml.ingest.staged_day import ROWS_FILE
from ml.progress import Progress
from ml.quarantine import QUARANTINE_FILE, QUARANTINE_SCHEMA, redacted_table
from ml.subjects import pii_key
from ml.taxonomy import known_intents

log = logging.getLogger(__name__)

# Rows per run file written by the record-by-record path: bounds memory whatever the feed.
BATCH_ROWS = 20_000
# Quarantined records held before they are written: a day of bad records stays bounded too.
QUARANTINE_BATCH = 10_000
# Bytes of JSONL a fast-path job takes at least (blocks of several small files together), when
# the files hold that much: small enough that the last jobs keep both workers busy.
GROUP_BYTES = 2 << 20


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


def stage_day(files: list[str], day: date, staging_dir: Path, spec: SourceSpec) -> Staged:
    """The day staged in the local folder `staging_dir` (see :func:`ml.ingest.steps.normalise`):
    `files` of the source `spec`, none read from outside its folder."""
    labels = sources.load_labels(spec.labels) if spec.labels else known_intents()
    # Read once for the day and handed to every parser, worker processes included.
    key = pii_key(settings())
    storage.private_folder(staging_dir)  # customer records until publish or a failed gate
    # A retried task reuses its run's folder: runs a killed attempt left must not be merged.
    shutil.rmtree(staging_dir / RUNS_DIR, ignore_errors=True)
    sizes = [_file_bytes(url) for url in files]
    size = sum(sizes)
    stage = _Stage(staging_dir, staging.bucket_count(size))
    try:
        with stage:
            fast = FAST_PATH and jsonl_arrow.fast_path_applies(spec)
            with (
                _block_pool(size if fast else 0) as pool,
                Progress(f"ingest {day}", size / 1e6 or None, "MB") as progress,
            ):
                if fast:
                    _normalise_blocks(stage, spec, files, day, labels, key, pool, progress)
                else:
                    for index, url in enumerate(files):
                        _normalise_items(stage, spec, url, index, day, labels, key)
                        progress.advance(sizes[index] / 1e6, records=stage.read)
                stage.drain()
                # The jobs still parsing when the last bytes were read: their records count too.
                progress.advance(0, records=stage.read)
            with _LineReader(files, spec.url) as lines:
                merged = staging.merge(
                    stage.runs,
                    stage.buckets,
                    staging_dir / ROWS_FILE,
                    files,
                    lines.read,
                    lambda repeats: stage.add(0, repeats),
                )
    except BaseException:  # nothing is written for that day; a retry stages it from scratch
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    if stage.read != merged.rows + stage.quarantined:
        raise AssertionError(
            f"lost records: read {stage.read}, wrote {merged.rows}, quarantined {stage.quarantined}"
        )
    staged: Staged = {
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
        # Flagged for the data owner: labels the taxonomy lacks are quarantined, never trained
        # on; only label-like ones without PII are named (ml.ingest.identifiers.shown_label).
        "new_intents": dict(sorted(stage.new_intents.items())),
    }
    log.info("normalised %s: %s", day, {k: v for k, v in staged.items() if k != "files"})
    return staged


# The Arrow fast path for plain JSONL; False sends every record through ml.ingest.parse (tests compare).
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
        self._key: bytes | None = None

    def __enter__(self) -> _Stage:
        self._writer = pq.ParquetWriter(self.quarantine_file, QUARANTINE_SCHEMA)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is None:
            raise RuntimeError("the stage was closed before it was opened")
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
                self.new_intents[shown_label(_intent_of(r))] += 1
            self._held.append(r.as_row())
        if len(self._held) >= QUARANTINE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._held and self._writer is not None:
            # Redacted as it is written: no raw record reaches even the staged quarantine.
            self._writer.write_table(redacted_table(self._held, self._pii_key))
            self._held = []

    def _pii_key(self) -> bytes:
        if self._key is None:
            self._key = pii_key(settings())
        return self._key

    def drain(self) -> None:
        """Wait for the blocks still being parsed by worker processes."""
        while self.pending:
            self.add(*self.pending.popleft().result())


class _LineReader:
    """Reads back one line of a source file by byte offset (a repeated id's raw record)."""

    def __init__(self, files: list[str], root: str) -> None:
        self.files, self.root = files, root
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
            fh = (
                open(sources.checked_path(self.root, url), "rb")  # noqa: SIM115
                if local
                else sources.open_file(url, self.root)
            )
            self.open[file] = fh
        fh.seek(offset)
        line = fh.readline()
        if offset == 0:  # as ml.ingest.sources.jsonl_item reads it
            line = line.removeprefix(sources.BOM)
        return line.decode("utf-8").rstrip("\r\n")


def _normalise_items(
    stage: _Stage,
    spec: SourceSpec,
    url: str,
    index: int,
    day: date,
    labels: frozenset[str],
    key: bytes,
) -> None:
    """Record by record through ml.ingest.parse (every format)."""
    items = (i for i in sources.read_items(spec, url, day) if _belongs(spec, i, day))
    batch: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for item, outcome in parse_items(items, url, day, labels, spec.display_name, key=key):
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
    files: list[str],
    day: date,
    labels: frozenset[str],
    key: bytes,
    pool: Any,
    progress: Progress,
) -> None:
    """Plain JSONL in blocks through ml.ingest.fast_jsonl; in worker processes when `pool` is given.

    A file's blocks (ml.ingest.fast_jsonl.split_blocks) are gathered, across files, into jobs of
    at least GROUP_BYTES: a day of many small files costs a few dozen jobs, not one per file.
    Each job's rows go to the run files from the process that parsed them. With a pool the
    jobs form one queue, at most two per worker in flight (bounded memory);
    :meth:`_Stage.drain` collects the last ones.
    """
    datas: list[bytes] = []
    pieces: list[jsonl_arrow.Piece] = []

    def submit() -> None:
        job = (spec, day, labels, key, stage.runs, stage.buckets, stage.next_seq())
        job += (b"".join(datas), list(pieces), pool is None)
        datas.clear()
        pieces.clear()
        if pool is None:
            stage.add(*stage_block(*job))
            return
        stage.pending.append(pool.submit(stage_block, *job))
        while len(stage.pending) > 2 * pool._max_workers:
            stage.add(*stage.pending.popleft().result())

    for index, url in enumerate(files):
        with sources.open_file(url, spec.url) as fh:
            try:
                for data, first_line, offset in jsonl_arrow.split_blocks(fh):
                    datas.append(data)
                    pieces.append(jsonl_arrow.Piece(index, url, first_line, offset, len(data)))
                    if sum(p.size for p in pieces) >= GROUP_BYTES:
                        submit()
                    # Bytes handed to a parser (at most two jobs a worker ahead of the count).
                    progress.advance(len(data) / 1e6, records=stage.read)
            except OSError as exc:
                raise SourceError(f"cannot read {url}: {exc}") from exc
    if pieces:
        submit()


def stage_block(
    spec: SourceSpec,
    day: date,
    labels: frozenset[str],
    key: bytes,
    runs: Path,
    buckets: int,
    seq: int,
    data: bytes,
    pieces: list[jsonl_arrow.Piece],
    threads: bool = True,
) -> tuple[int, list[Rejected]]:
    """Parse one job's blocks and write its rows to the runs; (records read, records rejected).

    `threads`: False in a worker process (pyarrow's reader then parses on its own thread)."""
    block = jsonl_arrow.parse_block(
        spec, day, labels, spec.display_name, data, pieces, key, threads
    )
    rows = block.rows
    rows = rows.append_column("raw", pa.nulls(rows.num_rows, pa.string()))
    slow_rows, rejected = [], []
    for index, line, raw, outcome in block.slow:
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            slow_rows.append({**outcome, "file": index, "line": line, "raw": raw})
    rows = rows.select(staging.RUN_SCHEMA.names).cast(staging.RUN_SCHEMA)
    if slow_rows:
        rows = pa.concat_tables([rows, pa.Table.from_pylist(slow_rows, schema=staging.RUN_SCHEMA)])
    staging.write_run(runs, buckets, seq, rows)
    return rows.num_rows + len(rejected), rejected


def _file_bytes(url: str) -> int:
    """A source file's size; 0 when the store cannot say."""
    with contextlib.suppress(OSError):
        return fsspec.core.url_to_fs(url)[0].size(url) or 0
    return 0


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


def _intent_of(rejected: Rejected) -> str:
    """The unknown label of a JSON record, cleaned as its rule saw it."""
    try:
        return clean_field(str(json.loads(rejected.raw).get("intent")))
    except (ValueError, AttributeError):
        return "?"

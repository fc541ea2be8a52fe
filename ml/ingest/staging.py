"""A day's staged rows: bucketed run files, merged into one sorted, de-duplicated Parquet file.

Memory stays bounded whatever the size of the day. Parsed blocks are written as they come
(by the parsing process itself) into run files, split into buckets by a hash of the
conversation id; the merge then takes one bucket at a time: sort by (id, file, line), keep
the first row of each id, quarantine the repeats, and append the rest to the staged file.
That file is the partition, byte for byte: publishing it copies or links it, never re-sorts.

Rows are ordered by (bucket, conversation id). The bucket count comes from the input's size,
so the same input always gives the same file and the same content hash; a day up to
BUCKET_INPUT_BYTES of input is one bucket, ordered by conversation id alone, as
:func:`ml.lake.write_partition` orders an in-memory table.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import lake
from ml.ingest.parse import Rejected
from ml.transcript import TRANSCRIPT_SCHEMA

# Input bytes per bucket: a bucket is sorted in memory (about 3x its input size at the peak).
BUCKET_INPUT_BYTES = 256 << 20
# A staged row carries where it came from: the file (index in the day's list), its line or
# record number, and either the raw record (record-by-record path) or the byte offset of its
# line (JSONL fast path; the raw line is read back only for the rare repeated id).
RUN_SCHEMA = (
    TRANSCRIPT_SCHEMA.append(pa.field("file", pa.int32()))
    .append(pa.field("line", pa.int64()))
    .append(pa.field("offset", pa.int64()))
    .append(pa.field("raw", pa.string()))
)
# Repeated ids turned into quarantine rows at a time (a file delivered twice is all repeats).
REPEATS_BATCH = 50_000
_ORDER = [("conversation_id", "ascending"), ("file", "ascending"), ("line", "ascending")]


def bucket_count(input_bytes: int) -> int:
    return max(1, math.ceil(input_bytes / BUCKET_INPUT_BYTES))


def buckets_of(ids: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """A stable bucket per id: FNV-1a over its length, first and last 8 bytes (vectorised).

    Only spread matters (a skewed bucket costs memory, never correctness); hashing whole ids
    costs a numpy pass per byte of the longest id.
    """
    n = len(ids)
    if count == 1 or n == 0:
        return np.zeros(n, np.int32)
    arr = pc.cast(ids, pa.large_binary())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(n, 2166136261, np.uint32) ^ lengths.astype(np.uint32)
    prime = np.uint32(16777619)
    for k in range(8):
        for pos in (starts + k, starts + lengths - 1 - k):
            live = lengths > k
            h[live] = (h[live] ^ data[pos[live]]) * prime
    return (h % np.uint32(count)).astype(np.int32)


def write_run(folder: Path, buckets: int, seq: int, rows: pa.Table) -> None:
    """Append one piece of the day (RUN_SCHEMA rows) to the bucket runs, as file `seq`."""
    if rows.num_rows == 0:
        return
    which = buckets_of(rows.column("conversation_id"), buckets)
    for b in np.unique(which).tolist():
        part = rows if buckets == 1 else rows.filter(pa.array(which == b))
        out = folder / f"bucket-{b:05d}"
        out.mkdir(parents=True, exist_ok=True)
        # Arrow IPC: read back once, by this machine, memory-mapped (no decoding).
        with pa.ipc.new_file(out / f"{seq:08d}.arrow", RUN_SCHEMA) as sink:
            sink.write_table(part)


@dataclass
class Merged:
    rows: int = 0
    content_hash: str = ""


def merge(
    folder: Path,
    buckets: int,
    out: Path,
    files: list[str],
    raw_line: Callable[[int, int], str],
    reject: Callable[[list[Rejected]], None],
) -> Merged:
    """Merge the runs into `out` bucket by bucket; drop the runs as they are merged.

    `files`: the day's source files in order (a row's `file` indexes it);
    `raw_line(file, offset)` reads back a fast-path line (for a repeated id's quarantine row);
    `reject` takes each bucket's repeats.
    The content hash is sha256 over the rows' content hashes in file order, one per line.
    """
    digest = hashlib.sha256()
    merged = Merged()
    with lake.data_writer(out) as writer:
        for b in range(buckets):
            pieces = sorted((folder / f"bucket-{b:05d}").glob("*.arrow"))
            if not pieces:
                continue
            runs = pa.concat_tables(_mapped(p) for p in pieces).combine_chunks()
            kept = runs.take(_first_of_each_id(runs, files, raw_line, reject))
            del runs
            writer.write_table(
                kept.select(TRANSCRIPT_SCHEMA.names), row_group_size=lake.ROW_GROUP_ROWS
            )
            hashes = kept.column("content_hash").to_pylist()
            digest.update((("\n" if merged.rows else "") + "\n".join(hashes)).encode())
            merged.rows += kept.num_rows
            for p in pieces:
                p.unlink()
    merged.content_hash = digest.hexdigest()
    return merged


def _mapped(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def _first_of_each_id(
    t: pa.Table,
    files: list[str],
    raw_line: Callable[[int, int], str],
    reject: Callable[[list[Rejected]], None],
) -> pa.Array:
    """Indices of `t` in (id, file, line) order, the first row of each id only.

    The others are repeats: quarantined, each naming where its id was seen first.
    """
    keys = t.select(["conversation_id", "file", "line"])
    order = pc.sort_indices(keys, _ORDER)
    ids = keys.column("conversation_id").take(order)
    repeat = np.zeros(len(order), bool)
    if len(order) > 1:
        repeat[1:] = pc.equal(ids.slice(1), ids.slice(0, len(order) - 1)).to_numpy()
    if repeat.any():
        first = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(order))))
        names = [Path(f).name for f in files]
        where = t.select(["conversation_id", "file", "line", "offset", "raw"])
        at = np.flatnonzero(repeat)
        for start in range(0, len(at), REPEATS_BATCH):  # columns in bulk, a batch at a time
            chunk = at[start : start + REPEATS_BATCH]
            got = where.take(order.take(pa.array(chunk))).to_pydict()
            seen = where.select(["file", "line"]).take(order.take(pa.array(first[chunk])))
            reject(
                [
                    Rejected(
                        files[f],
                        line,
                        "duplicate_id",
                        f"conversation_id {cid!r} already seen at {names[sf]}:{sl}",
                        raw if raw is not None else raw_line(f, offset),
                        cid,
                    )
                    for cid, f, line, offset, raw, sf, sl in zip(
                        *got.values(), *seen.to_pydict().values(), strict=True
                    )
                ]
            )
    return order.filter(pa.array(~repeat))

"""The flat formats a labeled file comes in (CSV, JSON lines, Parquet), read record by record
through ingestion's adapters (ml.ingest.sources), and the columns a task reads picked from the
file's own.

Every task type reads its labeled files here, for training (build_dataset) and for scoring
(evaluate) alike: a record comes out as an ingestion Item (its 1-based number, the record as
read, and the record or the RecordError naming the rule it broke), so each task quarantines the
records it cannot use the same way (ml.quarantine.Refusals). Parquet is not an ingestion format:
its rows go through the JSON-lines adapter, one JSON record each, so they are mapped and checked
exactly as a JSONL file's would be.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from ml import storage
from ml.ingest.sources import Item, SourceSpec, jsonl_item, open_file, read_items

log = logging.getLogger(__name__)

# When the named column is the task's default and the file lacks it, the first of these it has
# is used: Banking77 (`text,category`), Bitext (`instruction,...,intent,...,category`), DSTC11
# JSONL (`utterance`, `intent`). `intent` comes before `category`: Bitext's category is a
# coarser label.
TEXT_COLUMNS = ("text", "utterance", "instruction")
LABEL_COLUMNS = ("label", "intent", "category")
DEFAULT_TEXT_COLUMN, DEFAULT_LABEL_COLUMN = TEXT_COLUMNS[0], LABEL_COLUMNS[0]


def data_file(data: Path | str) -> str:
    """What an evaluation reads for `data`: the labeled file (a path or an fsspec URL) itself,
    or a snapshot folder's test split. FileNotFoundError for a local file that is not there."""
    url = str(data)
    if storage.is_remote(storage.location(url)):
        return url
    path = Path(url)
    if path.is_dir():
        path = path / "test.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no labeled data at {path}")
    return str(path)


def file_format(url: str) -> str:
    """csv, jsonl or parquet, by the file's suffix (anything but .jsonl/.json/.ndjson/.parquet
    is read as CSV, as ingestion's static CSV sources are)."""
    suffix = Path(url.rstrip("/")).suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    return "jsonl" if suffix in (".jsonl", ".json", ".ndjson") else "csv"


def columns_of(url: str, fmt: str) -> list[str]:
    """The column names of a flat file: the CSV header, the first JSON line's keys, or the
    Parquet schema's names. ValueError naming the file when it has none."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with open_file(url, url) as fh:
            return list(pq.read_schema(fh).names)
    with open_file(url, url) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
        if fmt == "csv":
            return next(csv.reader(text), [])
        line = next((line for line in text if line.strip()), "")
    try:
        first = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{url}: record 1 is not JSON ({exc.msg})") from None
    if not isinstance(first, dict):
        raise ValueError(f"{url}: record 1 is not a JSON object")
    return list(first)


def pick(where: str, found: list[str], named: str, candidates: tuple[str, ...]) -> str:
    """The column to read: `named` if the file has it; for the default name (`candidates[0]`),
    the first candidate it has. ValueError naming the file and its columns otherwise."""
    if named in found:
        return named
    if named == candidates[0]:
        for candidate in candidates[1:]:
            if candidate in found:
                log.info("%s: no column %r, using %r", where, named, candidate)
                return candidate
    raise ValueError(f"{where}: no column {named!r} (columns: {', '.join(found) or 'none'})")


def items(spec: SourceSpec, url: str) -> Iterator[Item]:
    """Every record of one file of `spec`, in order, as ingestion Items: ingestion's adapters
    for its formats, the JSON-lines adapter for each Parquet row."""
    if spec.format != "parquet":
        # Static sources ignore the day: ingestion's readers take one all the same.
        return read_items(spec, url, date.min)
    return _parquet(spec, url)


def _parquet(spec: SourceSpec, url: str) -> Iterator[Item]:
    import pyarrow.parquet as pq

    stem = Path(url).stem
    with open_file(url, spec.url) as fh:
        number = 0
        for batch in pq.ParquetFile(fh).iter_batches():
            for row in batch.to_pylist():
                number += 1
                line = json.dumps(row, ensure_ascii=False, default=str)
                yield jsonl_item(spec, number, line.encode("utf-8"), stem)


def flat_spec(url: str, columns: dict[str, str] | None = None, name: str | None = None) -> Any:
    """A static source spec reading one flat file (its format by suffix), with ingestion's
    column mapping (`columns`: canonical field -> the file's) or none (records as they are)."""
    return SourceSpec(
        url=url, format=file_format(url), layout="static", columns=dict(columns or {}), name=name
    )

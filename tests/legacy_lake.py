"""A lake in the layout Intentflow wrote before the Delta tables (main at 74e8b01,
ml/lake.py then): what `intentflow lake migrate` (ml.lake_migrate) converts.

    transcripts/dt=DAY/part-00000.parquet + _manifest.json       a local folder
    transcripts/dt=DAY/_manifest.json -> _versions/<id>/part-00000.parquet   object storage
    quarantine/dt=DAY/quarantine.parquet
    predictions/dt=DAY/part-<time>-<id>.parquet
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date

import pyarrow as pa

from ml import storage
from ml.storage import Location


def write_day(root: Location, day: date, table: pa.Table, manifest: dict) -> Location:
    """A day as the old write_partition left it: sorted rows, zstd, the manifest beside."""
    table = table.sort_by("conversation_id")
    hashes = table.column("content_hash").to_pylist()
    manifest = {
        **manifest,
        "rows": table.num_rows,
        "content_hash": hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
    }
    folder = storage.join(root, f"dt={day.isoformat()}")
    if storage.is_remote(folder):
        version = uuid.uuid4().hex
        manifest = {**manifest, "version": version, "previous_version": None}
        data = storage.join(folder, "_versions", version, "part-00000.parquet")
    else:
        data = storage.join(folder, "part-00000.parquet")
    storage.write_parquet(table, data)
    body = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    storage.write_bytes(body.encode(), storage.join(folder, "_manifest.json"))
    return folder


def write_quarantine(root: Location, day: date, table: pa.Table) -> Location:
    where = storage.join(root, f"dt={day.isoformat()}", "quarantine.parquet")
    return storage.write_parquet(table, where)


def write_predictions(root: Location, day: date, table: pa.Table, name: str) -> Location:
    """A flush of the old prediction log; `name`: `<YYYYmmddTHHMMSS>-<12 hex>`, as it named them."""
    return storage.write_parquet(
        table, storage.join(root, f"dt={day.isoformat()}", f"part-{name}.parquet")
    )

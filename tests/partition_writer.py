"""A partition big enough (about a second to write) to kill a writer in the middle of it.

`WRITER` runs as `python -c WRITER ROOT N TAG` (ROOT: a folder or an fsspec URL);
`table(tag, n)` is the same table in this process, to compare with what was read back.
"""

from __future__ import annotations

import pyarrow as pa

WRITER = """
import sys
from datetime import date
import pyarrow as pa
from ml import lake
n, tag = int(sys.argv[2]), sys.argv[3]
ids = [f"{tag}-{i:07d}" for i in range(n)]
table = pa.table({
    "conversation_id": ids,
    "text": [f"text of {i} " * 8 for i in ids],
    "content_hash": [f"{tag}{i:060d}" for i in range(n)],
})
print("writing", flush=True)
lake.write_partition(table, sys.argv[1], date(2026, 11, 22), {"tag": tag})
print("done", flush=True)
"""


def table(tag: str, n: int) -> pa.Table:
    ids = [f"{tag}-{i:07d}" for i in range(n)]
    return pa.table(
        {
            "conversation_id": ids,
            "text": [f"text of {i} " * 8 for i in ids],
            "content_hash": [f"{tag}{i:060d}" for i in range(n)],
        }
    )

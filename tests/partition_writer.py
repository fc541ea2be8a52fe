"""A partition big enough (about a second to write) to kill a writer in the middle of it.

`WRITER` runs as `python -c WRITER ROOT N TAG [STOP]` (ROOT: a folder or an fsspec URL);
`table(tag, n)` is the same table in this process, to compare with what was read back.
STOP, `FUNCTION:N`, stops the writer at a known point of the write, to be killed there: right
before its N-th call of ml.lake's FUNCTION it prints "stopped" and waits (for the SIGKILL).
Without it the writer prints "done" when the write returns.
"""

from __future__ import annotations

import pyarrow as pa

WRITER = """
import sys, threading
from datetime import date
import pyarrow as pa
from ml import lake
n, tag = int(sys.argv[2]), sys.argv[3]
if len(sys.argv) > 4:
    name, nth = sys.argv[4].split(":")
    real, calls = getattr(lake, name), []
    def stop_at_nth_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == int(nth):
            print("stopped", flush=True)
            threading.Event().wait()
        return real(*args, **kwargs)
    setattr(lake, name, stop_at_nth_call)
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

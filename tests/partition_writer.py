"""A day big enough (about a second to publish) to kill a writer in the middle of it.

`WRITER` runs as `python -c WRITER ROOT N TAG [STOP] [DAY]` (ROOT: a folder or an s3:// URL);
`table(tag, n)` is the same table in this process, to compare with what was read back.
STOP, `MODULE.FUNCTION:N` (a module of ml, e.g. `delta.commit:1`), stops the writer at a
known point of the publish, to be killed there: right before its N-th call of that function it
prints "stopped" and waits (for the SIGKILL). `-` or no STOP: the writer prints "done" when
the publish returns.
"""

from __future__ import annotations

import pyarrow as pa

WRITER = """
import importlib, sys, threading
from datetime import date
import pyarrow as pa
from ml import lake
n, tag = int(sys.argv[2]), sys.argv[3]
stop = sys.argv[4] if len(sys.argv) > 4 else "-"
day = date.fromisoformat(sys.argv[5]) if len(sys.argv) > 5 else date(2026, 11, 22)
if stop != "-":
    where, nth = stop.split(":")
    module_name, name = where.rsplit(".", 1)
    module = importlib.import_module(f"ml.{module_name}")
    real, calls = getattr(module, name), []
    def stop_at_nth_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == int(nth):
            print("stopped", flush=True)
            threading.Event().wait()
        return real(*args, **kwargs)
    setattr(module, name, stop_at_nth_call)
ids = [f"{tag}-{i:07d}" for i in range(n)]
table = pa.table({
    "conversation_id": ids,
    "text": [f"text of {i} " * 8 for i in ids],
    "content_hash": [f"{tag}{i:060d}" for i in range(n)],
})
print("writing", flush=True)
lake.write_partition(table, sys.argv[1], day, {"tag": tag})
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

"""Publishing and reading one lake partition: local folder (rename exchange, the baseline)
against object storage (write-beside-then-commit) on fsspec's memory:// and on moto's S3
server, in the same run.

    PYTHONPATH=. python bench/lake_publish.py [--rows 200000] [--repeat 3]

moto is a local stand-in for S3: its figures show the protocol's own cost (extra requests,
the upload through HTTP), not a real bucket's latency. Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ml import lake  # noqa: E402

DAY = date(2026, 11, 22)


def table(rows: int) -> pa.Table:
    ids = [f"c{i:09d}" for i in range(rows)]
    return pa.table(
        {
            "conversation_id": ids,
            "text": [f"my card was stolen, order {i} please help" for i in range(rows)],
            "content_hash": [f"{i:064d}" for i in range(rows)],
        }
    )


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(root, t: pa.Table, repeat: int) -> dict[str, float]:
    lake.write_partition(t, root, DAY, {})  # first write: the rest replace a partition
    return {
        "publish": timed(lambda: lake.write_partition(t, root, DAY, {}), repeat),
        "read": timed(lambda: lake.read_partition(root, DAY), repeat),
        "list": timed(lambda: lake.list_partitions(root), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from s3_server import make_bucket, moto_server, s3_env

    t = table(args.rows)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["local folder (baseline)"] = measure(Path(tmp) / "lake", t, args.repeat)
    results["memory://"] = measure(f"memory://bench-{uuid.uuid4().hex}/lake", t, args.repeat)
    with moto_server() as endpoint:
        os.environ.update(s3_env(endpoint))
        results["s3:// (moto server)"] = measure(f"{make_bucket()}/lake", t, args.repeat)

    base = results["local folder (baseline)"]
    print(f"\none partition of {args.rows:,} rows, median of {args.repeat}")
    print(f"{'storage':<26}{'publish s':>10}{'ratio':>7}{'read s':>9}{'ratio':>7}{'list s':>9}")
    for name, r in results.items():
        print(
            f"{name:<26}{r['publish']:>10.3f}{r['publish'] / base['publish']:>7.2f}"
            f"{r['read']:>9.3f}{r['read'] / base['read']:>7.2f}{r['list']:>9.4f}"
        )


if __name__ == "__main__":
    main()

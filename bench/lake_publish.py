"""Publishing and reading one lake day: this tree against a baseline tree (another checkout,
e.g. a `git worktree` of main before the Delta tables), interleaved in the same run.

    PYTHONPATH=. python bench/lake_publish.py [--baseline TREE | --baseline-ref 74e8b01]
        [--rows 1000000] [--repeat 3] [--rounds 2]

Each measurement runs in its own process with PYTHONPATH set to its tree, on the same
generated day (transcript rows: turns, text, content hash, subject keys): `write_partition`
of the in-memory day (the first write, then `--repeat` replacements; the median) and
`read_partition` of it (median of `--repeat`). Rounds alternate baseline and this tree, so a
load change on the machine hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_tree import DEFAULT_REF, baseline_tree  # noqa: E402

HERE = Path(__file__).resolve().parent.parent

# Runs inside the measured tree: prints {"publish": s, "read": s, "rows": n}.
MEASURE = r"""
import json, statistics, sys, time
from datetime import UTC, date, datetime
import pyarrow as pa
import pyarrow.compute as pc
from ml import lake
from ml.transcript import TRANSCRIPT_SCHEMA

root, rows, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
day = date(2026, 11, 22)
i = pa.array(range(rows), pa.int64())
ids = pc.binary_join_element_wise("c", pc.cast(i, pa.string()), "")
text = pc.binary_join_element_wise("my card was stolen, order ", pc.cast(i, pa.string()), " please help", "")
turn = pa.StructArray.from_arrays([pa.array(["customer"] * rows), text], names=["speaker", "text"])
offsets = pa.array(range(0, rows + 1), pa.int32())
table = pa.Table.from_arrays(
    [
        ids,
        pa.array(["chat-export"] * rows),
        pa.array([datetime(2026, 11, 22, 9, tzinfo=UTC)] * rows, pa.timestamp("us", tz="UTC")),
        pa.array(["chat"] * rows),
        pa.array(["en"] * rows),
        pa.ListArray.from_arrays(offsets, turn),
        pa.array(["lost_card", "refund_request", None, "order_status"] * (rows // 4) + [None] * (rows % 4)),
        text,
        pc.binary_join_element_wise(pc.utf8_lpad(pc.cast(i, pa.string()), 64, "0"), ""),
        pa.ListArray.from_arrays(offsets, pa.array(["k"] * rows)),
    ],
    schema=TRANSCRIPT_SCHEMA,
)

def timed(fn):
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)

lake.write_partition(table, root, day, {})  # the first write; the rest replace the day
publish = timed(lambda: lake.write_partition(table, root, day, {}))
read = timed(lambda: lake.read_partition(root, day))
assert lake.read_partition(root, day).num_rows == rows
print(json.dumps({"publish": publish, "read": read, "rows": rows}))
"""


def measure(tree: Path, rows: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lake-bench-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, f"{tmp}/lake", str(rows), str(repeat)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="the baseline tree (default: a worktree)")
    parser.add_argument("--baseline-ref", default=DEFAULT_REF, help="its commit, if no tree")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
    with baseline_tree(args.baseline, args.baseline_ref) as baseline:
        for _ in range(args.rounds):
            runs["baseline"].append(measure(baseline, args.rows, args.repeat))
            runs["this tree"].append(measure(HERE, args.rows, args.repeat))
    base = {k: statistics.median(r[k] for r in runs["baseline"]) for k in ("publish", "read")}
    print(f"one day of {args.rows:,} rows, median of {args.repeat} x {args.rounds} rounds")
    print(f"{'tree':<12}{'publish s':>10}{'ratio':>7}{'read s':>9}{'ratio':>7}{'both':>7}")
    for name, found in runs.items():
        pub = statistics.median(r["publish"] for r in found)
        read = statistics.median(r["read"] for r in found)
        both = (pub + read) / (base["publish"] + base["read"])
        print(
            f"{name:<12}{pub:>10.3f}{pub / base['publish']:>7.2f}{read:>9.3f}"
            f"{read / base['read']:>7.2f}{both:>7.2f}"
        )
    print(json.dumps(runs))


if __name__ == "__main__":
    main()

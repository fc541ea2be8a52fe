"""Training engine benchmark (#21): the Trainer-based loop against a baseline tree's hand-written
one, interleaved in one run on the same data, each training in its own process.

    git archive 74e8b01 | tar -x -C /tmp/engine-base     # the baseline: main before #21
    python bench/engine.py --baseline /tmp/engine-base --rows 1200 --pairs 3

Each training is intent fine-tuning of the default base model (MiniLM-L6) on the first
`--rows` rows of our Banking77 train split (sha256 split of the public train file), one epoch,
the shipped defaults otherwise. Runs alternate A B B A A B ... so load drift hits both alike.
Reported per run: samples/s over the training steps (what metrics.json records), process CPU
seconds (user + sys) and wall seconds; then the new/old ratio of the medians. The machine's
load average is printed before and after: on a shared machine the figures are noisy.

Data: ../shared/datasets/banking77 (PolyAI Banking77, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", "/work/shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def worker(snapshot: Path, threads: int | None) -> None:
    """One training in this process (the tree on PYTHONPATH); prints its figures."""
    import ml
    import ml.tasks.intent.train as intent
    from ml.tasks.intent.train import TrainConfig, fine_tune

    # The same clock on both trees: each tree's own samples/s is timed differently (main's
    # loop summed per-batch intervals, collate to optimizer step; the Trainer's is the epoch's
    # wall from the first loss to validation), so the engine is also timed here, from outside:
    # the whole train_epochs call (optimizer set-up, every step, keeping the best epoch,
    # checkpoints) less the validation passes, which are the task's and the same on both.
    timed: dict[str, float] = {"wall": 0.0, "cpu": 0.0, "val_wall": 0.0, "val_cpu": 0.0}
    engine = intent.train_epochs

    def train_epochs(model: Any, train: Any, config: Any, loop: Any, *a: Any, **kw: Any) -> Any:
        validate = loop.validate

        def timed_validate(m: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return validate(m)
            finally:
                timed["val_wall"] += time.perf_counter() - wall
                timed["val_cpu"] += time.process_time() - cpu

        loop.validate = timed_validate
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = engine(model, train, config, loop, *a, **kw)
        timed["wall"] += time.perf_counter() - wall
        timed["cpu"] += time.process_time() - cpu
        timed["samples"] = len(train.lengths) * outcome.epochs_run
        return outcome

    intent.train_epochs = train_epochs
    config = TrainConfig(epochs=1, early_stopping_patience=None, num_threads=threads)
    out = Path(tempfile.mkdtemp(prefix="bench-engine-")) / "model"
    started = time.perf_counter()
    trained = fine_tune(snapshot, out, config)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    train_wall = timed["wall"] - timed["val_wall"]
    result = {
        "tree": str(Path(ml.__file__).parent.parent),
        "samples_per_second": trained["samples_per_second"],
        "engine_samples_per_second": timed["samples"] / train_wall,
        "engine_wall_seconds": train_wall,
        "engine_cpu_seconds": timed["cpu"] - timed["val_cpu"],
        "validation_accuracy": trained["validation"]["accuracy"],
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(result))


def run(tree: Path, snapshot: Path, threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--snapshot", str(snapshot)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(tree), "INTENTFLOW_PROGRESS": "off"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if out.returncode != 0:
        raise RuntimeError(f"{tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.split("RESULT ", 1)[1])


def snapshot_of(rows: int, root: Path) -> Path:
    """Our split of Banking77's train file, its train split cut to `rows` rows."""
    import pyarrow.parquet as pq

    from ml.snapshots.labeled import snapshot_from_file

    snap = Path(
        snapshot_from_file(SHARED / "banking77" / "train.csv", root, "text", "category")["path"]
    )
    small = root / f"first{rows}"
    small.mkdir(exist_ok=True)
    for name in ("train", "validation", "test"):
        table = pq.read_table(snap / f"{name}.parquet")
        pq.write_table(
            table.slice(0, rows if name == "train" else rows // 4), small / f"{name}.parquet"
        )
    (small / "snapshot.json").write_text((snap / "snapshot.json").read_text())
    return small


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="the baseline tree (e.g. main, unpacked)")
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads; default: ml.threads"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the tree to measure is first on PYTHONPATH (run() sets it)
        worker(args.snapshot, args.threads)
        return
    sys.path.insert(0, str(REPO))  # the driver builds the data with this tree's ml
    if args.baseline is None:
        parser.error("--baseline is required")
    snapshot = snapshot_of(args.rows, Path(tempfile.mkdtemp(prefix="bench-engine-data-")))
    print("load before:", os.getloadavg(), flush=True)
    trees = {"new": REPO, "old": args.baseline.resolve()}
    order = [("new", "old") if i % 2 == 0 else ("old", "new") for i in range(args.pairs)]
    results: dict[str, list[dict[str, Any]]] = {"new": [], "old": []}
    for first, second in order:
        for name in (first, second):
            result = run(trees[name], snapshot, args.threads)
            if Path(result["tree"]).resolve() != trees[name]:
                raise RuntimeError(f"{name} ran {result['tree']}, not {trees[name]}")
            results[name].append(result)
            print(
                f"{name}: own {result['samples_per_second']:.2f} samples/s, engine "
                f"{result['engine_samples_per_second']:.2f} samples/s "
                f"({result['engine_wall_seconds']:.1f} s, {result['engine_cpu_seconds']:.1f} CPU-s), "
                f"process {result['cpu_seconds']:.0f} CPU-s, {result['wall_seconds']:.0f} s wall, "
                f"val acc {result['validation_accuracy']:.4f}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print("load after:", os.getloadavg())
    for key, label in (
        ("samples_per_second", "own samples/s"),
        ("engine_samples_per_second", "engine samples/s"),
        ("engine_cpu_seconds", "engine CPU-s"),
    ):
        med = {k: statistics.median(r[key] for r in v) for k, v in results.items()}
        print(
            f"median {label}: new {med['new']:.2f}, old {med['old']:.2f}, "
            f"new/old {med['new'] / med['old']:.3f}"
        )
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main()

"""Ingest throughput: the full path (parse → redact → validate → write) against a plain
pyarrow JSONL → Parquet conversion of the same files, in the same run.

    PYTHONPATH=. python bench/ingest.py [--rows 1000000] [--files 10]

Each path runs in its own process; its peak memory is the largest sum of RSS over that
process and its workers (sampled every 20 ms; at least the process's own VmHWM), its CPU
time that of all of them.
Targets (issue 3): full path ≥ 1/3 of the plain conversion's rows/s, ≥ 20,000 transcripts/s
on 2 cores, peak memory under 2 GB whatever the file size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

DAY = date(2026, 11, 22)
TEMPLATES = (
    "my card was stolen yesterday, please block it",
    "where is my order {order}? it was due on monday",
    "I want a refund for the broken kettle, mail me at {email}",
    "can you call me back on {phone} about my bill",
    "please update my card to {card}, the old one expired",
    "hi, my name is {name} and I cannot log in",
    "I need an invoice for last month",
    "the promo code does not work at checkout",
)
INTENTS = ("lost_card", "order_status", "refund_request", "schedule_callback",
           "update_payment_method", "password_reset", "invoice_request", "promo_code")  # fmt: skip


def write_feed(folder: Path, rows: int, files: int, seed: int = 0) -> int:
    """`rows` one-turn transcripts for DAY in `files` JSONL files; returns bytes written."""
    rng = random.Random(seed)
    day_dir = folder / DAY.isoformat()
    day_dir.mkdir(parents=True)
    per_file = -(-rows // files)
    size = 0
    for f in range(files):
        path = day_dir / f"part-{f:03d}.jsonl"
        with path.open("w") as out:  # line by line: this process stays small (see measure)
            for i in range(f * per_file, min(rows, (f + 1) * per_file)):
                k = rng.randrange(len(TEMPLATES))
                text = TEMPLATES[k].format(
                    order=f"ORD-{rng.randrange(10**8):08d}",
                    email=f"user{i}@example.com",
                    phone=f"+44 20 7946 0{rng.randrange(1000):03d}",
                    card="4111 1111 1111 1111",
                    name=rng.choice(("Ann Lee", "Tom Hart", "Maria Rossi")),
                )
                record = {
                    "conversation_id": f"c{i:08d}",
                    "started_at": f"2026-11-22T{i % 24:02d}:{i % 60:02d}:00Z",
                    "channel": "chat",
                    "language": "en",
                    "intent": INTENTS[k],
                    "turns": [{"speaker": "customer", "text": text}],
                }
                out.write(json.dumps(record) + "\n")
        size += path.stat().st_size
    return size


def run_plain(feed: Path, out: Path) -> int:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    n = 0
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((feed / DAY.isoformat()).glob("*.jsonl"))):
        table = pj.read_json(path)
        pq.write_table(table, out / f"part-{i:03d}.parquet", compression="zstd")
        n += table.num_rows
    return n


def run_full(feed: Path, home: Path) -> tuple[int, dict[str, float]]:
    """ml.ingest.steps.ingest_day's steps, each timed (the GX import on its own: a fixed cost)."""
    os.environ["INTENTFLOW_HOME"] = str(home)
    from ml.config import settings
    from ml.ingest import steps as ingest
    from ml.ingest.sources import SourceSpec

    cfg, steps = settings(), {}
    t = time.perf_counter()
    files = ingest.discover(SourceSpec(str(feed)), DAY)
    staged = ingest.normalise(files, DAY, ingest.staging_dir_for(cfg, DAY), SourceSpec(str(feed)))
    steps["parse, redact, stage"] = time.perf_counter() - t
    t = time.perf_counter()
    import great_expectations  # noqa: F401  (validate would import it)

    steps["import GX"] = time.perf_counter() - t
    t = time.perf_counter()
    validated = ingest.validate(staged, cfg.reports, cfg.lake)
    steps["validate (GX)"] = time.perf_counter() - t
    t = time.perf_counter()
    ingest.publish(validated, cfg)
    steps["publish"] = time.perf_counter() - t
    return staged["rows_read"], steps


def child(stage: str, feed: Path, out: Path) -> None:
    start = time.perf_counter()
    steps: dict[str, float] = {}
    if stage == "plain":
        rows = run_plain(feed, out)
    else:
        rows, steps = run_full(feed, out)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "steps": steps, "hwm_mb": _hwm_mb()}))


def _hwm_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux folds the RSS of the process
    that forked us into it at exec, so it would report the bench's own memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(stage: str, feed: Path, out: Path) -> dict:
    """Run a path in its own process; peak memory is that of its whole process tree."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", stage, str(feed), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
    )
    peak, done = [0], threading.Event()

    def sample() -> None:
        # Sum of RSS over the child and its worker processes, every 20 ms.
        tree = psutil.Process(proc.pid)
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                total = sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])
                peak[0] = max(peak[0], total)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"{stage} failed (status {status})")
    result = json.loads(output.strip().splitlines()[-1])
    # The sampled sum may miss a spike shorter than 20 ms; the main process's own peak may not.
    result["peak_mb"] = max(peak[0] / 2**20, result["hwm_mb"])
    # CPU seconds of the child and its workers (all threads): fair when the machine is shared.
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--child", nargs=3, metavar=("STAGE", "FEED", "OUT"))
    args = ap.parse_args()
    if args.child:
        stage, feed, out = args.child
        child(stage, Path(feed), Path(out))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        t0 = time.perf_counter()
        size = write_feed(tmp / "feed", args.rows, args.files)
        print(
            f"{args.rows:,} one-turn transcripts in {args.files} JSONL files "
            f"({size / 1e6:,.0f} MB), written in {time.perf_counter() - t0:.1f}s; "
            f"{os.cpu_count()} CPUs, shared machine: figures are noisy"
        )
        plain = measure("plain", tmp / "feed", tmp / "plain")
        full = measure("full", tmp / "feed", tmp / "home")
        print(
            f"{'path':<44} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'CPU s':>7} "
            f"{'rows/CPU s':>10} {'peak MB':>8}"
        )
        for name, r in (
            ("plain pyarrow JSONL -> Parquet (baseline)", plain),
            ("full: parse, redact, validate (GX), write", full),
        ):
            rate = r["rows"] / r["seconds"]
            print(
                f"{name:<44} {r['rows']:>10,} {r['seconds']:>8.1f} {rate:>9,.0f} "
                f"{r['cpu_s']:>7.1f} {r['rows'] / r['cpu_s']:>10,.0f} {r['peak_mb']:>8,.0f}"
            )
        ratio = (full["rows"] / full["seconds"]) / (plain["rows"] / plain["seconds"])
        cpu_ratio = plain["cpu_s"] / full["cpu_s"]
        print(f"full / plain rows per second: {ratio:.2f} (target >= 0.33)")
        print(f"full / plain rows per CPU second: {cpu_ratio:.2f}")
        print("full path by step (seconds): " + ", ".join(
            f"{name} {sec:.1f}" for name, sec in full["steps"].items()
        ))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

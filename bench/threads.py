"""Training beside a busy neighbour: the old thread policy against ml.threads', same run.

    python bench/threads.py                    # 40 steps, 1 competing process
    python bench/threads.py --steps 60 --competitors 2 --repeats 2

Fine-tunes the real MiniLM-L6 (ml.config.default_base_model) with `fine_tune`, the code path
`intentflow train` runs, for a fixed number of steps (batch 32) on short synthetic texts,
each run in its own process: quiet, then beside CPU-bound busy loops (`--competitors`), for

- old: torch loaded before `ml` (OpenMP's default wait policy: idle threads spin at every
  barrier before they sleep) and os.cpu_count() threads, what training did before;
- new: ml.threads' policy (OMP_WAIT_POLICY=PASSIVE, threads = CPUs this process may use).

Prints samples/s (train steps only, validation left out), the share of its quiet speed each
keeps under load, and new/old. The machine's load average is printed with the figures: on a
shared machine "quiet" is only as quiet as the neighbours, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("INTENTFLOW_PROGRESS", "off")

POLICIES = ("old", "new")
BUSY_LOOP = "while True: pass"
WORDS = "card refund order delivery password account transfer balance fee limit".split()


def synthetic_csv(path: Path, rows: int) -> Path:
    """Short customer-like texts (10-15 tokens) over 10 labels; no real customer text."""
    lines = ["text,label"]
    for i in range(rows):
        label = WORDS[i % len(WORDS)]
        lines.append(
            f"hello i need help with my {label} number {i} it is not working today,{label}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def worker(policy: str, snapshot: Path, steps: int) -> None:
    """One training in this process under `policy`; prints its figures as a RESULT line."""
    if policy == "old":
        import torch  # before ml: OpenMP starts with its default (spinning) wait policy

        torch.set_num_threads(os.cpu_count() or 1)
    from ml.tasks.intent.train import TrainConfig, fine_tune

    config = TrainConfig(
        epochs=1,
        max_steps=steps,
        batch_size=32,
        early_stopping_patience=None,
        num_threads=(os.cpu_count() or 1) if policy == "old" else None,
    )
    out = Path(tempfile.mkdtemp(prefix="bench-threads-")) / "model"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    trained = fine_tune(snapshot, out, config)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    result = {
        "samples_per_second": trained["samples_per_second"],
        "threads": trained["config"]["num_threads"],
        "cpu_per_wall": cpu / trained["wall_seconds"],
    }
    print("RESULT " + json.dumps(result))


def run_worker(policy: str, snapshot: Path, steps: int, competitors: int) -> dict[str, Any]:
    """The policy's training in a fresh process, beside `competitors` busy loops."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_WAIT_POLICY", None)  # each policy decides it
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(competitors)]
    try:
        load = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--worker", policy, "--snapshot", str(snapshot)]
        out = subprocess.run([*cmd, "--steps", str(steps)], capture_output=True, text=True, env=env)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if out.returncode != 0:
        raise RuntimeError(f"{policy} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.split("RESULT ", 1)[1]), "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per training")
    parser.add_argument("--competitors", type=int, default=1, help="busy-loop processes")
    parser.add_argument("--repeats", type=int, default=1, help="rounds (medians are shown)")
    parser.add_argument("--worker", choices=POLICIES, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.snapshot, args.steps)
        return

    from ml.snapshots.labeled import snapshot_from_file

    root = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    # 80% of the rows train: one epoch of `steps` batches of 32.
    csv = synthetic_csv(root / "texts.csv", args.steps * 40)
    snapshot = Path(snapshot_from_file(csv, root / "snapshots", "text", "label")["path"])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    # Interleaved, so a neighbour's burst on the shared machine hits every cell alike.
    for _ in range(args.repeats):
        for competitors in (0, args.competitors):
            for policy in POLICIES:
                r = run_worker(policy, snapshot, args.steps, competitors)
                results.setdefault((policy, competitors), []).append(r)
                print(
                    f"  {policy:<4} competitors {competitors}: {r['samples_per_second']:6.1f} "
                    f"samples/s, {r['threads']} threads, {r['cpu_per_wall']:.2f} CPUs busy, "
                    f"load {r['load']:.1f}",
                    flush=True,
                )

    def median(policy: str, competitors: int, key: str = "samples_per_second") -> float:
        values = sorted(r[key] for r in results[(policy, competitors)])
        return values[len(values) // 2]

    print(
        f"\nMiniLM-L6, {args.steps} steps of batch 32, {os.cpu_count()} CPUs, "
        f"{args.competitors} busy process(es), {started}; load average now "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(f"{'policy':<8}{'threads':>8}{'quiet':>10}{'busy':>10}{'busy/quiet':>12}{'load':>7}")
    for policy in POLICIES:
        quiet, busy = median(policy, 0), median(policy, args.competitors)
        threads = results[(policy, 0)][0]["threads"]
        print(
            f"{policy:<8}{threads:>8}{quiet:>10.1f}{busy:>10.1f}{busy / quiet:>12.2f}"
            f"{median(policy, args.competitors, 'load'):>7.1f}"
        )
    for competitors, name in ((0, "quiet"), (args.competitors, "busy")):
        ratio = median("new", competitors) / median("old", competitors)
        print(f"new/old {name}: {ratio:.2f}x")
    print(f"(samples/s: median of {args.repeats}; scratch files in {root})")


if __name__ == "__main__":
    main()

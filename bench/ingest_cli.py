"""`intentflow ingest` end to end on a day of `intentflow generate` output: this tree against a
baseline tree (another checkout), alternately, in the same run.

    PYTHONPATH=. python bench/ingest_cli.py [--baseline TREE | --baseline-ref 74e8b01]
        [--per-day 200000] [--rounds 2]

The day is generated once (multi-turn transcripts, broken records included). Each run is the
CLI in a fresh process and a fresh INTENTFLOW_HOME (its PII key fixed): wall seconds, CPU
seconds of the command and its workers, and transcripts (records read) per wall second.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_tree import DEFAULT_REF, baseline_tree  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
DAY = "2026-11-22"


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(tree: Path, raw: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as home:
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "PYTHONDONTWRITEBYTECODE": "1",
            "INTENTFLOW_HOME": home,
            "INTENTFLOW_PII_KEY": "bench-key",
            "HF_HUB_OFFLINE": "1",
        }
        cpu, start = cpu_children(), time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ml.cli", "ingest", "--date", DAY, "--path", str(raw), "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            check=True,
        )
        wall, cpu = time.perf_counter() - start, cpu_children() - cpu
    result = json.loads(done.stdout)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows_read": result["rows_read"],
        "rows_quarantined": result["rows_quarantined"],
        "per_s": result["rows_read"] / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="the baseline tree (default: a worktree)")
    parser.add_argument("--baseline-ref", default=DEFAULT_REF, help="its commit, if no tree")
    parser.add_argument("--per-day", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-raw-") as tmp:
        raw = Path(tmp) / "raw"
        subprocess.run(
            [sys.executable, "-m", "ml.cli", "generate", "--out", str(raw), "--days", "1",
             "--per-day", str(args.per_day), "--start", DAY, "--seed", "1"],
            check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(HERE)},
        )  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
        with baseline_tree(args.baseline, args.baseline_ref) as baseline:
            for _ in range(args.rounds):
                runs["baseline"].append(run(baseline, raw))
                runs["this tree"].append(run(HERE, raw))
    print(f"intentflow ingest, one generated day of {args.per_day:,} records")
    print(f"{'tree':<12}{'wall s':>16}{'CPU s':>16}{'transcripts/s':>22}")
    for name, found in runs.items():
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in found)
        cpus = ", ".join(f"{r['cpu_s']:.1f}" for r in found)
        rates = ", ".join(f"{r['per_s']:,.0f}" for r in found)
        print(f"{name:<12}{walls:>16}{cpus:>16}{rates:>22}")
    print(json.dumps(runs))


if __name__ == "__main__":
    main()

"""Parse time of each DAG file, as the dag-processor pays it, against a one-task DAG (the
baseline) parsed the same way in the same run.

    PYTHONPATH=. python bench/dag_parse.py [--repeat 5]

Each parse runs in a fresh interpreter after Airflow itself is imported (the dag-processor has
it loaded already), so the figure is the file's own cost: its imports and its DAG objects.
Medians of `--repeat` parses. tests/dags/test_dags.py checks what must hold (no heavy import at
parse time); the seconds are this table's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
# Well under Airflow's dagbag_import_timeout (30 s): the dag-processor reparses every file often.
BUDGET_SECONDS = 1.0

PROBE = """
import json, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""

BASELINE = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def baseline():
    @task
    def one() -> None:
        pass

    one()


baseline()
"""


def parse(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_parse(path: Path, repeat: int) -> tuple[float, int, int]:
    runs = [parse(path) for _ in range(repeat)]
    return statistics.median(r["seconds"] for r in runs), runs[0]["dags"], runs[0]["errors"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dag-parse-") as tmp:
        baseline = Path(tmp) / "baseline.py"
        baseline.write_text(BASELINE)
        base, _, _ = median_parse(baseline, args.repeat)
        rows = [("one-task DAG (baseline)", base, 1, 0)]
        for path in sorted(DAGS.glob("*.py")):
            rows.append((path.name, *median_parse(path, args.repeat)))
    print(f"| file | DAGs | errors | parse s (median of {args.repeat}) | x baseline | budget |")
    print("|---|---:|---:|---:|---:|---|")
    for name, seconds, dags, errors in rows:
        within = "ok" if seconds < BUDGET_SECONDS else f"OVER {BUDGET_SECONDS:.0f} s"
        print(f"| {name} | {dags} | {errors} | {seconds:.3f} | {seconds / base:.1f} | {within} |")


if __name__ == "__main__":
    main()

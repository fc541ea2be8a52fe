"""
### Intent retrain

Nightly (or from the trigger form): fine-tune the intent model on the last days of
transcripts, compare it with the champion on the same test split, register it, and promote
it when the promotion policy says it is better.

| task | does |
|---|---|
| `snapshot` | freezes the window of lake partitions into train/validation/test (split by conversation id, content-hashed) |
| `fine_tune` | trains from the base model on the `gpu` queue and pool (CUDA when the worker has it; else the CPU, or a failure where `INTENTFLOW_REQUIRE_GPU` is set) |
| `evaluate` | accuracy, macro-F1 and per-class scores on the test split, for the new model and the champion |
| `register` | a new version in the registry with its metrics, artifact sha256 and lineage |
| `promote` | moves `champion` to the new version when the policy allows; otherwise it becomes `challenger` |

Leave a param empty to use the library default.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from ml.config import gpus_per_training


def _window_end(params: dict, data_interval_end, run_after) -> str:
    # The window ends the day before the run: the last day whose drop is complete.
    if params.get("end_date"):
        return params["end_date"]
    return ((data_interval_end or run_after) - timedelta(days=1)).date().isoformat()


@dag(
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # One run at a time by default; a GPU cluster may allow more: the `gpu` pool still bounds
    # concurrent trainings to one per GPU.
    max_active_runs=int(os.environ.get("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS", "1")),
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "window_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=366,
            description="Days of transcripts to train on, ending the day before the run.",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last day of the window (YYYY-MM-DD); empty: the day before the run.",
        ),
        "base_model": Param(
            None,
            type=["null", "string"],
            description="Local Hugging Face checkpoint directory; empty: INTENTFLOW_BASE_MODEL or the packaged MiniLM-L6.",
        ),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=100,
            description="Training epochs; empty: the library default.",
        ),
        "learning_rate": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            description="Peak AdamW learning rate; empty: the library default.",
        ),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1024,
            description="Examples per step; empty: the library default.",
        ),
    },
    tags=["intentflow", "training"],
    doc_md=__doc__,
)
def intent_retrain():
    @task
    def snapshot(params: dict | None = None, data_interval_end=None, dag_run=None) -> dict:
        from datetime import date

        from ml.retrain import snapshot_step

        end = date.fromisoformat(_window_end(params, data_interval_end, dag_run.run_after))
        return snapshot_step(end, params["window_days"])

    # A training on N GPUs (INTENTFLOW_GPUS_PER_TRAINING) takes N slots of the GPU-sized pool.
    @task(queue="gpu", pool="gpu", pool_slots=gpus_per_training())
    def fine_tune(snap: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        from ml.retrain import train_step

        return train_step(snap, params, run_id)

    @task
    def evaluate(snap: dict, trained: dict) -> dict:
        from ml.retrain import evaluate_step

        return evaluate_step(snap, trained)

    @task
    def register(snap: dict, trained: dict, evaluation: dict, dag_run=None) -> dict:
        from ml.retrain import register_step

        lineage = {
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "logical_date": dag_run.logical_date,
            "actor": f"airflow:{dag_run.dag_id}",
        }
        return register_step(snap, trained, evaluation, lineage)

    @task
    def promote(registered: dict, evaluation: dict, dag_run=None) -> dict:
        from ml.retrain import promote_step

        return promote_step(registered, evaluation, actor=f"airflow:{dag_run.dag_id}")

    snap = snapshot()
    trained = fine_tune(snap)
    evaluation = evaluate(snap, trained)
    promote(register(snap, trained, evaluation), evaluation)


intent_retrain()

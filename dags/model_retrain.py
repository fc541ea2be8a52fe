"""
### Model retrain

One retrain DAG per configured model (`ml.retrain.specs`: `intent_retrain`, `entities_retrain`, ...),
all of the same shape; each model's task type (`ml.tasks.contract`) decides how its data is built,
how it trains and how it is scored.

| task | does |
|---|---|
| `snapshot` | lake-fed models: freezes the window of lake partitions into train/validation/test (split by conversation id, content-hashed); others: the task's labeled source into the same split files (bad records quarantined) |
| `fine_tune` | trains from the base model on the `gpu` queue and pool (CUDA when the worker has it; else the CPU, or a failure where `INTENTFLOW_REQUIRE_GPU` is set) |
| `evaluate` | the task's metrics on the test split (intent: accuracy, macro-F1, per class; entities: span F1 per type; answers: MRR, recall@k), for the new model and the champion |
| `register` | a new version (with its task type) in the registry with its metrics, artifact sha256 and lineage; a retry returns the version this run registered |
| `promote` | moves `champion` to the new version when the policy allows on the model's promotion metric and the champion is still the one `evaluate` compared against (else "skipped: champion changed since evaluation"); otherwise it becomes `challenger` |

Leave a param empty to use the library default.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from ml.config import gpus_per_training, retrain_max_active_runs
from ml.retrain.results import Evaluation, Lineage, Promoted, Registered, Snapshot, Trained
from ml.retrain.specs import END_DATE, WINDOW_DAYS, ModelSpec, configured_models
from ml.training.config import json_schema, tunables


def _window_end(params: dict, data_interval_end, run_after) -> str:
    # The window ends the day before the run: the last day whose drop is complete.
    if params.get("end_date"):
        return params["end_date"]
    return ((data_interval_end or run_after) - timedelta(days=1)).date().isoformat()


def _params(spec: ModelSpec) -> dict[str, Param]:
    """The trigger form: the model's configured defaults, else empty (the task's default).
    Each field is described once, on its setting (ml.training.config, ml.retrain.specs)."""
    defaults = spec.params
    params: dict[str, Param] = {}
    if spec.from_lake:
        window = defaults.get(WINDOW_DAYS.name, 7)
        params[WINDOW_DAYS.name] = Param(window, **json_schema(WINDOW_DAYS, nullable=False))
        params[END_DATE.name] = Param(None, **json_schema(END_DATE))
    for setting in tunables():
        params[setting.name] = Param(defaults.get(setting.name), **json_schema(setting))
    return params


def retrain_dag(spec: ModelSpec):
    name = spec.name
    source = "the lake's transcripts" if spec.from_lake else f"`{spec.source}`"

    @dag(
        dag_id=spec.dag_id,
        schedule=spec.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=retrain_max_active_runs(),
        default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
        params=_params(spec),
        tags=["intentflow", "training", spec.task],
        doc_md=f"## `{name}` ({spec.task}) from {source}\n\n{spec.description}\n{__doc__}",
    )
    def retrain():
        @task
        def snapshot(params: dict | None = None, data_interval_end=None, dag_run=None) -> Snapshot:
            from datetime import date

            from ml.retrain.steps import snapshot_step

            if not spec.from_lake:
                return snapshot_step(date.today(), 1, model=name)
            end = date.fromisoformat(_window_end(params, data_interval_end, dag_run.run_after))
            return snapshot_step(end, params["window_days"], model=name)

        # A training on N GPUs (INTENTFLOW_GPUS_PER_TRAINING) takes N slots of the GPU-sized
        # pool (multi-GPU runs are intent's; see ml.retrain.steps).
        @task(queue="gpu", pool="gpu", pool_slots=gpus_per_training())
        def fine_tune(
            snap: Snapshot, params: dict | None = None, run_id: str | None = None
        ) -> Trained:
            from ml.retrain.steps import train_step

            given = {k: v for k, v in params.items() if k not in (WINDOW_DAYS.name, END_DATE.name)}
            return train_step(snap, given, run_id, model=name)

        @task
        def evaluate(snap: Snapshot, trained: Trained) -> Evaluation:
            from ml.retrain.steps import evaluate_step

            return evaluate_step(snap, trained, model=name)

        @task
        def register(
            snap: Snapshot, trained: Trained, evaluation: Evaluation, dag_run=None
        ) -> Registered:
            from ml.retrain.steps import register_step

            lineage: Lineage = {
                "dag_id": dag_run.dag_id,
                "run_id": dag_run.run_id,
                "logical_date": dag_run.logical_date,
                "actor": f"airflow:{dag_run.dag_id}",
            }
            return register_step(snap, trained, evaluation, lineage, model=name)

        @task
        def promote(registered: Registered, evaluation: Evaluation, dag_run=None) -> Promoted:
            from ml.retrain.steps import promote_step

            return promote_step(
                registered, evaluation, actor=f"airflow:{dag_run.dag_id}", model=name
            )

        snap = snapshot()
        trained = fine_tune(snap)
        evaluation = evaluate(snap, trained)
        promote(register(snap, trained, evaluation), evaluation)

    return retrain()


for _spec in configured_models():
    globals()[_spec.dag_id] = retrain_dag(_spec)

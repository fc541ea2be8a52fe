"""
### Model retrain

One retrain DAG per configured model (`ml.retrain.specs`: `intent_retrain`, `entities_retrain`, ...),
all of the same shape; each model's task type (`ml.tasks.contract`) decides how its data is built,
how it trains and how it is scored.

| task | does |
|---|---|
| `enough_new_data` | a run started by new `transcripts` data (not the nightly time, nor by hand) goes on only when the days published since the last registered version hold at least `INTENTFLOW_RETRAIN_MIN_NEW_ROWS` rows (or the model's `min_new_rows`); else the rest is skipped. A run started by monitoring's `model://NAME/drift` event (INTENTFLOW_DRIFT_TRIGGERS_RETRAIN) always goes on |
| `snapshot` | lake-fed models: freezes the window of lake partitions into train/validation/test (split by conversation id, content-hashed); others: the task's labeled source into the same split files (bad records quarantined) |
| `fine_tune` | trains from the base model on the `gpu` queue and pool (CUDA when the worker has it; else the CPU, or a failure where `INTENTFLOW_REQUIRE_GPU` is set) |
| `evaluate`, `golden_sets`, `evaluate_golden`, `scores` | the task's metrics on the test split (intent: accuracy, macro-F1, per class; entities: span F1 per type; answers: MRR, recall@k), for the new model and the champion; each golden set (the model's `golden_sets`, INTENTFLOW_GOLDEN_SETS) in a mapped `evaluate_golden` task, in parallel where workers allow, joined by `scores` |
| `register` | a new version (with its task type) in the registry with its metrics, artifact sha256 and lineage; a retry returns the version this run registered; emits the `model://NAME/versions` Asset |
| `compare`, `approve` | models with `require_approval` only: when the policy would promote, a person approves or rejects under Browse → Required Actions (metrics, per-class changes, a link to the registry page); reject keeps the champion, audited with who and why |
| `promote` | moves `champion` to the new version when the policy allows on the model's promotion metric and the champion is still the one `evaluate` compared against (else "skipped: champion changed since evaluation"); otherwise it becomes `challenger` (and the alert channels hear why); a promotion emits the `model://NAME/champion` Asset |

Every task has an `execution_timeout` (fine_tune's sized from the snapshot: see docs/operations.md),
the run a `dagrun_timeout`, and a Deadline Alert fires when a run is not done in
`INTENTFLOW_RETRAIN_DEADLINE_MINUTES`. Failures alert the same channels as data-quality alerts.

Leave a param empty to use the library default.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    AssetAlias,
    AssetOrTimeSchedule,
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    task,
)

from ml.assets import TRANSCRIPTS, model_asset, transcripts_uri
from ml.config import (
    drift_triggers_retrain,
    gpus_per_training,
    ops_settings,
    retrain_max_active_runs,
)
from ml.retrain.results import (
    Decided,
    Evaluation,
    Lineage,
    Promoted,
    Registered,
    Snapshot,
    Trained,
)
from ml.retrain.specs import END_DATE, WINDOW_DAYS, ModelSpec, configured_models
from ml.training.config import json_schema, tunables

OPS = ops_settings()
# Airflow puts plugins/ on sys.path; the notifiers import nothing heavy until they fire.
try:
    from intentflow_alerts import DeadlineNotifier, FailureNotifier, NotPromotedNotifier
    from intentflow_connections import use_connections

    ON_FAILURE, ON_NOT_PROMOTED = [FailureNotifier()], [NotPromotedNotifier()]
    # 0: no Deadline Alert (dag.test() of Airflow 3.3.2 fails a successful run of a DAG that
    # has one: DagRun.update_state looks its alerts up by serialized dicts, not ids).
    DEADLINE: DeadlineAlert | None = (
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=OPS.retrain_deadline_minutes),
            callback=AsyncCallback(DeadlineNotifier),
        )
        if OPS.retrain_deadline_minutes > 0
        else None
    )
except ImportError:  # plugins folder not on the path (a bare DagBag outside Airflow)
    ON_FAILURE, ON_NOT_PROMOTED, DEADLINE = [], [], None

    def use_connections(context: Any = None) -> None:
        return None


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


def _schedule(spec: ModelSpec, transcripts: Asset, drift: Asset | None = None) -> Any:
    """A lake-fed model with a nightly time also runs on new `transcripts` data; others keep
    their cron (or none: by hand only). With `drift` (INTENTFLOW_DRIFT_TRIGGERS_RETRAIN, intent
    models), the monitoring DAG's `model://NAME/drift` event also starts a run."""
    if spec.from_lake and spec.schedule:
        assets = transcripts if drift is None else (transcripts | drift)
        return AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.schedule, timezone="UTC"), assets=assets
        )
    if drift is not None:
        if spec.schedule:
            return AssetOrTimeSchedule(
                timetable=CronTriggerTimetable(spec.schedule, timezone="UTC"), assets=drift
            )
        return [drift]
    return spec.schedule


def _size_fine_tune_timeout(context: Any) -> None:
    """pre_execute of fine_tune: its execution_timeout from the snapshot's size and the
    epochs (ml.retrain.ops.fine_tune_timeout), set before Airflow starts the timer."""
    from ml.config import ops_settings
    from ml.retrain.ops import fine_tune_timeout

    use_connections(context)  # this task's own pre_execute replaces the DAG's default
    snap = context["ti"].xcom_pull(task_ids="snapshot")
    # Read now, not at parse: a changed rate applies to the next try.
    limit = fine_tune_timeout(snap, context["params"], ops_settings())
    context["task"].execution_timeout = limit
    context["task"].log.info("fine_tune execution_timeout: %s", context["task"].execution_timeout)


def _approval(answer: dict | None) -> dict | None:
    """The `approve` task's HITL answer as an ml.retrain.results.Approval (None: not asked)."""
    if not answer:
        return None
    user = answer.get("responded_by_user") or {}
    return {
        "approved": answer.get("chosen_options") == ["Approve"],
        "approver": user.get("name") or user.get("id"),
        "reason": str((answer.get("params_input") or {}).get("reason") or ""),
    }


def retrain_dag(spec: ModelSpec):
    name = spec.name
    source = "the lake's transcripts" if spec.from_lake else f"`{spec.source}`"
    transcripts = Asset(name=TRANSCRIPTS, uri=transcripts_uri())
    versions = Asset(*model_asset(name, "versions"))
    champion = Asset(*model_asset(name, "champion"))
    # Monitoring's drift event retrains the model when configured (intent models are watched).
    drift = (
        Asset(*model_asset(name, "drift"))
        if drift_triggers_retrain() and spec.task == "intent"
        else None
    )
    # promote adds a champion event only when the champion moved.
    promotions = AssetAlias(f"{name}_promotions")

    @dag(
        dag_id=spec.dag_id,
        schedule=_schedule(spec, transcripts, drift),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=retrain_max_active_runs(),
        dagrun_timeout=timedelta(hours=OPS.retrain_dagrun_timeout_hours),
        deadline=DEADLINE,
        default_args={
            "retries": OPS.retrain_retries,
            "retry_delay": timedelta(minutes=2),
            "execution_timeout": timedelta(minutes=OPS.task_timeout_minutes),
            "on_failure_callback": ON_FAILURE,
            # Registry and object-store credentials from Airflow connections.
            "pre_execute": use_connections,
        },
        params=_params(spec),
        tags=["intentflow", "training", spec.task],
        doc_md=f"## `{name}` ({spec.task}) from {source}\n\n{spec.description}\n{__doc__}",
    )
    def retrain():
        # Only a lake-fed model reads (and is scheduled on) the `transcripts` Asset.
        @task.short_circuit(inlets=[transcripts] if spec.from_lake else [])
        def enough_new_data(dag_run=None, inlet_events=None, triggering_asset_events=None) -> bool:
            if dag_run.run_type != "asset_triggered":
                return True  # the nightly time, or a person: always train
            if (
                drift is not None
                and triggering_asset_events
                and any(getattr(a, "uri", None) == drift.uri for a in triggering_asset_events)
            ):
                print("started by drift in the served traffic: train")
                return True
            from ml.config import settings
            from ml.registry.errors import NotFoundError
            from ml.registry.store import Registry
            from ml.retrain.ops import new_rows

            try:
                since = Registry(settings().registry_url).list_versions(name)[-1].created_at
            except (IndexError, NotFoundError):
                since = None
            if since is not None and since.tzinfo is None:
                since = since.replace(tzinfo=pendulum.UTC)
            # The last year of days is more than any window: older events are not read.
            events = [(e.timestamp, e.extra or {}) for e in inlet_events[transcripts][-400:]]
            rows = new_rows(events, since)
            default = ops_settings().retrain_min_new_rows
            need = default if spec.min_new_rows is None else spec.min_new_rows
            print(f"{rows} new rows since the last version (need {need})")
            return rows >= need

        @task
        def snapshot(params: dict | None = None, data_interval_end=None, dag_run=None) -> Snapshot:
            from datetime import date

            from intentflow_lineage import record_lineage

            from ml.retrain.steps import snapshot_step

            if not spec.from_lake:
                snap = snapshot_step(date.today(), 1, model=name)
            else:
                end = date.fromisoformat(_window_end(params, data_interval_end, dag_run.run_after))
                snap = snapshot_step(end, params["window_days"], model=name)
            # For OpenLineage: the lake (or the labeled source) → the snapshot.
            read = transcripts.uri if spec.from_lake else spec.source
            record_lineage(snapshot, [read], [snap["path"]])
            return snap

        # A training on N GPUs (INTENTFLOW_GPUS_PER_TRAINING) takes N slots of the GPU-sized
        # pool (multi-GPU runs are intent's; see ml.retrain.steps).
        @task(
            queue="gpu",
            pool="gpu",
            pool_slots=gpus_per_training(),
            # The cap; _size_fine_tune_timeout lowers it to the data's size before each try.
            execution_timeout=timedelta(hours=OPS.fine_tune_max_hours),
            pre_execute=_size_fine_tune_timeout,
        )
        def fine_tune(
            snap: Snapshot, params: dict | None = None, run_id: str | None = None
        ) -> Trained:
            from intentflow_lineage import record_lineage

            from ml.retrain.ops import repeat_pending_alarm
            from ml.retrain.steps import train_step

            repeat_pending_alarm()  # the execution_timeout must not be lost (see its doc)
            given = {k: v for k, v in params.items() if k not in (WINDOW_DAYS.name, END_DATE.name)}
            trained = train_step(snap, given, run_id, model=name)
            # For OpenLineage: the snapshot and the base model → the model artifact.
            base = [trained["base_model"]] if Path(trained["base_model"]).is_dir() else []
            record_lineage(fine_tune, [snap["path"], *base], [trained["artifact_dir"]])
            return trained

        @task
        def evaluate(snap: Snapshot, trained: Trained) -> Evaluation:
            from ml.retrain.steps import evaluate_step

            # The test split here; each golden set in a mapped task of its own.
            return evaluate_step(snap, trained, model=name, golden=False)

        @task
        def golden_sets() -> list[str]:
            from ml.retrain.steps import golden_set_names

            return golden_set_names(model=name)

        @task(map_index_template="{{ task.op_kwargs['golden_name'] }}")
        def evaluate_golden(golden_name: str, trained: Trained, evaluation: Evaluation) -> Any:
            from ml.retrain.steps import evaluate_golden_step

            return evaluate_golden_step(
                trained, golden_name, evaluation["champion_version"], model=name
            )

        # No golden set: nothing is mapped (skipped), and the test split's evaluation goes on.
        @task(trigger_rule="none_failed")
        def scores(evaluation: Evaluation, golden: Any = None) -> Evaluation:
            from ml.retrain.steps import with_golden

            return with_golden(evaluation, list(golden or []))

        @task(outlets=[versions])
        def register(
            snap: Snapshot,
            trained: Trained,
            evaluation: Evaluation,
            dag_run=None,
            outlet_events=None,
        ) -> Registered:
            from ml.retrain.steps import register_step

            lineage: Lineage = {
                "dag_id": dag_run.dag_id,
                "run_id": dag_run.run_id,
                "logical_date": dag_run.logical_date,
                "actor": f"airflow:{dag_run.dag_id}",
            }
            registered = register_step(snap, trained, evaluation, lineage, model=name)
            outlet_events[versions].extra = {"version": registered["version"]}
            return registered

        approval = spec.require_approval

        @task(
            outlets=[promotions],
            on_success_callback=ON_NOT_PROMOTED,
            # After `approve`, or straight from `compare` when the policy says no (approve skipped).
            trigger_rule="none_failed_min_one_success" if approval else "all_success",
        )
        def promote(
            registered: Registered,
            evaluation: Evaluation,
            dag_run=None,
            ti=None,
            outlet_events=None,
        ) -> Promoted:
            from ml.retrain.steps import promote_step

            answer = ti.xcom_pull(task_ids="approve") if approval else None
            promoted = promote_step(
                registered,
                evaluation,
                actor=f"airflow:{dag_run.dag_id}",
                model=name,
                approval=_approval(answer),
            )
            if promoted["alias"] == "champion":
                outlet_events[promotions].add(champion, extra={"version": promoted["version"]})
            return promoted

        snap = snapshot()
        enough_new_data() >> snap
        trained = fine_tune(snap)
        tested = evaluate(snap, trained)
        golden = evaluate_golden.partial(trained=trained, evaluation=tested).expand(
            golden_name=golden_sets()
        )
        evaluation = scores(tested, golden)
        registered = register(snap, trained, evaluation)
        promoted = promote(registered, evaluation)
        if approval:
            _approval_steps(spec, registered, evaluation) >> promoted

    return retrain()


def _approval_steps(spec: ModelSpec, registered: Any, evaluation: Any) -> Any:
    """compare → approve: a person is asked only when the policy would promote."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    @task.branch
    def compare(registered: Registered, evaluation: Evaluation, ti=None) -> str:
        from ml.retrain.ops import approval_body
        from ml.retrain.steps import decide_step

        decided: Decided = decide_step(evaluation, model=spec.name)
        link = _registry_link(spec.name, registered["version"])
        body = approval_body(registered, evaluation, decided["metric"], decided["reasons"], link)
        ti.xcom_push(key="body", value=body)
        return "approve" if decided["promote"] else "promote"

    approve = HITLOperator(
        task_id="approve",
        subject=f"Make {spec.name} v{{{{ ti.xcom_pull(task_ids='register')['version'] }}}} "
        "the champion?",
        body="{{ ti.xcom_pull(task_ids='compare', key='body') }}",
        options=["Approve", "Reject"],
        # No answer in time counts as a rejection: the champion stays.
        defaults=["Reject"],
        params={"reason": Param("", type="string", description="Why (kept in the audit log)")},
        response_timeout=timedelta(hours=OPS.approval_timeout_hours),
    )
    compared = compare(registered, evaluation)
    compared >> approve
    return approve


def _registry_link(model: str, version: int) -> str | None:
    try:
        from intentflow_alerts import registry_link
    except ImportError:
        return None
    return registry_link(model, version)


for _spec in configured_models():
    globals()[_spec.dag_id] = retrain_dag(_spec)

"""The configured models: one retrain DAG each (dags/model_retrain.py), one registered model each.

A model is a name (the registry's), a task type (ml.tasks.contract), where its training data comes from
("lake" for the ingested transcripts, else a labeled file or URL the task's build_dataset
reads), a schedule, and default params for its DAG form. The defaults below give `intent`
(`intent_retrain`, nightly, from the lake), `entities` and `answers`;
INTENTFLOW_MODELS_FILE (a JSON list of such objects) replaces them, e.g.::

    [{"name": "intent", "task": "intent", "source": "lake", "schedule": "0 3 * * *",
      "params": {"window_days": 7}},
     {"name": "entities", "task": "entities", "source": "/data/bitext/train.csv",
      "schedule": "0 4 * * 0", "params": {"epochs": 3},
      "options": {"abcd": "/data/abcd/abcd_sample.json"},
      "golden_sets": {"held-out": "/data/entities/held_out.jsonl"}}]

A model's `golden_sets` are labeled files (any format its task's evaluate reads, as
`intentflow evaluate --data` does) every retrain also scores the new model and the champion
on: a name -> a file, or -> {"data": file, and evaluate options such as "text_column"}. An
intent model is also scored on INTENTFLOW_GOLDEN_SETS (its own sets win a shared name).

Light on purpose: the dag-processor reads it at parse time (no task module is imported).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.config import ConfigError, Settings, check_golden_name, settings
from ml.registry.names import InvalidNameError, check_name
from ml.registry.views import MetricView, task_view
from ml.tasks.contract import TASK_MODULES, UnknownTaskError, task_module
from ml.training.config import Tunable

LAKE = "lake"
# The lake window a lake-fed model trains on: the DAG form's and `intentflow train`'s options.
WINDOW_DAYS = Tunable(
    "window_days",
    int,
    "Days of transcripts to train on, ending the day before the run.",
    minimum=1,
    maximum=366,
)
END_DATE = Tunable(
    "end_date",
    str,
    "Last day of the window (YYYY-MM-DD); default: the day before the run.",
    format="date",
)
# Where the entities and answers models read Bitext-style rows (spans; instruction → response)
# when INTENTFLOW_ENTITIES_SOURCE / INTENTFLOW_ANSWERS_SOURCE are unset.
LABELED_SOURCE_SUBDIR = "labeled/bitext-customer-support/train.csv"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the registered model's name
    task: str  # a task type of ml.tasks.contract.TASK_MODULES
    source: str = LAKE  # "lake", or a labeled file / URL for the task's build_dataset
    schedule: str | None = None  # cron, or None: triggered by hand only
    params: dict[str, Any] = field(
        default_factory=dict
    )  # DAG form defaults (TrainConfig fields...)
    options: dict[str, Any] = field(default_factory=dict)  # extra build_dataset arguments
    # The test metric promotion compares; None: the task module's PROMOTION_METRIC.
    promotion_metric: str | None = None
    # name -> a labeled file, or {"data": file, **evaluate options}: see golden_sets().
    golden_sets: dict[str, Any] = field(default_factory=dict)
    dag_id: str = ""  # default: "<name>_retrain"
    description: str = ""
    # A person approves each promotion in Airflow (Required Actions) before it applies.
    require_approval: bool = False
    # A lake-fed model's run started by new data trains only once this many rows are new
    # (None: INTENTFLOW_RETRAIN_MIN_NEW_ROWS); its nightly run always trains.
    min_new_rows: int | None = None

    def __post_init__(self) -> None:
        try:
            check_name("model", self.name)  # the name is a folder of its artifacts and snapshots
        except InvalidNameError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(self.require_approval, bool):
            raise ConfigError(f"model {self.name!r}: require_approval must be true or false")
        if self.min_new_rows is not None and (
            isinstance(self.min_new_rows, bool)
            or not isinstance(self.min_new_rows, int)
            or self.min_new_rows < 0
        ):
            raise ConfigError(f"model {self.name!r}: min_new_rows must be an integer >= 0")
        if self.task not in TASK_MODULES:
            raise ConfigError(
                f"model {self.name!r}: unknown task type {self.task!r} "
                f"(known: {', '.join(sorted(TASK_MODULES))})"
            )
        if not self.dag_id:
            object.__setattr__(self, "dag_id", default_dag_id(self.name))
        for name, value in _golden_items(self):
            where = f"model {self.name!r}: golden set"
            try:
                check_golden_name(name, where)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            data = value.get("data") if isinstance(value, dict) else value
            if not isinstance(data, str) or not data.strip():
                raise ConfigError(
                    f"{where} {name!r}: expected a file, or an object with a 'data' file"
                )

    @property
    def from_lake(self) -> bool:
        return self.source == LAKE

    @property
    def primary_metric(self) -> str:
        """The test metric promotion compares and views show first: the configured one, else
        the task module's PROMOTION_METRIC (imported only when asked for)."""

        return self.promotion_metric or task_module(self.task).PROMOTION_METRIC


@dataclass(frozen=True)
class GoldenSet:
    """A labeled file a model is also scored on, and the options its task's evaluate reads it
    with (the model's options, then the set's own)."""

    data: str
    options: dict[str, Any]


def _golden_items(spec: ModelSpec) -> list[tuple[str, Any]]:
    if not isinstance(spec.golden_sets, dict):
        raise ConfigError(f"model {spec.name!r}: golden_sets must be an object of name -> file")
    return list(spec.golden_sets.items())


def golden_sets(spec: ModelSpec, cfg: Settings | None = None) -> dict[str, GoldenSet]:
    """The golden sets `spec`'s retrains are scored on: INTENTFLOW_GOLDEN_SETS for an intent
    model (intent-labeled files), then the model's own `golden_sets` (any task type; a
    local path's ~ expanded)."""
    cfg = cfg or settings()
    sets: dict[str, GoldenSet] = {}
    if spec.task == "intent":
        sets = {name: GoldenSet(str(path), {}) for name, path in cfg.golden_sets.items()}
    for name, value in _golden_items(spec):
        given = dict(value) if isinstance(value, dict) else {"data": value}
        data = given.pop("data")
        if "://" not in data:
            data = str(Path(data).expanduser())
        sets[name] = GoldenSet(data, {**spec.options, **given})
    return sets


def default_dag_id(name: str) -> str:
    """The retrain DAG id of a model whose configuration names none."""
    return f"{name}_retrain"


def default_models(cfg: Settings) -> list[ModelSpec]:
    return [
        ModelSpec(
            name=cfg.model_name,
            task="intent",
            source=LAKE,
            schedule="0 3 * * *",
            params={"window_days": 7},
            promotion_metric=cfg.promotion_metric,
            dag_id="intent_retrain",
            description="Intent classifier from the lake's transcripts.",
        ),
        ModelSpec(
            name="entities",
            task="entities",
            # Labeled spans, not the lake: lake transcripts are PII-redacted (see ml.tasks.entities).
            source=cfg.entities_source or str(cfg.home / LABELED_SOURCE_SUBDIR),
            schedule="0 4 * * 0",
            params={"epochs": 3},
            options={"abcd": cfg.entities_abcd} if cfg.entities_abcd else {},
            description="Entity tagger (order/invoice ids, account types, names, places, "
            "amounts) from a labeled span source.",
        ),
        ModelSpec(
            name="answers",
            task="answers",
            # Approved question → answer pairs (Bitext's instruction → response by default).
            source=cfg.answers_source or str(cfg.home / LABELED_SOURCE_SUBDIR),
            schedule="0 5 * * 0",
            description="Answer suggestion: ranks approved agent replies from an answer bank.",
        ),
    ]


def configured_models(cfg: Settings | None = None) -> list[ModelSpec]:
    """INTENTFLOW_MODELS_FILE's models, else the defaults; names and DAG ids unique."""
    cfg = cfg or settings()
    models = _read_models(cfg.models_file) if cfg.models_file else default_models(cfg)
    for attr in ("name", "dag_id"):
        values = [getattr(m, attr) for m in models]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"models configuration: duplicate {attr} {dupes}")
    return models


def _read_models(path: Path) -> list[ModelSpec]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"INTENTFLOW_MODELS_FILE {path}: {exc}") from exc
    if not isinstance(items, list):
        raise ConfigError(f"INTENTFLOW_MODELS_FILE {path}: expected a JSON list of models")
    known = set(ModelSpec.__dataclass_fields__)
    models = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"name", "task"} <= set(item):
            raise ConfigError(f"{path}: model #{i + 1} needs at least 'name' and 'task'")
        unknown = sorted(set(item) - known)
        if unknown:
            raise ConfigError(f"{path}: model {item['name']!r} has unknown keys {unknown}")
        models.append(ModelSpec(**item))
    return models


def model_spec(name: str | None = None, cfg: Settings | None = None) -> ModelSpec:
    """The configured model `name`; None: the intent model (INTENTFLOW_MODEL_NAME)."""
    cfg = cfg or settings()
    name = name or cfg.model_name
    models = configured_models(cfg)
    for spec in models:
        if spec.name == name:
            return spec
    raise ConfigError(
        f"no configured model {name!r} (configured: {', '.join(m.name for m in models)})"
    )


def retrain_dag_id(model: str, cfg: Settings | None = None) -> str:
    """The DAG that publishes registered model `model`, whose permissions guard it: its
    configured spec's DAG; for a model no configuration names (one `intentflow train --data`
    made), the id a spec of that name would get: no such DAG exists, so an auth manager with
    per-DAG permissions lets only users allowed on every DAG through. Raises ConfigError when
    the model configuration does not load.
    """
    spec = next((m for m in configured_models(cfg) if m.name == model), None)
    return spec.dag_id if spec else default_dag_id(model)


def metric_view(model: str, task: str, cfg: Settings | None = None) -> MetricView:
    """The view of registered model `model` of task type `task`.

    Its primary metric is the configured model's (same name and task: ModelSpec.primary_metric),
    else the task module's PROMOTION_METRIC; a model configuration that does not load, or an
    unknown task type, still gets a view (the views must render whatever the registry holds).
    """
    return task_view(task, _primary(model, task, cfg))


def _primary(model: str, task: str, cfg: Settings | None) -> str | None:
    try:
        spec = next((m for m in configured_models(cfg) if (m.name, m.task) == (model, task)), None)
        return spec.primary_metric if spec else task_module(task).PROMOTION_METRIC
    except (ConfigError, UnknownTaskError):
        return None

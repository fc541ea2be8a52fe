"""What the retrain steps hand each other: snapshot → fine_tune → evaluate → register → promote.

The retrain DAGs pass these between their tasks through XCom, so each is a JSON-serialisable
dict (a TypedDict: paths, hashes, metrics; never models or data). Only standard-library typing
here: the DAG file imports this module at parse time for its tasks' signatures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

# A task type's metrics on one labeled set (its module's evaluate: accuracy, macro_f1, per
# class...; the keys differ by task type).
Metrics = dict[str, Any]


class Snapshot(TypedDict):
    """`snapshot`: a frozen, content-hashed dataset folder (its snapshot.json, plus its path)."""

    path: str  # the folder (local path or URL), named by the hash's first 16 characters
    hash: str
    window: dict[str, str] | None  # lake-fed: the days' "start" and "end"; else None
    partitions: list[dict[str, Any]]  # the lake partitions or source files it was built from
    labels: list[str]  # the labels (or entity types) present
    counts: dict[str, int]  # rows per split (and records quarantined, for a labeled source)
    split_rule: str
    # A labeled source's snapshot (ml.tasks.entities, ml.tasks.answers) also says:
    task: NotRequired[str]
    source: NotRequired[str]
    quarantine_rules: NotRequired[dict[str, int]]
    entities: NotRequired[dict[str, int]]  # spans per entity type
    # A lake-fed intent snapshot with agents' corrections (ml.feedback.training): how many,
    # the feedback table's version, their content hash, disagreements dropped.
    feedback: NotRequired[dict[str, Any]]


class Trained(TypedDict):
    """`fine_tune`: the artifact written (ml.artifact.files.artifact_summary) and how it went."""

    artifact_dir: str  # local path or URL
    artifact_sha256: str
    validation: Metrics  # the kept epoch's, on the validation split
    samples_per_second: float
    wall_seconds: float
    epochs_run: int
    best_epoch: int
    train_loss: float
    base_model: str
    config: dict[str, Any]  # the training configuration's fields, as used
    labels: NotRequired[list[str]]  # intent: the classifier's labels
    task: NotRequired[str]  # the task type, where the module adds it


class Evaluation(TypedDict):
    """`evaluate`: the new model and the champion on the same test split and golden sets."""

    challenger: Metrics  # test split
    challenger_golden: dict[str, Metrics]  # golden set name -> metrics (ml.retrain.specs)
    champion: Metrics | None  # None: no champion yet
    champion_golden: dict[str, Metrics] | None
    champion_version: int | None
    reports: str  # the evaluation reports' folder, beside the new artifact


class GoldenScores(TypedDict):
    """`evaluate_golden` (one mapped task per golden set): the set's metrics for both models."""

    name: str
    challenger: Metrics
    champion: Metrics | None  # None: no champion to score


class Lineage(TypedDict, total=False):
    """`register`'s account of the run (each key optional); the steps add the rest."""

    dag_id: str | None
    run_id: str | None
    logical_date: datetime | str | None  # the DAG run's, when there is one
    actor: str  # who registers: "airflow:<dag_id>", "cli"... (default "intentflow")


class Registered(TypedDict):
    """`register`: the new version."""

    model: str
    version: int


class Decided(TypedDict):
    """`compare`: what the promotion policy would decide (nothing applied yet)."""

    promote: bool
    reasons: list[str]
    metric: str  # the metric compared


class Approval(TypedDict):
    """`approve`: a person's answer to "make this version the champion?"."""

    approved: bool
    approver: str | None  # the responding user's name; None: the approval timed out
    reason: str


class Promoted(Registered):
    """`promote`: the alias the new version got, and the policy's reasons."""

    alias: str  # "champion" or "challenger"
    reasons: list[str]


class Retrained(Promoted):
    """A whole retrain after its snapshot (ml.retrain.steps.run_on_snapshot, the CLI's)."""

    task: str  # the task type
    metric: str  # the metric promotion compared
    test: Metrics  # the new version's test metrics

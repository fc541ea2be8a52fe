"""Running the application under uvicorn: `intentflow serve`."""

from __future__ import annotations

import logging
import os
import tempfile

log = logging.getLogger(__name__)

# Seconds uvicorn waits, on SIGTERM, for requests in flight before it stops anyway; the
# prediction log is flushed after them.
GRACEFUL_S = 30


def run(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve until stopped. The settings are read first, so a bad one stops the command before
    uvicorn starts (ConfigError); each worker reads them again, with INTENTFLOW_SERVE_WORKERS
    set so that it takes its share of the CPUs."""
    import uvicorn

    from ml.config import serve_settings, settings
    from ml.serving.app import served_names

    logging.getLogger("ml.serving").setLevel(logging.INFO)  # loads, swaps, the registry
    os.environ["INTENTFLOW_SERVE_WORKERS"] = str(workers)
    names = served_names(settings(), serve_settings())
    if workers > 1:
        # prometheus_client reads it when each worker imports it (ml.serving.metrics).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="intentflow-metrics-")
    log.info("serving %s on %s:%d with %d worker(s)", ", ".join(names), host, port, workers)
    uvicorn.run(
        "ml.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_S,
        log_level="info",
    )

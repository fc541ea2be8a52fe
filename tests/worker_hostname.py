"""`[core] hostname_callable` for test workers that share one machine.

Airflow records the task runner's hostname on each task instance; two Celery workers on one
host would record the same one. Each test worker exports INTENTFLOW_WORKER_NAME, so a task
instance names the worker that ran it.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("INTENTFLOW_WORKER_NAME") or socket.getfqdn()

"""A local S3 API for tests: moto in server mode, started as a subprocess on a free port.

It stands in for S3: s3fs talks to it over HTTP exactly as to AWS, only the endpoint differs
(AWS_ENDPOINT_URL). Without moto or s3fs installed the caller skips, except under CI
(tests/ci.py), where the test extra must be installed and a missing one fails.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

from ci import skip_or_fail


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's S3 server; yields its endpoint URL; stops it (by PID) at the end."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"needs the test extra (moto[server], s3fs): {exc}")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Until it answers, however slow the machine; a server that exits fails at once.
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "moto server exited at start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def s3_env(endpoint: str) -> dict[str, str]:
    """The AWS_* settings a deployment would set, pointed at the local server; and the PII
    key every worker must share once the data is on object storage (ml.subjects)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "INTENTFLOW_PII_KEY": "testing",
    }


def make_bucket() -> str:
    """A fresh bucket (AWS_* must be set in os.environ); returns its s3:// URL."""
    import s3fs

    from ml import storage

    # fsspec caches file system instances by their arguments, and ours take the endpoint from
    # the environment: an instance cached by an earlier test would still talk to its server.
    s3fs.S3FileSystem.clear_instance_cache()
    name = f"intentflow-{uuid.uuid4().hex[:12]}"
    fs, _ = storage.filesystem(f"s3://{name}")
    fs.mkdir(name)
    return f"s3://{name}"

"""`intentflow` never prints a password: the registry URL's, in text, JSON, logs or errors.

Run as a user runs it (a subprocess: stdout, stderr and log lines as they come out), against
a real PostgreSQL (tests/pg.py; trust auth, so the password is accepted and ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline_state import INTENTFLOW_ENV
from sqlalchemy.engine import make_url

pytest_plugins = ("pg",)

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t"


def intentflow(home: Path, registry_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in INTENTFLOW_ENV}
    env |= {
        "INTENTFLOW_HOME": str(home),
        "INTENTFLOW_REGISTRY_URL": registry_url,
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "ml.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_report_and_registry_commands_mask_the_registry_password(
    pg_url: str, tmp_path: Path
) -> None:
    url = make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)
    assert f":{SECRET}@" in url
    upgrade = intentflow(tmp_path, url, "registry", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    for args in (["report"], ["report", "--json"], ["-v", "report"], ["registry", "list"]):
        done = intentflow(tmp_path, url, *args)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr + upgrade.stdout + upgrade.stderr, args
    report = intentflow(tmp_path, url, "report").stdout
    assert f"registry {make_url(url).render_as_string(hide_password=True)}" in report


def test_a_registry_that_refuses_the_login_is_reported_without_the_password(
    tmp_path: Path,
) -> None:
    """No role `u` on the server: the retries' log lines and the error name the database
    with its password masked."""
    url = f"postgresql://u:{SECRET}@127.0.0.1:5432/test"
    done = intentflow(tmp_path, url, "-v", "report")
    assert done.returncode == 2
    assert "postgresql://u:***@127.0.0.1:5432/test" in done.stderr
    assert SECRET not in done.stdout + done.stderr

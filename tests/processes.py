"""Helpers for tests that kill a running process at a known point."""

from __future__ import annotations

import subprocess


def read_until(proc: subprocess.Popen[str], ending: str) -> None:
    """Read `proc`'s output until a line ends with `ending`; fail if it exits first."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.rstrip().endswith(ending):
            return
    raise AssertionError(f"the process ended before {ending!r}: exit {proc.wait()}")

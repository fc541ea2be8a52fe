"""Helpers for tests that kill a running process at a known point."""

from __future__ import annotations

import signal
import subprocess


def read_until(proc: subprocess.Popen[str], ending: str) -> None:
    """Read `proc`'s output until a line ends with `ending`; fail if it exits first."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.rstrip().endswith(ending):
            return
    raise AssertionError(f"the process ended before {ending!r}: exit {proc.wait()}")


def kill_after(proc: subprocess.Popen[str], stop: str | None) -> None:
    """For tests/partition_writer.py: wait until it is writing and then stopped at `stop`
    (or done, without one), and SIGKILL it there."""
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    assert proc.stdout.readline().strip() == ("stopped" if stop else "done")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

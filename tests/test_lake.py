"""Atomic, idempotent partitions, including a writer killed with SIGKILL halfway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from partition_writer import WRITER, table
from processes import kill_after

from ml import lake

DAY = date(2026, 11, 22)
REPO = Path(__file__).resolve().parent.parent


def start_writer(root: Path, tag: str, n: int, stop: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(n), tag, *([stop] if stop else [])],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def assert_whole(root: Path, expected: dict[str, pa.Table]) -> str:
    """The partition reads back and is exactly one of `expected`; returns which."""
    manifest = lake.read_manifest(root, DAY)
    got = lake.read_partition(root, DAY)
    assert manifest is not None and manifest["tag"] in expected
    want = expected[manifest["tag"]].sort_by("conversation_id")
    assert got.equals(want), "partition content does not match its manifest"
    assert manifest["content_hash"] == lake.table_content_hash(got)
    return manifest["tag"]


def test_rewrite_is_byte_identical_and_leaves_no_debris(tmp_path: Path) -> None:
    t = table("a", 500)
    path = lake.write_partition(t, tmp_path, DAY, {"tag": "a"})
    first = (path / lake.DATA_FILE).read_bytes()
    lake.write_partition(t.take(list(range(499, -1, -1))), tmp_path, DAY, {"tag": "a"})
    assert (path / lake.DATA_FILE).read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dt=2026-11-22"]


def test_sigkill_while_writing_keeps_previous_partition(tmp_path: Path) -> None:
    old = table("old", 1000)
    lake.write_partition(old, tmp_path, DAY, {"tag": "old"})
    proc = start_writer(tmp_path, "new", 400_000)
    # Kill once the new data file is being written beside the partition.
    while not list(tmp_path.glob(".dt=*.tmp-*/part-*.parquet")):
        assert proc.poll() is None, "writer ended before the kill"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".dt=*.tmp-*")), "the kill should have left a half-written folder"
    assert assert_whole(tmp_path, {"old": old}) == "old"
    assert lake.list_partitions(tmp_path) == [DAY]
    # The next writer finishes the job and clears the dead writer's debris.
    lake.write_partition(old, tmp_path, DAY, {"tag": "old"})
    assert not list(tmp_path.glob(".dt=*.tmp-*")) and not list(tmp_path.glob(".dt=*.old-*"))


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("data_writer:1", "old"),  # before the data file is written
        ("_fsync_dir:1", "old"),  # written and fsynced beside the partition, not swapped in
        ("_fsync_dir:2", "new"),  # swapped in and the previous partition removed
        (None, "new"),  # after the write returned
    ],
)
def test_sigkill_before_during_and_after_the_swap_leaves_a_whole_day(
    tmp_path: Path, stop: str | None, expected: str
) -> None:
    """The writer stops at a known point (tests/partition_writer.py) and is killed there: the
    day is whole, the old one until the swap and the new one from then on."""
    old, new = table("old", 1000), table("new", 5000)
    lake.write_partition(old, tmp_path, DAY, {"tag": "old"})
    proc = start_writer(tmp_path, "new", new.num_rows, stop)
    kill_after(proc, stop)
    assert assert_whole(tmp_path, {"old": old, "new": new}) == expected
    assert lake.list_partitions(tmp_path) == [DAY]
    # The next writer clears the dead writer's debris.
    lake.write_partition(old, tmp_path, DAY, {"tag": "old"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dt=2026-11-22"]

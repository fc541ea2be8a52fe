"""The lake as a Delta table, with real processes: a writer killed with SIGKILL at any point
of a publish leaves the old day or the new one, whole; reruns give the same rows and hash;
two days published at once both land; two publishes of one day end with one of them whole.
On a local folder and on S3 (moto's server, tests/s3_server.py). Another reader (Polars)
reads the table from its path alone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from partition_writer import WRITER, table
from processes import kill_after
from s3_server import make_bucket, moto_server, s3_env

from ml import delta, lake

DAY = date(2026, 11, 22)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The table's root: a local folder, or a fresh bucket on the moto server."""
    if request.param == "local":
        return str(tmp_path / "transcripts")
    for key, value in s3_env(request.getfixturevalue("s3_endpoint")).items():
        monkeypatch.setenv(key, value)
    return f"{make_bucket()}/lake/transcripts"


def start_writer(root: str, tag: str, n: int, stop: str = "-", day: date = DAY):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, root, str(n), tag, stop, day.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def assert_whole(root: str, expected: dict[str, pa.Table], day: date = DAY) -> str:
    """The day reads back and is exactly one of `expected`, as its manifest says; returns which."""
    manifest = lake.read_manifest(root, day)
    got = lake.read_partition(root, day)
    assert manifest is not None and manifest["tag"] in expected
    assert got.equals(expected[manifest["tag"]].sort_by("conversation_id"))
    assert manifest["rows"] == got.num_rows
    assert manifest["content_hash"] == lake.table_content_hash(got)
    return manifest["tag"]


def test_rerun_and_backfill_give_the_same_rows_and_hash(root: str) -> None:
    t = table("a", 500)
    lake.write_partition(t, root, DAY, {"tag": "a"})
    first = lake.read_manifest(root, DAY)
    lake.write_partition(table("b", 5), root, DAY, {"tag": "b"})
    lake.write_partition(t.take(list(range(499, -1, -1))), root, DAY, {"tag": "a"})  # rerun
    again = lake.read_manifest(root, DAY)
    assert again == first and assert_whole(root, {"a": t}) == "a"
    # Version 0 created the table; each publish is one version after it.
    assert lake.list_partitions(root) == [DAY] and lake.table_version(root) == 3
    # Every version stays readable until VACUUM: the table's history is the day's.
    assert lake.read_manifest(root, DAY, as_of=2)["tag"] == "b"
    assert lake.read_partition(root, DAY, as_of=2).num_rows == 5


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("delta._place:1", "old"),  # before the day's file is placed in the table's folder
        ("delta.commit:1", "old"),  # placed, not committed
        ("-", "new"),  # after the publish returned
    ],
)
def test_sigkill_before_and_after_the_commit_leaves_a_whole_day(
    root: str, stop: str, expected: str
) -> None:
    old, new = table("old", 1000), table("new", 5000)
    lake.write_partition(old, root, DAY, {"tag": "old"})
    proc = start_writer(root, "new", new.num_rows, stop)
    kill_after(proc, None if stop == "-" else stop)
    assert assert_whole(root, {"old": old, "new": new}) == expected
    assert lake.list_partitions(root) == [DAY]
    # The next writer publishes as usual; VACUUM past the retention drops what was left.
    lake.write_partition(old, root, DAY, {"tag": "old"})
    assert assert_whole(root, {"old": old}) == "old"
    lake.maintain(root, retention_hours=0)
    assert assert_whole(root, {"old": old}) == "old"
    assert len(delta.open_table(root).file_uris()) == 1 and delta.unvacuumed(root) == []


def test_sigkill_at_random_moments_of_a_publish_leaves_old_or_new_whole(root: str) -> None:
    old, new = table("old", 2000), table("new", 200_000)
    lake.write_partition(old, root, DAY, {"tag": "old"})
    # How long a publish takes here, from "writing" to "done": the kills fall inside it.
    proc = start_writer(root, "new", new.num_rows)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    start = time.perf_counter()
    assert proc.stdout.readline().strip() == "done"
    took = time.perf_counter() - start
    proc.wait()
    lake.write_partition(old, root, DAY, {"tag": "old"})
    rng, seen = random.Random(18), set()
    for delay in [0.0, *(rng.uniform(0.0, took) for _ in range(5))]:
        proc = start_writer(root, "new", new.num_rows)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.add(assert_whole(root, {"old": old, "new": new}))
        lake.write_partition(old, root, DAY, {"tag": "old"})
    assert "old" in seen  # at least one kill landed before the commit


def test_two_days_published_at_once_both_land(root: str) -> None:
    days = [date(2026, 11, 20 + i) for i in range(3)]
    procs = [start_writer(root, f"d{i}", 50_000, day=d) for i, d in enumerate(days)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip().endswith("done"), err[-2000:]
    assert lake.list_partitions(root) == days
    for i, d in enumerate(days):
        assert assert_whole(root, {f"d{i}": table(f"d{i}", 50_000)}, d) == f"d{i}"


def test_racing_publishes_of_one_day_end_with_one_of_them_whole(root: str) -> None:
    """Four writers of one day at once (the race the commit protocol must settle)."""
    tags = ("w", "x", "y", "z")
    procs = [start_writer(root, tag, 60_000) for tag in tags]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip().endswith("done"), err[-2000:]  # retried
    expected = {tag: table(tag, 60_000) for tag in tags}
    assert assert_whole(root, expected) in expected
    assert len(delta.open_table(root).file_uris()) == 1


def test_polars_reads_the_table_from_its_path_alone(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    root = tmp_path / "transcripts"
    lake.write_partition(table("a", 30), root, DAY, {"tag": "a"})
    lake.write_partition(table("b", 20), root, date(2026, 11, 23), {"tag": "b"})
    lake.write_partition(table("c", 10), root, DAY, {"tag": "c"})  # replaces day one
    frame = pl.read_delta(str(root))
    counts = dict(frame.group_by("dt").len().sort("dt").iter_rows())
    assert counts == {"2026-11-22": 10, "2026-11-23": 20}
    old = pl.read_delta(str(root), version=2)  # time travel, by another reader
    assert old.filter(pl.col("dt") == "2026-11-22").height == 30

"""The prediction log (ml.serving.prediction_log): redacted rows with the subject keys erasure
looks for, one atomic Parquet file per day and flush, nothing lost when a write fails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.serving.prediction_log import SCHEMA, Logged, PredictionLog, PredictionTable
from ml.subjects import subject_key

KEY = b"k" * 32
FIELDS = {
    "label": "lost_card",
    "confidence": 0.9,
    "top_k": [{"label": "lost_card", "confidence": 0.9}],
    "scores": {"oos_score": 0.1},
}


def logged(text: str, when: datetime, pid: str = "p") -> Logged:
    return Logged(pid, when, "intent", 2, "intent", "onnx-int8", text, FIELDS, 12.5)


def read(root: Path) -> dict[str, list[dict]]:
    return {
        folder.name: pq.read_table(sorted(folder.glob("*.parquet"))).to_pylist()
        for folder in sorted(root.glob("dt=*"))
    }


def test_rows_are_redacted_keyed_and_partitioned_by_day(tmp_path: Path) -> None:
    root = tmp_path / "lake" / "predictions"
    log = PredictionLog(PredictionTable(root), KEY, flush_s=60, max_rows=100)
    late = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    early = datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
    log.add(
        [
            logged("I lost my card, write to Ann.Lee@Example.com or +44 20 7946 0958", late, "a"),
            logged("what is the exchange rate", early, "b"),
        ]
    )
    assert log.flush() == 2 and log.flush() == 0
    days = read(root)
    assert list(days) == ["dt=2026-12-01", "dt=2026-12-02"]
    [first], [second] = days.values()
    assert "Ann.Lee" not in first["text"] and "7946" not in first["text"]
    assert "[EMAIL]" in first["text"]
    # The keys `intentflow erase --email/--phone` computes for this person.
    assert first["subject_keys"] == sorted(
        {
            subject_key("email", "ann.lee@example.com", KEY),
            subject_key("phone", "+442079460958", KEY),
        }
    )
    assert second["subject_keys"] == [] and second["text"] == "what is the exchange rate"
    assert first["label"] == "lost_card" and first["scores"] == [("oos_score", 0.1)]
    assert pq.read_schema(next((root / "dt=2026-12-01").glob("*.parquet"))).equals(SCHEMA)
    # Readable by this user only: redacted, still customers' messages.
    assert (root / "dt=2026-12-01").stat().st_mode & 0o077 == 0
    assert all(f.stat().st_mode & 0o077 == 0 for f in root.rglob("*.parquet"))


class Flaky(PredictionTable):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = True

    def append(self, table: pa.Table) -> list:
        if self.down:
            raise OSError("store unreachable")
        return super().append(table)


def test_a_failed_write_keeps_its_rows_for_the_next_flush(tmp_path: Path) -> None:
    table = Flaky(tmp_path / "predictions")
    failed: list[int] = []
    log = PredictionLog(table, KEY, flush_s=60, max_rows=3, on_failed=lambda: failed.append(1))
    when = datetime(2026, 12, 1, tzinfo=UTC)
    log.add([logged("one", when)])
    assert log.flush() == 0 and failed == [1]
    log.add([logged("two", when)])
    table.down = False
    assert log.flush() == 2
    assert [r["text"] for r in read(tmp_path / "predictions")["dt=2026-12-01"]] == ["one", "two"]


def test_an_outage_drops_the_oldest_rows_beyond_the_bound(tmp_path: Path) -> None:
    from ml.serving.prediction_log import DROP_AFTER

    dropped: list[int] = []
    log = PredictionLog(Flaky(tmp_path), KEY, flush_s=60, max_rows=2, on_dropped=dropped.append)
    when = datetime(2026, 12, 1, tzinfo=UTC)
    log.add([logged(str(i), when) for i in range(2 * DROP_AFTER + 5)])
    log.flush()
    assert dropped == [5]


def test_close_writes_what_is_buffered(tmp_path: Path) -> None:
    log = PredictionLog(PredictionTable(tmp_path), KEY, flush_s=3600, max_rows=1000)
    log.start()
    log.add([logged("kept at shutdown", datetime(2026, 12, 1, tzinfo=UTC))])
    log.close()
    assert [r["text"] for r in read(tmp_path)["dt=2026-12-01"]] == ["kept at shutdown"]


@pytest.mark.parametrize("rows", [1, 7])
def test_a_full_buffer_wakes_the_writer(tmp_path: Path, rows: int) -> None:
    import time

    log = PredictionLog(PredictionTable(tmp_path), KEY, flush_s=3600, max_rows=rows)
    log.start()
    log.add([logged(str(i), datetime(2026, 12, 1, tzinfo=UTC)) for i in range(rows)])
    deadline = time.time() + 30
    while not list(tmp_path.rglob("*.parquet")) and time.time() < deadline:
        time.sleep(0.05)
    log.close()
    assert len(read(tmp_path)["dt=2026-12-01"]) == rows

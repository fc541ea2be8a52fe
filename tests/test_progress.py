"""Progress of the long commands: log lines when stderr is not a terminal (Airflow task logs,
pipes), a bar on a terminal. The CLI runs in a subprocess, as a user or a task runs it."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from ml.progress import Progress, display_mode

REPO = Path(__file__).resolve().parent.parent
LABELS = {"refund_request": "refund money back", "lost_card": "lost card stolen"}


def cli_env(home: Path, base_model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTFLOW_")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "INTENTFLOW_HOME": str(home),
        "INTENTFLOW_BASE_MODEL": str(base_model),
    }


def intentflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI with pipes for stdout and stderr: no terminal, as under Airflow."""
    done = subprocess.run(
        [sys.executable, "-m", "ml.cli", *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def labeled_csv(tmp_path: Path) -> Path:
    rows = ["text,label"] + [
        f"{words} please {i},{label}" for label, words in LABELS.items() for i in range(80)
    ]
    path = tmp_path / "labeled.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ml.progress " in line]


def test_train_and_evaluate_log_progress_without_a_terminal(
    tmp_path: Path, tiny_bert_dir: Path, labeled_csv: Path
) -> None:
    env = cli_env(tmp_path / "home", tiny_bert_dir)
    # 128 train rows, batch 8: 16 steps an epoch, a line every 5 (no --verbose needed).
    train = intentflow(
        *("train", "--data", str(labeled_csv), "--test-fraction", "0.1"),
        *("--epochs", "2", "--batch-size", "8", "--json"),
        env={**env, "INTENTFLOW_PROGRESS": "auto"},
    )
    trained = json.loads(train.stdout)  # progress never reaches stdout
    lines = progress_lines(train.stderr)
    steps = [re.search(r"train: (\d+)/(\d+) steps \(\d+%\), loss ", line) for line in lines]
    counts = [(int(m[1]), int(m[2])) for m in steps if m]
    total = counts[-1][1]
    # About 128 train rows (our 80/10/10 split), batch 8: a line every 20 steps, and the last.
    assert 30 <= total <= 34 and counts == [(20, total), (total, total)], lines
    assert all("samples/s" in line and "ETA" in line for line in lines if "train: " in line)
    epochs = [line for line in lines if "epoch " in line]
    assert [line.split("ml.progress ")[1][:9] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("validation accuracy" in line and "macro_f1" in line for line in epochs)

    evaluate = intentflow(
        *("evaluate", "--model", f"intent:{trained['version']}", "--data", str(labeled_csv)),
        env=env,
    )
    assert any("evaluate: 160/160 texts (100%)" in line for line in progress_lines(evaluate.stderr))
    texts = [row.rsplit(",", 1)[0] for row in labeled_csv.read_text().splitlines()[1:]]
    for line in progress_lines(train.stderr + evaluate.stderr):
        assert not any(text in line for text in texts), line  # no customer text


def test_generate_and_ingest_log_progress(tmp_path: Path, tiny_bert_dir: Path) -> None:
    env = cli_env(tmp_path / "home", tiny_bert_dir)
    drops = tmp_path / "drops"
    generate = intentflow(
        *("generate", "--out", str(drops), "--days", "2", "--per-day", "200"),
        *("--start", "2026-11-20"),
        env=env,
    )
    lines = progress_lines(generate.stderr)
    # A quick step logs its end only (intermediate lines at most every LOG_SECONDS).
    assert "generate: 400/400 records (100%)" in lines[-1] and len(lines) == 1
    ingest = intentflow("ingest", "--date", "2026-11-21", "--path", str(drops), env=env)
    [last] = progress_lines(ingest.stderr)[-1:]
    assert "ingest 2026-11-21: " in last and "MB (100%), records 200" in last


def test_log_lines_follow_the_share_and_the_clock(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without `every`: a line per 5% of the total, but none sooner than LOG_SECONDS after
    the last; with `every` (training's steps): every `every` units, whatever the clock."""
    from ml import progress as module

    now = [0.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    caplog.set_level("INFO", logger="ml.progress")
    with Progress("slow", 100, "records", mode="log") as slow:
        for _ in range(100):
            now[0] += 1.0  # a record a second: 5% every 5 s, so every other share logs
            slow.advance(1)
    counts = [int(re.search(r"slow: (\d+)/", m).group(1)) for m in caplog.messages]
    assert counts == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    caplog.clear()
    with Progress("steps", 6, "steps", every=2, mode="log") as steps:
        for _ in range(6):
            steps.advance(1)  # the clock stands still
    assert [re.search(r"steps: (\d+)/", m).group(1) for m in caplog.messages] == ["2", "4", "6"]


def test_train_on_a_terminal_draws_a_bar(
    tmp_path: Path, tiny_bert_dir: Path, labeled_csv: Path
) -> None:
    env = cli_env(tmp_path / "home", tiny_bert_dir)
    main, child = os.openpty()
    # A terminal 120 columns wide (a fresh pty has 0: the bar would have no room).
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    args = ("train", "--data", str(labeled_csv), "--epochs", "1", "--batch-size", "8")
    process = subprocess.Popen(
        [sys.executable, "-m", "ml.cli", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert process.wait() == 0, screen.decode(errors="replace")[-3000:]
    text = screen.decode(errors="replace")
    assert "\rtrain: 100%|" in text and re.search(r"\| (\d+)/\1 \[", text) and "loss=" in text
    assert "epoch 1/1: train loss" in text  # the epoch's metrics, above the bar
    assert " ml.progress " not in text  # a bar, not log lines


def test_progress_modes(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("INTENTFLOW_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="INTENTFLOW_PROGRESS must be one of auto, bar, log, off"):
        display_mode()
    monkeypatch.setenv("INTENTFLOW_PROGRESS", "off")
    with caplog.at_level("INFO", logger="ml.progress"), Progress("x", 10) as progress:
        for _ in range(10):
            progress.advance()
    assert caplog.text == ""
    monkeypatch.delenv("INTENTFLOW_PROGRESS")
    assert display_mode() == "log"  # pytest's stderr is no terminal
    with caplog.at_level("INFO", logger="ml.progress"), Progress("x", 10, every=4) as progress:
        for _ in range(10):
            progress.advance(loss=0.5)
        progress.note("epoch %d done", 1)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines] == [
        "x: 4/10 it (40%)",
        "x: 8/10 it (80%)",
        "x: 10/10 it (100%)",
        "epoch 1 done",
    ]
    assert "loss 0.5000" in lines[0]


def test_entities_evaluate_reports_progress(
    tiny_bert_dir: Path, tmp_path: Path, write_bitext: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from ml.tasks import entities
    from ml.tasks.entities.data import read_split

    source = tmp_path / "bitext.csv"
    write_bitext(source, 90, broken=False)
    snap = Path(entities.build_dataset(str(source), tmp_path / "snaps")["path"])
    config = {"base_model": str(tiny_bert_dir), "epochs": 1, "max_steps": 1, "num_threads": 1}
    trained = entities.fine_tune(snap, tmp_path / "model", config)
    with caplog.at_level("INFO", logger="ml.progress"):
        metrics = entities.evaluate(Path(trained["artifact_dir"]), snap / "test.parquet")
    n = len(read_split(snap / "test.parquet")[0])
    assert n > 0 and f"evaluate: {n}/{n} texts (100%)" in caplog.text, (metrics, caplog.text)

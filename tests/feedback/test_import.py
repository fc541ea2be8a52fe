"""`intentflow feedback import FILE` on real tables: partial failure, rejects aside, reruns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ml.cli.main import app
from ml.config import Settings
from ml.feedback.table import FeedbackTable


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["feedback", "import", *args])
    return result.exit_code, result.output


def test_csv_partial_failure_and_rerun(
    cfg: Settings, log_predictions: Callable, tmp_path: Path
) -> None:
    a, b = log_predictions([("card gone", "lost_card"), ("refund me", "lost_card")])
    file = tmp_path / "corrections.csv"
    file.write_text(
        "prediction_id,label,agent_id,note\n"
        f"{a},lost_card,ann,\n"
        f"{b},refund_request,ann,mail bob@example.com\n"
        "unknown-id,lost_card,ann,\n"
        f"{b},astrology,bob,\n"
        f"{b},refund_request,,\n"
        f'{a},lost_card,bob,"two, cells",extra\n'
    )
    code, out = run(str(file), "--model", "intent")
    assert code == 1, out  # partial: some records refused, the rest imported
    assert "2 created" in out and "4 rejected" in out
    assert f"{file}:4: prediction_id:" in out
    assert f"{file}:5: label:" in out and f"{file}:6: agent_id:" in out
    assert f"{file}:7: -: more cells" in out
    assert "bob@example.com" not in out
    rejects = [json.loads(line) for line in (tmp_path / "corrections.csv.rejected.jsonl").open()]
    assert [r["line"] for r in rejects] == [4, 5, 6, 7]
    assert rejects[0]["record"]["prediction_id"] == "unknown-id"  # whole: nothing lost
    assert FeedbackTable(cfg.feedback).read().num_rows == 2
    version = FeedbackTable(cfg.feedback).version()
    code, out = run(str(file), "--model", "intent")  # a rerun changes nothing
    assert code == 1 and "2 unchanged" in out
    assert FeedbackTable(cfg.feedback).version() == version


def test_jsonl_all_good_and_bad_lines(
    cfg: Settings, log_predictions: Callable, tmp_path: Path
) -> None:
    (a,) = log_predictions([("card gone", "lost_card")])
    file = tmp_path / "c.jsonl"
    file.write_text(json.dumps({"prediction_id": a, "label": "lost_card", "agent_id": "x"}) + "\n")
    assert run(str(file), "--json")[0] == 0
    file.write_text("{broken\n[1, 2]\n")
    code, out = run(str(file), "--json")
    assert code == 1
    result = json.loads(out)
    assert [(r["line"], r["field"]) for r in result["rejected"]] == [(1, "-"), (2, "-")]


def test_unreadable_file(cfg: Settings, tmp_path: Path) -> None:
    assert run(str(tmp_path / "missing.csv"))[0] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("prediction_id,lable,agent_id\nx,y,z\n")
    code, out = run(str(bad))
    assert code == 2 and "missing column(s) label" in out and "unknown column(s) lable" in out

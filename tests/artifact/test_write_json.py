"""The one JSON writer (ml.artifact.files.write_json): artifacts' files, evaluation reports'
metrics.json and the retrain steps' summaries."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from ml.artifact.files import write_json


def test_indented_with_a_final_newline_in_a_folder_it_creates(tmp_path: Path) -> None:
    path = tmp_path / "report" / "test" / "metrics.json"
    assert write_json(path, {"macro_f1": 0.5, "n": 3, "per_class": {"a": 1}}) == path
    assert path.read_text(encoding="utf-8") == (
        '{\n  "macro_f1": 0.5,\n  "n": 3,\n  "per_class": {\n    "a": 1\n  }\n}\n'
    )
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_what_json_cannot_hold_fails_unless_a_default_says_how(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json(path, {"run": 1})
    with pytest.raises(TypeError):
        write_json(path, {"day": date(2024, 5, 1)})
    # A failed write leaves the previous file whole and no partial file beside it.
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]

    write_json(path, {"day": date(2024, 5, 1)}, default=str)
    assert json.loads(path.read_text()) == {"day": "2024-05-01"}

"""The generator's shift (ml.synthetic.shift): unshifted days keep their bytes, shifted days
carry an unlabeled new intent in ~10% of the traffic and a reworded intent, with a truth file
outside the day folders."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.cli.main import app
from ml.synthetic.generate import generate
from ml.synthetic.shift import REWORDED, TRUTH_DIR, make_shift, read_truth
from ml.taxonomy import INTENTS

START = date(2026, 11, 1)
SHIFT = date(2026, 11, 3)


def records(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shift")
    generate(root / "plain", days=4, per_day=1500, start=START, seed=11)
    generate(root / "shifted", days=4, per_day=1500, start=START, seed=11, shift=make_shift(SHIFT))
    return root / "plain", root / "shifted"


def test_days_before_the_shift_are_byte_identical(drops: tuple[Path, Path]) -> None:
    plain, shifted = drops
    for day in ("2026-11-01", "2026-11-02"):
        for path in sorted((plain / day).glob("*.jsonl")):
            assert (shifted / day / path.name).read_bytes() == path.read_bytes()
        assert not (shifted / TRUTH_DIR / f"{day}.jsonl").exists()
    for day in ("2026-11-03", "2026-11-04"):  # the shift does change the later days
        assert (shifted / day / "chats-000.jsonl").read_bytes() != (
            plain / day / "chats-000.jsonl"
        ).read_bytes()


def test_a_shifted_day_holds_the_new_intent_unlabeled_and_its_truth(
    drops: tuple[Path, Path],
) -> None:
    _, shifted = drops
    for day in (date(2026, 11, 3), date(2026, 11, 4)):
        truth = read_truth(shifted, day)
        kinds = Counter(row["shift"] for row in truth.values())
        assert 0.07 < kinds["new_intent"] / len(truth) < 0.13
        assert kinds["reworded"] > 0
        by_id: dict[str, dict] = {}
        for r in records(shifted / day.isoformat()):  # first of an id: a duplicate is broken
            by_id.setdefault(r.get("conversation_id", ""), r)
        for cid, row in truth.items():
            record = by_id[cid]
            if row["shift"] == "new_intent":
                assert row["intent"] == "cancel_order" and record["intent"] is None
            else:  # every other record keeps its label, the true one
                assert record["intent"] == row["intent"] in INTENTS
        # Reworded conversations open with the new phrasings (no slot: compare prefixes).
        new_words = [o.split("{")[0][1:16].lower() for o in REWORDED["password_reset"]["openings"]]
        reworded = [by_id[c] for c, r in truth.items() if r["shift"] == "reworded"]
        hits = sum(
            any(w in t["text"].lower() for w in new_words for t in r["turns"]) for r in reworded
        )
        assert hits >= 0.6 * len(reworded)  # typos and unclear openings make up the rest


def test_same_seed_same_shift_same_bytes(drops: tuple[Path, Path], tmp_path: Path) -> None:
    _, shifted = drops
    again = tmp_path / "again"
    generate(again, days=1, per_day=1500, start=date(2026, 11, 4), seed=11, shift=make_shift(SHIFT))
    for name in ("2026-11-04/chats-000.jsonl", f"{TRUTH_DIR}/2026-11-04.jsonl"):
        assert (again / name).read_bytes() == (shifted / name).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"new_intent": "order_status"}, "already in the taxonomy"),
        ({"reworded": "pizza_order"}, "not in the taxonomy"),
        ({"new_intent": "book_table"}, "no phrasings"),
        ({"reworded": "lost_card"}, "no new phrasings"),
        ({"new_share": 0.0}, "share"),
    ],
)
def test_bad_shifts_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_shift(SHIFT, **kwargs)


def test_a_phrases_file_brings_a_new_intent(tmp_path: Path) -> None:
    phrases = tmp_path / "phrases.json"
    phrases.write_text(
        json.dumps(
            {
                "new_intent": {"openings": ["Can I book a table for {when}?"]},
                "reworded": {"openings": ["My card went walkabout."]},
            }
        )
    )
    shift = make_shift(SHIFT, "book_table", "lost_card", 0.5, phrases)
    generate(tmp_path / "out", days=1, per_day=200, start=SHIFT, seed=1, shift=shift)
    truth = read_truth(tmp_path / "out", SHIFT)
    assert {r["intent"] for r in truth.values() if r["shift"] == "new_intent"} == {"book_table"}


def test_cli_generate_with_a_shift(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "generate", "--out", str(tmp_path), "--days", "2", "--per-day", "100",
            "--start", "2026-11-02", "--shift-from", "2026-11-03",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "shifted" not in lines[0] and lines[1].endswith("shifted")
    assert (tmp_path / TRUTH_DIR / "2026-11-03.jsonl").is_file()
    refused = CliRunner().invoke(
        app, ["generate", "--out", str(tmp_path), "--shift-from", "2026-11-03",
              "--shift-intent", "refund_request"],
    )  # fmt: skip
    assert refused.exit_code == 2 and "already in the taxonomy" in refused.output

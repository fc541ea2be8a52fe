"""What `intentflow replay` sends (ml.serving.replay.day_messages): the lines ingest would
accept, in order of arrival, each with its true label (the truth file's on a shifted day)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ml.serving.replay import day_messages
from ml.synthetic.generate import generate
from ml.synthetic.shift import make_shift, read_truth
from ml.taxonomy import known_intents

DAY = date(2026, 11, 5)


def test_a_shifted_day_is_sent_whole_with_true_labels(tmp_path: Path) -> None:
    (day,) = generate(tmp_path, 1, 400, start=DAY, seed=2, shift=make_shift(DAY))
    messages, skipped = day_messages(tmp_path, DAY, known_intents())
    truth = read_truth(tmp_path, DAY)
    # Every good line is sent (the truth file lists exactly those), every broken one skipped.
    assert {m.conversation_id for m in messages} == set(truth)
    assert sum(skipped.values()) == day.broken
    assert all(m.label == truth[m.conversation_id]["intent"] for m in messages)
    assert {m.label for m in messages if m.shift == "new_intent"} == {"cancel_order"}
    assert [m.started_at for m in messages] == sorted(m.started_at for m in messages)
    assert all(m.text.strip() for m in messages)


def test_an_unshifted_day_takes_labels_from_the_records(tmp_path: Path) -> None:
    (day,) = generate(tmp_path, 1, 300, start=DAY, seed=2)
    messages, skipped = day_messages(tmp_path, DAY, known_intents())
    assert len(messages) + sum(skipped.values()) == day.records
    assert {m.shift for m in messages} == {None}
    assert {m.label for m in messages} <= known_intents()

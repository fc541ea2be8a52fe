"""ml.tasks.answers.metrics: ranking metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from ml.tasks.answers.metrics import ranking_metrics


def test_ranking_metrics_on_a_hand_computed_example() -> None:
    # Bank: 4 answers, intents x, x, y, z. Query 0: gold 0 ranked 1st. Query 1: gold 2 ranked
    # 3rd (answers 1 and 3 above). Query 2: gold 3 tied with answer 0 -> rank 2 (ties count
    # against). Query 3: gold not in the bank -> a miss (reciprocal rank 0).
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],
            [0.1, 0.8, 0.5, 0.7],
            [0.6, 0.1, 0.2, 0.6],
            [0.5, 0.4, 0.3, 0.2],
        ]
    )
    gold = [0, 2, 3, -1]
    got = ranking_metrics(
        scores, gold, ["x", "y", "z", "x"], [["x"], ["x"], ["y"], ["z"]], ks=(1, 2)
    )
    assert got["n"] == 4
    assert got["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 0) / 4)
    assert got["recall_at_1"] == pytest.approx(1 / 4)
    assert got["recall_at_2"] == pytest.approx(2 / 4)
    # Same intent: q0 answer 0 (x) 1st; q1 (y) answer 2 behind 1 and 3 -> 3rd; q2 (z) answer 3
    # tied with answer 0 -> 2nd; q3 (x) answer 0 first -> 1st.
    assert got["intent_mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)
    assert got["intent_recall_at_1"] == pytest.approx(2 / 4)
    assert got["per_class"]["x"] == {"mrr": 0.5, "recall_at_1": 0.5, "support": 2}
    assert got["per_class"]["y"]["mrr"] == pytest.approx(1 / 3)


def test_ranking_metrics_without_intents_and_on_nothing() -> None:
    got = ranking_metrics(np.array([[0.1, 0.2]]), [1])
    assert got == {"n": 1, "mrr": 1.0, "recall_at_1": 1.0, "recall_at_5": 1.0}
    empty = ranking_metrics(np.zeros((0, 3)), [])
    assert empty["n"] == 0 and empty["mrr"] == 0.0


def test_intent_metrics_count_the_questions_with_an_intent_only() -> None:
    """A question without an intent is left out of the intent-level metrics (it used to count
    as a miss there); one whose intent no bank answer serves is a miss, counted in
    intent_missing. Its gold reply missing from the bank (-1) does not matter there."""
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]])
    got = ranking_metrics(scores, [0, -1, 1], ["x", None, "w"], [["x"], ["y"]], ks=(1,))
    assert (got["intent_n"], got["intent_missing"]) == (2, 1)
    assert got["intent_mrr"] == pytest.approx((1 + 0) / 2)
    assert got["mrr"] == pytest.approx((1 + 0 + 1 / 2) / 3)  # the missing gold: a miss

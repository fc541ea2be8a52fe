"""`intentflow erase` removes the corrections of the person's predictions (and notes naming
them), on real tables."""

from __future__ import annotations

from collections.abc import Callable

from ml.config import Settings
from ml.erasure import erase
from ml.feedback.store import record_feedback
from ml.feedback.table import FeedbackTable

EMAIL = "ann.lee@example.com"


def test_erase_removes_feedback(cfg: Settings, log_predictions: Callable) -> None:
    mine, other, noted = log_predictions(
        [
            (f"I lost my card, mail {EMAIL}", "lost_card"),
            ("refund please", "lost_card"),
            ("hi", "lost_card"),
        ]
    )
    record_feedback(
        cfg,
        "intent",
        [
            {"prediction_id": mine, "label": "lost_card", "agent_id": "a"},
            {"prediction_id": mine, "label": "lost_card", "agent_id": "b"},
            {"prediction_id": other, "label": "refund_request", "agent_id": "a"},
            {"prediction_id": noted, "label": "lost_card", "agent_id": "a", "note": f"cc {EMAIL}"},
        ],
    )
    dry = erase(cfg, {"email": [EMAIL]}, actor="test", dry_run=True)
    assert dry.removed["feedback"] == 3 and dry.removed["predictions"] == 1
    done = erase(cfg, {"email": [EMAIL]}, actor="test", reason="ticket 7")
    assert done.removed["feedback"] == 3
    left = FeedbackTable(cfg.feedback).read(["prediction_id"]).column("prediction_id").to_pylist()
    assert left == [other]
    assert erase(cfg, {"email": [EMAIL]}, actor="test").removed["feedback"] == 0

"""record_feedback on real Delta tables: the checks, idempotence, disagreement, the summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ml.config import Settings
from ml.feedback.store import record_feedback
from ml.feedback.summary import feedback_by_day
from ml.feedback.table import FeedbackTable


def item(pid: str, label: str, agent: str = "agent-1", note: str | None = None) -> dict[str, Any]:
    return {"prediction_id": pid, "label": label, "agent_id": agent, "note": note}


def test_created_unchanged_replaced(cfg: Settings, log_predictions: Callable) -> None:
    a, b = log_predictions([("my card is gone", "lost_card"), ("money back", "lost_card")])
    first = record_feedback(cfg, "intent", [item(a, "lost_card"), item(b, "refund_request")])
    assert [o.status for o in first.outcomes] == ["created", "created"]
    version = FeedbackTable(cfg.feedback).version()
    # The same again (a retry): nothing written, no commit.
    again = record_feedback(cfg, "intent", [item(a, "lost_card"), item(b, "refund_request")])
    assert [o.status for o in again.outcomes] == ["unchanged", "unchanged"]
    assert FeedbackTable(cfg.feedback).version() == version
    # The agent changes their mind: the row is replaced, not added.
    changed = record_feedback(cfg, "intent", [item(b, "billing_dispute")])
    assert changed.outcomes[0].status == "replaced"
    rows = FeedbackTable(cfg.feedback).read(["prediction_id", "label", "predicted_label"])
    assert sorted(zip(*rows.to_pydict().values(), strict=True)) == sorted(
        [(a, "lost_card", "lost_card"), (b, "billing_dispute", "lost_card")]
    )


def test_rejections_name_the_field(cfg: Settings, log_predictions: Callable) -> None:
    (pid,) = log_predictions([("hi", "lost_card")])
    (other,) = log_predictions([("hi", "lost_card")], model="faq")
    result = record_feedback(
        cfg,
        "intent",
        [
            item("no-such-id", "lost_card"),
            item(other, "lost_card"),  # another model's prediction
            item(pid, "not_an_intent"),
            {"prediction_id": pid, "label": "lost_card"},  # no agent
            {**item(pid, "lost_card"), "lable": "x"},
            item(pid, "refund_request", agent="a" * 500),
        ],
        new_labels=False,
    )
    got = [(o.status, o.field, o.code) for o in result.outcomes]
    assert got == [
        ("rejected", "prediction_id", 404),
        ("rejected", "prediction_id", 404),
        ("rejected", "label", 422),
        ("rejected", "agent_id", 422),
        ("rejected", "lable", 422),
        ("rejected", "agent_id", 422),
    ]
    assert "INTENTFLOW_FEEDBACK_NEW_LABELS" in result.outcomes[2].reason
    assert FeedbackTable(cfg.feedback).version() is None  # nothing written, no table


def test_new_label_when_allowed(
    cfg: Settings, log_predictions: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pid,) = log_predictions([("where can I buy a gift card", "promo_code")])
    monkeypatch.setenv("INTENTFLOW_FEEDBACK_NEW_LABELS", "true")
    assert record_feedback(cfg, "intent", [item(pid, "gift_card")]).outcomes[0].status == "created"
    bad = record_feedback(cfg, "intent", [item(pid, "gift card!", agent="b")])
    assert bad.outcomes[0].field == "label"
    day = feedback_by_day(cfg, "intent")[0]
    assert day["new_labels"] == 1


def test_duplicates_and_disagreement(cfg: Settings, log_predictions: Callable) -> None:
    (pid,) = log_predictions([("cancel it all", "cancel_subscription")])
    result = record_feedback(
        cfg,
        "intent",
        [
            item(pid, "close_account", agent="ann"),
            item(pid, "cancel_subscription", agent="ann"),  # ann again: the later one counts
            item(pid, "close_account", agent="bob"),  # bob disagrees with ann: both kept
        ],
    )
    assert [o.status for o in result.outcomes] == ["duplicate", "created", "created"]
    rows = FeedbackTable(cfg.feedback).read(["agent_id", "label"]).to_pylist()
    assert sorted((r["agent_id"], r["label"]) for r in rows) == [
        ("ann", "cancel_subscription"),
        ("bob", "close_account"),
    ]
    (day,) = feedback_by_day(cfg, "intent")
    assert day["corrections"] == 2 and day["predictions_reviewed"] == 1
    assert day["agreed"] == 1 and day["agreement_rate"] == 0.5


def test_note_redacted_with_keys(cfg: Settings, log_predictions: Callable) -> None:
    (pid,) = log_predictions([("hi", "lost_card")])
    note = "customer ann.lee@example.com called twice"
    record_feedback(cfg, "intent", [item(pid, "lost_card", note=note)])
    (row,) = FeedbackTable(cfg.feedback).read(["note", "subject_keys"]).to_pylist()
    assert "ann.lee@example.com" not in row["note"] and row["subject_keys"]


def test_summary_by_prediction_day(cfg: Settings, log_predictions: Callable) -> None:
    old = log_predictions([("a", "lost_card"), ("b", "lost_card")], days_ago=2)
    new = log_predictions([("c", "lost_card")])
    record_feedback(cfg, "intent", [item(old[0], "lost_card"), item(old[1], "refund_request")])
    record_feedback(cfg, "intent", [item(new[0], "refund_request")])
    days = feedback_by_day(cfg, "intent")
    assert [d["corrections"] for d in days] == [2, 1]
    assert days[0]["day"] < days[1]["day"]
    assert days[0]["agreement_rate"] == 0.5 and days[1]["agreed"] == 0
    assert feedback_by_day(cfg, "other") == []

"""A task's prediction as the API answers it and as the prediction log keeps it
(ml.serving.responses): intent fields renamed, other fields passed through, no span text kept."""

from __future__ import annotations

from ml.serving.responses import api_prediction, log_fields

INTENT = {
    "text": "i lost my card",
    "intent": "lost_card",
    "probability": 0.9,
    "top_k": [
        {"intent": "lost_card", "probability": 0.9},
        {"intent": "refund", "probability": 0.07},
        {"intent": "other", "probability": 0.03},
    ],
}


def test_intent_fields_are_renamed_cut_to_top_k_and_the_text_is_not_echoed() -> None:
    item = api_prediction(INTENT, "p1", top_k=2)
    assert item == {
        "prediction_id": "p1",
        "label": "lost_card",
        "confidence": 0.9,
        "top_k": [
            {"label": "lost_card", "confidence": 0.9},
            {"label": "refund", "confidence": 0.07},
        ],
    }


def test_fields_a_task_adds_pass_through_and_numbers_reach_the_log() -> None:
    """An out-of-scope answer (issue: out-of-scope detection) needs no change here."""
    extra = {**INTENT, "out_of_scope": True, "oos_score": 0.8, "in_scope_intent": "lost_card"}
    item = api_prediction(extra, "p2", top_k=1)
    assert item["out_of_scope"] is True and item["oos_score"] == 0.8
    assert item["in_scope_intent"] == "lost_card"
    logged = log_fields(item)
    assert logged["scores"] == {"out_of_scope": 1.0, "oos_score": 0.8}
    assert (logged["label"], logged["confidence"]) == ("lost_card", 0.9)


def test_entities_keep_types_and_scores_never_the_span_text() -> None:
    spans = [
        {"type": "person_name", "text": "Ann Lee", "start": 11, "end": 18, "score": 0.91},
        {"type": "order_id", "text": "ORD-123456", "start": 30, "end": 40, "score": 0.88},
    ]
    item = api_prediction({"text": "my name is Ann Lee, order ORD-123456", "spans": spans}, "p3", 1)
    assert item["spans"] == spans  # every span, whatever top_k: the caller needs them all
    logged = log_fields(item)
    assert logged == {
        "label": None,
        "confidence": None,
        "top_k": [
            {"label": "person_name", "confidence": 0.91},
            {"label": "order_id", "confidence": 0.88},
        ],
        "scores": {},
    }
    assert "Ann" not in repr(logged) and "123456" not in repr(logged)


def test_answers_log_the_best_answer_id() -> None:
    answers = [
        {"answer_id": "a1", "answer": "Your parcel ships tomorrow.", "score": 0.7},
        {"answer_id": "a2", "answer": "Refunds take 5 days.", "score": 0.2},
    ]
    item = api_prediction({"text": "where is my parcel", "answers": answers}, "p4", top_k=1)
    assert item["answers"] == answers[:1]
    logged = log_fields(item)
    assert (logged["label"], logged["confidence"]) == ("a1", 0.7)
    assert logged["top_k"] == [{"label": "a1", "confidence": 0.7}]

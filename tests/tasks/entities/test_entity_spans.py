"""The entities task's labelling scheme: span checks, BIO alignment to word pieces and back, and
entity-level span metrics."""

from __future__ import annotations

from typing import Any

import pytest

from ml.tasks.entities.metrics import span_metrics
from ml.tasks.entities.spans import Span, SpanError, bio_tags, check_spans, decode


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from ml.config import default_base_model

    return AutoTokenizer.from_pretrained(default_base_model())


@pytest.mark.parametrize(
    ("text", "spans", "rule"),
    [
        ("track order 3707955617", [Span(12, 24, "order_id")], "span_out_of_range"),
        ("refund $1", [Span(-1, 3, "amount")], "span_out_of_range"),
        ("see order113542617735902 now", [Span(9, 24, "order_id")], "span_splits_word"),
        ("ship to Valencia", [Span(8, 12, "city")], "span_splits_word"),
        (
            "bill from Mr. Jones",
            [Span(10, 19, "person_name"), Span(14, 19, "city")],
            "span_overlap",
        ),
        ("ship to Valencia", [Span(7, 8, "city")], "span_empty"),
        ("ship to Valencia", [Span(8, 16, "planet")], "unknown_entity_type"),
    ],
)
def test_bad_spans_are_refused_with_their_rule(text: str, spans: list[Span], rule: str) -> None:
    with pytest.raises(SpanError) as err:
        check_spans(text, spans)
    assert err.value.rule == rule


def test_good_spans_come_back_sorted() -> None:
    text = "bill #00108 from Mr. Jones"
    spans = [Span(17, 26, "person_name"), Span(5, 11, "invoice_id")]
    assert check_spans(text, spans) == sorted(spans)


def test_bio_tags_follow_word_pieces_and_decode_back_to_the_spans(tokenizer: Any) -> None:
    text = "check invoice #12588 from Mr. Jones in Valencia"
    spans = [Span(14, 20, "invoice_id"), Span(26, 35, "person_name"), Span(39, 47, "city")]
    enc = tokenizer(text, return_offsets_mapping=True)
    tags = bio_tags(enc["offset_mapping"], spans)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    tagged = [(p, t) for p, t in zip(pieces, tags, strict=True) if t not in ("O", None)]
    # "#12588" is three word pieces: B on the first, I on the rest.
    assert tagged[:4] == [
        ("#", "B-invoice_id"),
        ("125", "I-invoice_id"),
        ("##8", "I-invoice_id"),
        ("##8", "I-invoice_id"),
    ]
    assert tags[0] is None and tags[-1] is None  # [CLS], [SEP]: ignored by the loss
    decoded = decode(text, enc["offset_mapping"], [t or "O" for t in tags])
    assert [(d["type"], d["start"], d["end"], d["text"]) for d in decoded] == [
        ("invoice_id", 14, 20, "#12588"),
        ("person_name", 26, 35, "Mr. Jones"),
        ("city", 39, 47, "Valencia"),
    ]


def test_decode_starts_an_entity_at_a_stray_i_tag() -> None:
    text = "to Paris"
    offsets = [(0, 0), (0, 2), (3, 8), (0, 0)]
    spans = decode(text, offsets, ["O", "O", "I-city", "O"], [1.0, 0.9, 0.8, 1.0])
    assert spans == [{"type": "city", "text": "Paris", "start": 3, "end": 8, "score": 0.8}]


def test_span_metrics_need_exact_type_and_boundaries() -> None:
    gold = [[("city", 0, 5), ("order_id", 10, 20)], [("amount", 3, 5)], []]
    predicted = [[("city", 0, 5), ("order_id", 10, 19)], [("amount", 3, 5)], [("city", 0, 2)]]
    m = span_metrics(gold, predicted)
    assert m["per_class"]["city"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    assert m["per_class"]["order_id"]["f1"] == 0.0  # one character short is a miss
    assert m["per_class"]["amount"]["f1"] == 1.0
    assert m["micro_precision"] == 0.5 and m["micro_recall"] == pytest.approx(2 / 3)
    assert (m["n"], m["entities"]) == (3, 3)
    assert list(m["per_class"]) == ["order_id", "city", "amount"]  # ENTITY_TYPES order

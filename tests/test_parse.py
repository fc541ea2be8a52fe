import json
from datetime import date

import pytest

from ml.parse import Rejected, canonical_row, parse_items
from ml.sources import SourceSpec, read_items
from ml.taxonomy import known_intents

DAY = date(2026, 11, 22)
LABELS = known_intents()


def record(**over) -> dict:
    base = {
        "conversation_id": "c1",
        "source": "test",
        "started_at": "2026-11-22T10:00:00Z",
        "channel": "chat",
        "language": "en",
        "intent": "refund_request",
        "turns": [
            {"speaker": "customer", "text": "I want my money back, I'm jane@x.com"},
            {"speaker": "agent", "text": "Sure, let me check"},
            {"speaker": "customer", "text": "order ORD-12345678"},
        ],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def parsed(*lines: bytes) -> list:
    """Lines through the production path: a JSONL file read by ml.sources, then ml.parse."""
    import uuid

    import fsspec

    path = f"/parse-test/{uuid.uuid4().hex}.jsonl"
    fsspec.filesystem("memory").pipe(path, b"\n".join(lines) + b"\n")
    url = f"memory://{path}"
    items = read_items(SourceSpec(url=url), url, DAY)
    return list(parse_items(items, "f.jsonl", DAY, LABELS, "feed"))


def outcomes(*lines: bytes) -> list:
    return [outcome for _, outcome in parsed(*lines)]


def test_good_record_is_canonical_redacted_and_hashed() -> None:
    row = canonical_row(record(), DAY, LABELS, "feed")
    assert row["text"] == "I want my money back, I'm [EMAIL] order [ORDER_ID]"
    assert row["turns"][1] == {"speaker": "agent", "text": "Sure, let me check"}
    assert row["started_at"].isoformat() == "2026-11-22T10:00:00+00:00"
    assert len(row["content_hash"]) == 64
    assert canonical_row(record(), DAY, LABELS, "feed")["content_hash"] == row["content_hash"]
    assert (
        canonical_row(record(channel="email"), DAY, LABELS, "feed")["content_hash"]
        != row["content_hash"]
    )


def test_missing_optional_fields_get_defaults() -> None:
    row = canonical_row(
        record(source=..., channel=..., language=..., intent=...), DAY, LABELS, "feed"
    )
    assert (row["source"], row["channel"], row["language"], row["intent"]) == (
        "feed",
        "unknown",
        "und",
        None,
    )


@pytest.mark.parametrize(
    ("line", "rule", "needle"),
    [
        (b'{"conversation_id": "c1", "turns": [', "malformed_json", "malformed JSON"),
        (b"[1, 2]", "not_an_object", "list"),
        (b"\xff\xfe{}", "invalid_utf8", "UTF-8"),
        (
            json.dumps(record(turns=[{"speaker": "customer", "text": "\ud800 hi"}])).encode(),
            "invalid_utf8",
            "lone surrogate",
        ),
        (json.dumps(record(intent="\udfff")).encode(), "invalid_utf8", "field 'intent'"),
        (json.dumps(record(turns=...)).encode(), "missing_field", "'turns'"),
        (json.dumps(record(conversation_id=...)).encode(), "missing_field", "'conversation_id'"),
        (json.dumps(record(conversation_id=5)).encode(), "invalid_field", "must be str"),
        (json.dumps(record(started_at="yesterday")).encode(), "invalid_field", "ISO 8601"),
        (
            json.dumps(record(started_at="2026-11-23T00:00:00Z")).encode(),
            "outside_interval",
            "2026-11-22",
        ),
        (
            json.dumps(record(turns=[{"speaker": "bot", "text": "x"}])).encode(),
            "invalid_field",
            "speaker",
        ),
        (
            json.dumps(record(turns=[{"speaker": "customer", "text": "  "}])).encode(),
            "empty_text",
            "no customer",
        ),
        (json.dumps(record(intent="pizza_order")).encode(), "unknown_intent", "pizza_order"),
        (
            json.dumps(record(turns=[{"speaker": "customer", "text": "x" * 10_001}])).encode(),
            "text_too_long",
            "10001",
        ),
    ],
)
def test_bad_records_are_rejected_with_rule_and_reason(line: bytes, rule: str, needle: str) -> None:
    [out] = outcomes(line)
    assert isinstance(out, Rejected)
    assert (out.rule, out.source_file, out.line) == (rule, "f.jsonl", 1)
    assert needle in out.reason
    assert out.raw  # the raw record is kept for the data owner


def test_every_non_blank_line_has_one_outcome_with_its_line_number() -> None:
    lines = [
        json.dumps(record(conversation_id="a")).encode(),
        b"",
        b"{bad",
        json.dumps(record(conversation_id="b")).encode(),
    ]
    got = parsed(*lines)
    assert [item.number for item, _ in got] == [1, 3, 4]
    assert isinstance(got[1][1], Rejected) and got[1][1].line == 3


def test_control_characters_are_removed() -> None:
    row = canonical_row(
        record(turns=[{"speaker": "customer", "text": "refund\x00 please\x1b"}]),
        DAY,
        LABELS,
        "feed",
    )
    assert row["text"] == "refund please"


def test_batched_parse_equals_record_by_record_and_hash_is_content_hash(tmp_path) -> None:
    """Batching (vectorised redaction, the fast hash) changes no row, no rejection, no order."""
    from ml.generate import generate
    from ml.schema import content_hash

    [day] = generate(tmp_path, days=1, per_day=600, start=DAY, seed=3)
    items = [
        item for path in day.files for item in read_items(SourceSpec(url=str(path)), str(path), DAY)
    ]
    batched = [out for _, out in parse_items(items, "f", DAY, LABELS, "feed", batch_size=64)]
    single = []
    for item in items:
        try:
            if isinstance(item.record, Exception):
                raise item.record
            single.append(canonical_row(item.record, DAY, LABELS, "feed"))
        except ValueError as exc:
            single.append(getattr(exc, "rule", None))
    assert [o.rule if isinstance(o, Rejected) else o for o in batched] == single
    rows = [o for o in batched if not isinstance(o, Rejected)]
    assert len(rows) > 500
    for row in rows:
        assert row["content_hash"] == content_hash(row)

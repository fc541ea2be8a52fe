import json
from datetime import date

import pytest

from ml.ingest.parse import Rejected, canonical_row, parse_items
from ml.ingest.sources import SourceSpec, read_items
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
    """Lines through the production path: a JSONL file read by ml.ingest.sources, then ml.ingest.parse."""
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
        # Per-record rules that once failed the whole day, or crashed it.
        (b"[" * 100_000 + b"]" * 100_000, "too_deep", "64 levels"),
        (
            json.dumps(record(extra=None)).replace("null", "[" * 50_000 + "]" * 50_000).encode(),
            "too_deep",
            "64 levels",
        ),
        (
            json.dumps(record(started_at="0001-01-01T00:00:00+01:00")).encode(),
            "outside_interval",
            "0001-01-01",
        ),
        (
            json.dumps(record(started_at="9999-12-31T23:30:00-01:00")).encode(),
            "outside_interval",
            "9999-12-31",
        ),
        (
            json.dumps(record(turns=[{"speaker": "customer", "text": "hi"}] * 1_001)).encode(),
            "too_many_turns",
            "1001 turns",
        ),
        (
            json.dumps(record(turns=[{"speaker": "customer", "text": "y" * 10_000}] * 10)).encode(),
            "text_too_long",
            "100009 characters",
        ),
        (json.dumps(record(channel="fax")).encode(), "unknown_channel", "'fax'"),
        (json.dumps(record(language="fr")).encode(), "unknown_language", "'fr'"),
        (
            json.dumps(
                record(turns=[{"speaker": "customer", "text": "\u200b\u200d\ufeff\u2060"}])
            ).encode(),
            "empty_text",
            "no customer",
        ),
        (json.dumps(record(_pii={"name": 5})).encode(), "invalid_field", "'_pii'"),
        (json.dumps(record(conversation_id="\x00\u200b ")).encode(), "missing_field", "empty"),
    ],
)
def test_bad_records_are_rejected_with_rule_and_reason(line: bytes, rule: str, needle: str) -> None:
    [out] = outcomes(line)
    assert isinstance(out, Rejected)
    assert (out.rule, out.source_file, out.record) == (rule, "f.jsonl", 1)
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
    assert isinstance(got[1][1], Rejected) and got[1][1].record == 3


def test_control_characters_are_removed() -> None:
    row = canonical_row(
        record(turns=[{"speaker": "customer", "text": "refund\x00 please\x1b"}]),
        DAY,
        LABELS,
        "feed",
    )
    assert row["text"] == "refund please"


def test_every_string_field_is_cleaned_before_the_rules_and_redaction() -> None:
    """Control and invisible characters go and NFKC folds, in every field, not just turns."""
    row = canonical_row(
        record(
            conversation_id="c\x001\x1b[0m\u200b",
            source="crm\x07\x08",
            channel=" ＣＨＡＴ\u200d",
            language="e\u00adn",
            intent="refund\u2060_request",
            started_at="２０２６-11-22T10:00:00Z",
            turns=[
                {"speaker": "customer\u200b", "text": "mail ｊａｎｅ＠ｘ．ｃｏｍ\x00 ﬁne\u200b"},
                {"speaker": "agent", "text": "line\none\ttab\u202e"},
            ],
        ),
        DAY,
        LABELS,
        "feed",
    )
    assert (row["conversation_id"], row["source"], row["channel"]) == ("c1[0m", "crm", "chat")
    assert (row["language"], row["intent"]) == ("en", "refund_request")
    assert row["text"] == "mail [EMAIL] fine"  # the full-width address is redacted too
    assert row["turns"][1] == {"speaker": "agent", "text": "line\none\ttab"}


def test_redaction_that_lengthens_the_text_past_its_limit_quarantines_the_record() -> None:
    """The model text is checked as stored: "a@b.co" (6) becomes "[EMAIL]" (7)."""
    turns = [{"speaker": "customer", "text": "a@b.co " * 1_428}] * 10  # 99,959 characters
    [out] = outcomes(json.dumps(record(turns=turns)).encode())
    assert isinstance(out, Rejected) and out.rule == "text_too_long"
    assert "114239 characters" in out.reason


def test_a_rejected_records_fields_are_storable_and_nothing_is_lost() -> None:
    """A lone surrogate (a \\u escape) or undecodable bytes cannot fail the writer."""
    import pyarrow as pa

    from ml.quarantine import QUARANTINE_SCHEMA

    got = outcomes(
        json.dumps(record(conversation_id="id-\ud83d")).encode(),
        b'{"conversation_id": "bad\xff\xfe"}',
    )
    assert [o.rule for o in got] == ["invalid_utf8", "invalid_utf8"]
    rows = [o.as_row() for o in got]
    # A lone surrogate left as it is would raise UnicodeEncodeError in the writer.
    pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
    assert rows[0]["conversation_id"] == "id-\\ud83d" and "\\ud83d" in rows[0]["raw"]
    assert rows[1]["raw"] == '{"conversation_id": "bad\\xff\\xfe"}'


def test_a_byte_order_mark_opens_the_file_not_the_first_record() -> None:
    """As the CSV reader does (utf-8-sig)."""
    got = outcomes(b"\xef\xbb\xbf" + json.dumps(record()).encode(), b"\xef\xbb\xbf{}")
    assert not isinstance(got[0], Rejected)
    assert got[1].rule == "malformed_json"  # only the file's first line may carry one


def test_an_integer_too_long_for_python_is_still_json() -> None:
    line = json.dumps(record(extra=None)).replace("null", "9" * 5_000).encode()
    [out] = outcomes(line)
    assert not isinstance(out, Rejected)


def test_batched_parse_equals_record_by_record_and_hash_is_content_hash(tmp_path) -> None:
    """Batching (vectorised redaction, the fast hash) changes no row, no rejection, no order."""
    from ml.synthetic.generate import generate
    from ml.transcript import content_hash

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


KEY = b"test-pii-key"


def test_a_personal_conversation_id_becomes_a_stable_pseudonym() -> None:
    """An e-mail, phone or card used as id (in any spelling) never reaches the row; the
    pseudonym is the same on every run and for every spelling of one value."""
    ids = {
        "ann@x.com": "ann@x.com",
        "ａｎｎ＠ｘ．ｃｏｍ": "ann@x.com",
        "an\u200bn@x\u202e.com": "ann@x.com",
        "+44 20 7946 0958": "+44 20 7946 0958",
        "4111.1111.1111.1111": "4111.1111.1111.1111",
        "de89 3704 0044 0532 0130 00": "de89 3704 0044 0532 0130 00",
    }
    pseudonyms = {}
    for raw, same_as in ids.items():
        row = canonical_row(record(conversation_id=raw), DAY, LABELS, "feed", KEY)
        cid = row["conversation_id"]
        assert cid.startswith("anon-") and not any(c.isdigit() for c in cid)
        assert pseudonyms.setdefault(same_as, cid) == cid
    assert len(set(pseudonyms.values())) == 4
    for plain in ("c1", "syn-20261122-000123", "abcd-3592"):
        assert (
            canonical_row(record(conversation_id=plain), DAY, LABELS, "feed", KEY)[
                "conversation_id"
            ]
            == plain
        )


def test_the_source_is_redacted_and_a_known_value_in_the_id_is_personal() -> None:
    row = canonical_row(
        record(
            conversation_id="cminh730-1",
            source="crm bob@example.org",
            _pii={"username": ["cminh730"]},
        ),
        DAY,
        LABELS,
        "feed",
        KEY,
    )
    assert row["source"] == "crm [EMAIL]"
    assert row["conversation_id"].startswith("anon-")


def test_subject_keys_hold_every_identifier_removed_and_the_sources_values() -> None:
    from ml.subjects import subject_key
    from ml.transcript import content_hash

    row = canonical_row(
        record(
            conversation_id="dan@example.com",
            source="erin@example.com",
            turns=[
                {"speaker": "customer", "text": "I'm ＡＮＮ＠example.com, call +44 20 7946 0958"},
                {"speaker": "agent", "text": "or 020-7946-0958? card 4111 1111 1111 1111"},
            ],
            _pii={"email": "bob@example.org", "customer_id": ["C-1001"], "name": ["Bob Ray"]},
        ),
        DAY,
        LABELS,
        "feed",
        KEY,
    )
    expected = {
        subject_key("email", "ann@example.com", KEY),
        subject_key("phone", "+44 20 7946 0958", KEY),
        subject_key("phone", "020 7946 0958", KEY),
        subject_key("email", "dan@example.com", KEY),
        subject_key("email", "erin@example.com", KEY),
        subject_key("email", "bob@example.org", KEY),
        subject_key("customer_id", "C-1001", KEY),
    }
    assert row["subject_keys"] == sorted(expected)
    assert row["content_hash"] == content_hash(row)
    plain = canonical_row(
        record(turns=[{"speaker": "customer", "text": "hi"}]), DAY, LABELS, "f", KEY
    )
    assert plain["subject_keys"] == [] and plain["content_hash"] == content_hash(plain)


def test_a_rejected_records_reason_and_id_name_no_pii() -> None:
    got = outcomes(
        json.dumps(record(conversation_id="ann@x.com", intent="carol@example.net")).encode(),
        json.dumps(record(channel="4111 1111 1111 1111")).encode(),
        json.dumps(record(language="ｄａｎ＠ｘ．ｃｏｍ")).encode(),
    )
    assert [o.rule for o in got] == ["unknown_intent", "unknown_channel", "unknown_language"]
    rows = [o.as_row() for o in got]
    derived = json.dumps([{k: v for k, v in r.items() if k != "raw"} for r in rows])
    for value in ("ann@x.com", "carol@example.net", "4111 1111 1111 1111", "dan@x.com"):
        assert value not in derived
    assert rows[0]["conversation_id"].startswith("anon-")
    assert "'[EMAIL]'" in rows[0]["reason"] and "'[CARD]'" in rows[1]["reason"]


def test_a_row_the_detectors_still_find_pii_in_is_quarantined_without_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should redaction ever leave what its detectors find (a bug), the row is quarantined
    alone under `pii_after_redaction`; the reason names fields, never text."""
    import ml.ingest.parse as parse

    monkeypatch.setattr(parse, "redact_many", lambda texts, known, found=None: list(texts))
    got = outcomes(
        json.dumps(
            record(turns=[{"speaker": "customer", "text": "card 4111 1111 1111 1111"}])
        ).encode(),
        json.dumps(
            record(conversation_id="c2", turns=[{"speaker": "customer", "text": "hi"}])
        ).encode(),
    )
    assert isinstance(got[0], Rejected) and got[0].rule == "pii_after_redaction"
    assert "4111" not in got[0].reason and "turns" in got[0].reason
    assert not isinstance(got[1], Rejected)

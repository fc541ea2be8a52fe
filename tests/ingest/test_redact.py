import pytest
from ci import dataset

from ml.ingest.redact import luhn_ok, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+cs@example.co.uk please", "write to [EMAIL] please"),
        ("card 4111 1111 1111 1111 thanks", "card [CARD] thanks"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("call +1 415-555-0134 now", "call [PHONE] now"),
        ("or (415) 555 0134", "or [PHONE]"),
        ("uk 07700 900123", "uk [PHONE]"),
        ("order ORD-12345678 and #A1B2C3D4", "order [ORDER_ID] and [ORDER_ID]"),
        ("Hi, my name is Jane Doe", "Hi, my name is [NAME]"),
        ("Hi Maria, thanks for waiting", "Hi [NAME], thanks for waiting"),
        ("Hi, Olivia Lopez here. How do I", "Hi, [NAME] here. How do I"),
        ("hello, i'm Kwame Müller. please", "hello, i'm [NAME]. please"),
    ],
)
def test_redacts_each_kind(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I paid 1200 dollars on 2026-11-22 for 3 items",
        "the total was 129.99 and it is 2024",
        "card 4111 1111 1111 1112 fails Luhn so it stays",
        "Hi there, thanks",
        "I need help with my bill",
        "I'm still waiting, I'm Not happy",
        "Hi there, Support Team here",
    ],
)
def test_leaves_pii_free_text_alone(text: str) -> None:
    assert redact(text) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iban DE89 3704 0044 0532 0130 00 pls", "iban [IBAN] pls"),
        ("GB82WEST12345698765432", "[IBAN]"),
        ("Order ID: 3348917502", "Order ID: [ORDER_ID]"),
        ("my account number is 55-123456 ok", "my account number is [ACCOUNT_ID] ok"),
        ("this is URGENT, please", "this is URGENT, please"),
    ],
)
def test_iban_and_labelled_ids(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_source_given_values_are_redacted_with_their_parts() -> None:
    known = {"customer_name": ["crystal minh"], "username": ["cminh730"]}
    assert redact("Crystal Minh, user cminh730. Thanks Crystal", known) == (
        "[NAME], user [ACCOUNT_ID]. Thanks [NAME]"
    )


def test_recall_on_generated_pii_meets_targets(tmp_path) -> None:
    """≥ 99% of seeded e-mails, phones and cards removed; ≤ 1% of PII-free turns changed."""
    from datetime import date

    from ml.ingest import redaction_metrics as ev
    from ml.synthetic.generate import generate

    days = generate(tmp_path, days=3, per_day=300, start=date(2026, 11, 1), seed=11)
    cases = [c for d in days for c in ev.generated_cases(d.files, d.pii)]
    found, changed, clean = ev.recall(cases, redact)
    for kind in ("email", "phone", "card", "order_id"):
        assert found.total[kind] > 20 and found.rate(kind) >= 0.99, (kind, found.misses[kind])
    assert found.rate("name") >= 0.9
    assert clean > 1000 and changed <= 0.01


def test_abcd_scenario_values_all_removed_with_source_values() -> None:
    from ml.ingest import redaction_metrics as ev

    path = dataset("abcd-sample/abcd_sample.json")
    cases = ev.abcd_cases(path)
    found = ev.Recall()
    for text, values, known in cases:
        for kind, value in values:
            found.add(kind, value, redact(text, known))
    assert sum(found.total.values()) >= 15
    assert sum(found.found.values()) == sum(found.total.values()), dict(found.misses)


def _fuzz_texts(n: int, seed: int) -> list[str]:
    """Texts glued from PII-like fragments, separators and non-ASCII, to stress the screens."""
    import random

    rng = random.Random(seed)
    parts = [
        "jane.doe+cs@example.co.uk", "4111 1111 1111 1111", "4111-1111-1111-1112", "+1 415-555-0134",
        "(415) 555 0134", "07700 900123", "ORD-12345678", "#A1B2C3D4", "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000", "order id: 3348917502", "Account no 55-1234", "invoice #A12345",
        "my name is Jane Doe", "Hi Maria,", "Olivia Lopez here", "I'm Kwame", "i am Tom", "Dear Ann",
        "Thanks Bob", "This is URGENT", "Hello Sir", "1200", "2026-11-22", "129.99", "١٢٣٤٥٦٧٨٩٠١",
        "Müller", "ÉRIC", "x123456789", "12 34 56 78 90", "123 456 789", "4222222222222", "here", "#", "@", "ORD-", "member 12ab34",
        "Straße 5", "ſtate", "K", "acct", "customer is A1-23456",
    ]  # fmt: skip
    seps = [" ", "", ", ", ". ", "-", "\n", " here ", "é"]
    return [
        "".join(rng.choice(parts) + rng.choice(seps) for _ in range(rng.randrange(1, 6)))
        for _ in range(n)
    ]


def test_redact_many_equals_redact_on_generated_and_fuzzed_text(tmp_path) -> None:
    """The vectorised redactor is an optimisation only: identical output, text by text."""
    from datetime import date

    from ml.ingest import redaction_metrics as ev
    from ml.ingest.redact import redact_many
    from ml.synthetic.generate import generate

    days = generate(tmp_path, days=2, per_day=400, start=date(2026, 11, 1), seed=5)
    texts = [text for d in days for text, _ in ev.generated_cases(d.files, d.pii)]
    texts += _fuzz_texts(3000, seed=1)
    known = [None] * len(texts)
    known[::50] = [{"customer_name": ["jane doe"], "order_id": ["ORD-12345678"]}] * len(known[::50])
    expected = [redact(t, k) for t, k in zip(texts, known, strict=True)]
    assert sum(e != t for e, t in zip(expected, texts, strict=True)) > 1000  # PII was present
    assert redact_many(texts, known) == expected
    assert redact_many([], []) == []

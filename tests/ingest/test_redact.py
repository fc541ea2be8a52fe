import pytest
from ci import dataset

from ml.ingest.parse import clean_text
from ml.ingest.redact import luhn_ok, pii_kinds, redact


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
        # Timestamps and dated ticket ids are not phone numbers.
        "sent 2026-11-22 10:30, again 2026/11/23 09:15",
        "ticket 20261122-000123 is still open",
        "ticket 20261122-000007 passes Luhn but is grouped as no card is",
        "card 4111.1111.1111.1112 fails Luhn so it stays",
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111.1111.1111.1111 ok", "card [CARD] ok"),
        ("card 4111/1111/1111/1111 ok", "card [CARD] ok"),
        ("card 4111  1111  1111  1111 ok", "card [CARD] ok"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("mail jürgen@exämple.de ok", "mail [EMAIL] ok"),
        ("mail 用户@例子.公司 ok", "mail [EMAIL] ok"),
        ("mail उपयोगकर्ता@उदाहरण.भारत ok", "mail [EMAIL] ok"),  # vowel signs are marks
        ("iban de89 3704 0044 0532 0130 00 ok", "iban [IBAN] ok"),
        ("iban gb82west12345698765432", "iban [IBAN]"),
        ("call +33 1 23 45 67 89", "call [PHONE]"),
        ("call +44 (0)20 7946 0958", "call [PHONE]"),
        ("call 089/1234567 or 1-800-555-0134", "call [PHONE] or [PHONE]"),
    ],
)
def test_redacts_the_spellings_that_slipped_through(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert pii_kinds(text) and not pii_kinds(expected)  # the gate's detectors agree


@pytest.mark.parametrize(
    "text",
    [
        "mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ now",  # full-width
        "mail jane﹫example.com now",  # small commercial at
        "mail ja\u200bne@exa\u2060mple.com now",  # zero-width space, word joiner
        "mail jane\u202e@example\u202c.com now",  # bidi override
        "card 4111\u200b1111\u200c1111\u200d1111 now",
        "card 4111 1111\u2066 1111 1111\u2069 now",  # bidi isolates
        "card ４１１１ １１１１ １１１１ １１１１ now",
    ],
)
def test_pii_disguised_by_unicode_is_redacted_once_cleaned(text: str) -> None:
    """Ingest redacts text as cleaned (NFKC, no invisible characters): every disguise falls."""
    assert redact(clean_text(text)) in ("mail [EMAIL] now", "card [CARD] now")


def test_the_redactor_reports_the_emails_and_phones_it_removed() -> None:
    found: list = []
    text = "Ann@Example.com, +44 20 7946 0958, card 4111 1111 1111 1111, order ORD-12345678"
    assert redact(text, found=found) == "[EMAIL], [PHONE], card [CARD], order [ORDER_ID]"
    assert found == [("email", "Ann@Example.com"), ("phone", "+44 20 7946 0958")]


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
        "4111.1111.1111.1111", "4111/1111/1111/1111", "4111  1111  1111  1111", "de89 3704 0044 0532 0130 00",
        "gb82west12345698765432", "jürgen@exämple.de", "+33 1 23 45 67 89", "089/1234567",
        "2026-11-22 10:30", "20261122-000123", "ann_lee@mail_x.com", "+44 (0)20 7946 0958",
        "syn-20261122-000123", "+1 20261122-000123", "x20261122-4155550134", "2026-11-22.4155550134",
        "AB20261122 3456", "2026/11/22 415 555 0134", "1 2026.11.22-000123", "19991231T235959",
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
    found_one: dict[int, list] = {}
    expected = [
        redact(t, k, found_one.setdefault(i, []))
        for i, (t, k) in enumerate(zip(texts, known, strict=True))
    ]
    assert sum(e != t for e, t in zip(expected, texts, strict=True)) > 1000  # PII was present
    found: dict[int, list] = {}
    assert redact_many(texts, known, found) == expected
    assert {i: sorted(f) for i, f in found.items()} == {
        i: sorted(f) for i, f in found_one.items() if f
    }
    assert redact_many([], []) == []


def test_detecting_many_texts_equals_detecting_each(tmp_path) -> None:
    """The gate's vectorised detectors (RE2 screens, dated runs blanked for the phone screen)
    find exactly what the redactor's rules find, text by text."""
    import pyarrow as pa

    from ml.ingest.redact import detect, detect_array

    texts = _fuzz_texts(4000, seed=2)
    expected = {i: found for i, text in enumerate(texts) if (found := detect(text))}
    assert len(expected) > 1000
    assert detect_array(pa.array(texts)) == expected

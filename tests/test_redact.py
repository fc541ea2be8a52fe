import pytest

from ml.redact import luhn_ok, redact


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

"""PII redaction: replace personal data in transcript text by typed placeholders.

Runs before anything is stored, so the lake, the quarantine's derived fields and the model
never see raw e-mails, phone numbers, card numbers or order ids. Card numbers are replaced
only when they pass the Luhn check, so ordinary long numbers (amounts, tracking ids) survive.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PLACEHOLDERS = ("[EMAIL]", "[CARD]", "[PHONE]", "[ORDER_ID]", "[NAME]")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes.
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# International or national numbers with at least 9 digits in groups; run after cards.
_PHONE = re.compile(
    r"(?<![\w])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){1,3}(?![\w])"
)
_ORDER = re.compile(r"\bORD-\d{6,}\b|#[A-Z0-9]{6,}\b")
# A name the speaker states: "my name is Ann Lee", "I'm Ann", "Ann Lee here", "Hi Ann,".
_WORD = r"[A-ZÀ-Ý][^\W\d_]+"
_NAME = re.compile(
    r"(?:(?<=[Mm]y name is )|(?<=[Tt]his is )|(?<=\b[Ii]'m )|(?<=\b[Ii] am )|(?<=\bHi )"
    r"|(?<=\bHello )|(?<=\bThanks )|(?<=\bDear ))"
    rf"{_WORD}(?: {_WORD})?"
    rf"|\b{_WORD} {_WORD}(?= here\b)"
)
_NOT_NAMES = frozenset(
    {
        "I",
        "The",
        "There",
        "Thanks",
        "Thank",
        "Team",
        "Support",
        "Sir",
        "Madam",
        "Not",
        "Just",
        "Still",
        "So",
        "Sorry",
        "Trying",
        "Looking",
        "Having",
        "Calling",
        "Writing",
        "Here",
        "Back",
        "Done",
        "Good",
        "Happy",
        "Unable",
        "On",
        "In",
        "At",
        "With",
        "From",
        "About",
        "Again",
        "Afraid",
        "Glad",
        "New",
        "Very",
        "Really",
        "Also",
        "All",
        "Everyone",
        "Everybody",
        "Guys",
        "Folks",
    }
)


def luhn_ok(digits: str) -> bool:
    """True when `digits` (only 0-9) passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    # Fewer than 9 digits is a price, a year or a quantity, not a phone number.
    return "[PHONE]" if 9 <= len(digits) <= 15 else match.group()


def _name(match: re.Match[str]) -> str:
    first = match.group().split()[0]
    return match.group() if first in _NOT_NAMES else "[NAME]"


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str], ...] = (
    (_EMAIL, "[EMAIL]"),
    (_ORDER, "[ORDER_ID]"),
    (_CARD, _card),
    (_PHONE, _phone),
    (_NAME, _name),
)


def redact(text: str) -> str:
    """Return `text` with every PII match replaced by its placeholder."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text

"""PII redaction: replace personal data in transcript text by typed placeholders.

Runs before anything is stored, so the lake, the quarantine's derived fields and the model
never see raw e-mails, phone numbers, card numbers or order ids. Card numbers are replaced
only when they pass the Luhn check, so ordinary long numbers (amounts, tracking ids) survive.

Text is redacted as ingest cleans it (ml.ingest.parse.clean_text: Unicode NFKC, no invisible
or control characters), so a full-width `＠` or a card split by zero-width spaces is seen as
written. The same detectors decide what counts as PII left after redaction (:func:`pii_kinds`,
the ingest gate), so the redactor and the gate cannot disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def _marks() -> str:
    """Combining marks (Unicode M*), as a regex class body: part of a word in most scripts
    (Devanagari's vowel signs, Arabic's harakat), though Python's \\w leaves them out."""
    codes = [*range(0x300, 0x20000), *range(0xE0000, 0xE1000)]  # no marks elsewhere
    marks = [c for c in codes if unicodedata.category(chr(c)).startswith("M")]
    ranges, start = [], marks[0]
    for prev, c in zip(marks, marks[1:] + [-1], strict=True):
        if c != prev + 1:
            ranges.append(chr(start) if start == prev else f"{chr(start)}-{chr(prev)}")
            start = c
    return "".join(ranges)


_M = _marks()
# Any script: "jürgen@exämple.de", "用户@例子.公司" (RFC 6531 addresses); a letters-only TLD.
_EMAIL = re.compile(rf"[\w{_M}.%+-]+@[\w{_M}.-]+\.(?:[^\W\d_]|[{_M}]){{2,}}")
# The same on ASCII text, for RE2 (pyarrow), whose \w is ASCII: equal matches there (and
# for Python on ASCII text: the class of marks makes the one above 10x slower).
_EMAIL_ASCII = r"[A-Za-z0-9_.%+-]+@[A-Za-z0-9_.-]+\.[A-Za-z]{2,}"
_EMAIL_ASCII_RE = re.compile(_EMAIL_ASCII)
# 13-19 digits (checked in `_card`), unbroken or grouped as cards are printed (4-4-4-4,
# 4-6-5, 4-4-4-4-3, ...) by one or two spaces, dots, slashes or dashes. Not any grouping: a
# dated id ("20261122-000123") is no card.
_CARD_SEP = r"(?: {1,2}|[./-])"
_CARD = re.compile(
    rf"(?=\d)\b(?:\d{{13,19}}|\d{{4}}(?:{_CARD_SEP}\d{{3,6}}){{1,3}}{_CARD_SEP}\d{{1,6}})\b"
)
_NOT_DIGIT = re.compile(r"\D")
# Each pattern below opens with a lookahead for the characters a match can start with: the
# same matches, but Python's engine skips other positions at once (2-5x faster).
# International or national numbers with at least 9 digits (checked in `_phone`), in groups
# separated by spaces, dots, slashes or dashes: "+33 1 23 45 67 89", "+44 (0)20 7946 0958",
# "1-800-555-0134", "089/1234567". Run after cards. None starts at a date (YYYYMMDD,
# YYYY-MM-DD) followed by more, nor inside one: that is a timestamp or a dated ticket or
# conversation id ("2026-11-22 10:30", "20261122-000123"), and the phone after a date
# ("2026-11-22 415 555 0134") is found whole.
_DATED = r"(?:19|20)\d\d(?P<d>[./-]?)(?:0[1-9]|1[0-2])(?P=d)(?:0[1-9]|[12]\d|3[01])[ T./-]"
_PHONE_SEP = r"[ ./-]{0,2}"
_PHONE = re.compile(
    rf"(?=[+(\d])(?<![\w])(?!{_DATED})(?<!(?:19|20)\d\d[-./])(?<!(?:19|20)\d\d[-./]\d\d[-./])"
    rf"(?:\+\d{{1,3}}{_PHONE_SEP})?(?:\(\d{{1,4}}\){_PHONE_SEP})?"
    rf"\d{{1,5}}(?:{_PHONE_SEP}\d{{2,5}}){{1,4}}(?![\w])"
)
_ORDER = re.compile(r"\bORD-\d{6,}\b|#[A-Z0-9]{6,}\b")
# An id the customer labels: "order id: 3348917502", "account no 55-1234", "invoice #A12345".
_LABELLED_ID = re.compile(
    r"(?=(?i:[opiamc]))(?i:\b(order|purchase|invoice|account|acct|member(?:ship)?|customer)"
    r"(?:\s+(?:id|number|no\.?|num|#))?(?:\s+is)?\s*[:#]?\s*)"
    r"(?=[A-Za-z0-9-]*\d)([A-Za-z0-9][A-Za-z0-9-]{4,}[A-Za-z0-9])\b"
)
# ISO 13616: country, check digits, 11-30 alphanumerics, printed in groups of four; in any
# case ("de89 3704 ..."). ASCII only: IBANs are, and iban_ok reads base-36 digits.
_IBAN = re.compile(
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE | re.ASCII
)
# A name the speaker states: "my name is Ann Lee", "I'm Ann", "Ann Lee here", "Hi Ann,".
_WORD = r"[A-ZÀ-Ý][^\W\d_]+"
_NAME = re.compile(
    r"(?=[A-ZÀ-Ý])(?:(?:(?<=[Mm]y name is )|(?<=[Tt]his is )|(?<=\b[Ii]'m )|(?<=\b[Ii] am )|(?<=\bHi )"
    r"|(?<=\bHello )|(?<=\bThanks )|(?<=\bDear ))"
    rf"{_WORD}(?: {_WORD})?"
    rf"|\b{_WORD} {_WORD}(?= here\b))"
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


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: a doubled digit, its digits summed


def luhn_ok(digits: str) -> bool:
    """True when `digits` (only 0-9) passes the Luhn checksum used by payment cards."""
    total = sum(map(int, digits[-1::-2])) + sum(_DOUBLED[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """True when `candidate` (spaces allowed) passes the IBAN mod-97 check."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    text = match.group()
    if iban_ok(text):
        return "[IBAN]"
    # In any case, the groups may run on into the words after it ("BE54 0000 0000 0000
    # thanks"): the longest part up to a space that passes the check is the IBAN.
    for cut in [i for i, c in enumerate(text) if c == " "][::-1]:
        if iban_ok(text[:cut]):
            return "[IBAN]" + _IBAN.sub(_iban, text[cut:])
    return text


def _labelled_id(match: re.Match[str]) -> str:
    kind = (
        "[ORDER_ID]"
        if match.group(1).lower() in ("order", "purchase", "invoice")
        else "[ACCOUNT_ID]"
    )
    return match.group()[: match.start(2) - match.start()] + kind


def _card(match: re.Match[str]) -> str:
    digits = _NOT_DIGIT.sub("", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    digits = _NOT_DIGIT.sub("", match.group())
    # Fewer than 9 digits is a price, a year or a quantity, not a phone number.
    return "[PHONE]" if 9 <= len(digits) <= 15 else match.group()


def _name(match: re.Match[str]) -> str:
    first = match.group().split()[0]
    # "this is URGENT": shouting is not a name.
    return match.group() if first in _NOT_NAMES or first.isupper() else "[NAME]"


Rule = tuple[str, re.Pattern[str], Callable[[re.Match[str]], str] | str]
_RULES: tuple[Rule, ...] = (
    ("email", _EMAIL, "[EMAIL]"),
    ("iban", _IBAN, _iban),
    ("order_id", _ORDER, "[ORDER_ID]"),
    ("labelled_id", _LABELLED_ID, _labelled_id),
    ("card", _CARD, _card),
    ("phone", _PHONE, _phone),
    ("name", _NAME, _name),
)
_RULES_BY_KIND = {rule[0]: rule for rule in _RULES}
# Arrays this short are redacted text by text: the vectorised path's fixed cost (a dozen
# Arrow passes) would exceed Python's (a feed's few `source` values, say).
_FEW = 8
# Kinds whose detection is precise enough to prove a leak in already-redacted text.
CHECKED_KINDS = ("email", "iban", "card", "phone")
# Kinds whose removed values are kept as keyed hashes (ml.subjects.subject_key): how erasure
# finds a person's rows in a redacted lake.
IDENTIFIER_KINDS = ("email", "phone")
# Source-given values (ABCD's scenario, a CRM field) map to these placeholders.
KNOWN_KINDS = {
    "name": "[NAME]",
    "customer_name": "[NAME]",
    "username": "[ACCOUNT_ID]",
    "account_id": "[ACCOUNT_ID]",
    "customer_id": "[ACCOUNT_ID]",
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "order_id": "[ORDER_ID]",
}
# What a redactor found: (kind, the value as written), e.g. ("email", "ann@example.com").
Found = list[tuple[str, str]]


def _known(text: str, known: dict[str, list[str]]) -> str:
    """Replace values the source says are personal, case-insensitively, whole words only."""
    for kind, values in known.items():
        placeholder = KNOWN_KINDS.get(kind, "[PII]")
        parts = [values] if isinstance(values, str) else values
        # A full name also hides its parts ("Crystal Minh" → "Crystal", "Minh").
        words = {w for v in parts for w in ([v, *v.split()] if "name" in kind else [v])}
        for value in sorted((w for w in words if len(w) >= 2), key=len, reverse=True):
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", placeholder, text, flags=re.I)
    return text


def known_in(text: str, known: dict[str, list[str]]) -> bool:
    """Whether `text` holds a value the source marks as personal."""
    return _known(text, known) != text


def redact(text: str, known: dict[str, list[str]] | None = None, found: Found | None = None) -> str:
    """Return `text` with every PII match replaced by its placeholder.

    `known` holds values the source marks as personal (kind → values), replaced first.
    `found`, when given, receives each e-mail and phone number replaced (IDENTIFIER_KINDS).
    """
    if known:
        text = _known(text, known)
    return _apply(text, _applicable(text), found)


def _apply(
    text: str,
    rules: Iterable[Rule],
    found: Found | None = None,
    kinds: Iterable[str] = IDENTIFIER_KINDS,
) -> str:
    for kind, pattern, repl in rules:
        if found is not None and kind in kinds:
            repl = _recorder(kind, repl, found)
        text = pattern.sub(repl, text)
    return text


def _recorder(kind: str, repl: Callable[[re.Match[str]], str] | str, found: Found) -> Any:
    """`repl` that also notes each value it replaces in `found`."""

    def record(match: re.Match[str]) -> str:
        out = repl if isinstance(repl, str) else repl(match)
        if out != match.group():
            found.append((kind, match.group()))
        return out

    return record


# Per rule, an RE2 pattern that matches every ASCII text in which the rule changes anything,
# at any stage of redaction (placeholders add no digit, '@', '#' nor the literals below). No
# lookarounds (what makes the rules slow in Python): dropping them only widens a screen.
_SCREENS = {
    "email": "@",
    # Two letters opening a word, two digits, two groups of four: what every IBAN opens with.
    "iban": r"(?i)\b[a-z]{2}[0-9]{2}(?: ?[a-z0-9]{4}){2}",
    "labelled_id": r"(?i:order|purchase|invoice|account|acct|member|customer)[^0-9]*[0-9]",
    # What every card match opens with: 13 digits, or a group of 4 and the next one's first 3
    # (RE2's \b is Python's on ASCII; a placeholder never joins a word to a digit).
    "card": r"\b(?:[0-9]{13}|[0-9]{4}(?: {1,2}|[./-])[0-9]{3})",
    # 9+ digits with at most three of the phone's separators between two of them.
    "phone": r"[0-9](?:[ ./()+-]{0,3}[0-9]){8}",
    # A lead-in and a capitalised word after it ("Thanks for ..." is none), or two such words
    # before " here": _NAME's matches on ASCII text, without its lookarounds.
    "name": r"(?:[Mm]y name is |[Tt]his is |[Ii]'m |[Ii] am |Hi |Hello |Thanks |Dear )[A-Z][A-Za-z]"
    r"|[A-Z][A-Za-z]+ [A-Z][A-Za-z]+ here",
}
# Rules whose replacement is a fixed string: RE2 gives Python's match on ASCII text.
_PURE = {"email": _EMAIL_ASCII, "order_id": _ORDER.pattern}
_LATER = ("labelled_id", "card", "phone", "name")  # after the pure ones, in _RULES order


def redact_many(
    texts: Sequence[str],
    known: Sequence[dict[str, list[str]] | None],
    found: dict[int, Found] | None = None,
) -> list[str]:
    """`[redact(t, k) for t, k in zip(texts, known)]`, with the same output, much faster."""
    import pyarrow as pa

    if not texts:
        return []
    return redact_array(pa.array(texts, pa.string()), known, found).to_pylist()


def redact_array(
    texts: Any,
    known: Sequence[dict[str, list[str]] | None] | None = None,
    found: dict[int, Found] | None = None,
) -> Any:
    r"""`redact` over a pyarrow string array (`known`: per text, or None for none at all).

    On ASCII texts, e-mails and order ids are replaced by RE2 (pyarrow) at C speed, then RE2
    screens each text for the remaining rules so Python runs only those a text can match.
    Texts with non-ASCII characters, source-given PII or an IBAN candidate take `redact`
    (Python's Unicode-aware \d, \w and case folding differ from RE2's ASCII ones).
    `found`, when given, receives per index the e-mails and phone numbers replaced there.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = texts
    if len(arr) <= _FEW:
        got = [[] for _ in range(len(arr))]
        out = [
            None if t is None else redact(t, known[i] if known is not None else None, got[i])
            for i, t in enumerate(arr.to_pylist())
        ]
        if found is not None:
            found.update((i, g) for i, g in enumerate(got) if g)
        return pa.array(out, pa.string())
    slow = ~pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    slow |= _matches(arr, _SCREENS["iban"])
    if known is not None:
        slow |= np.fromiter((bool(k) for k in known), bool, len(arr))
    # E-mails RE2 replaces below (the first rule: Python finds the same ones in the original).
    mailed = np.flatnonzero(_matches(arr, "@") & ~slow) if found is not None else []
    for kind in ("email", "order_id"):  # _RULES order: email, (iban: slow rows only), order_id
        repl = _RULES_BY_KIND[kind][2]
        if not isinstance(repl, str):
            raise TypeError(f"{kind}: a pure rule replaces by a fixed string")
        arr = pc.replace_substring_regex(arr, _PURE[kind], repl)
    hits = np.stack([_matches(arr, _SCREENS[k]) for k in _LATER], axis=1)
    # Which of the later rules a text needs, as a bit set: one lookup a row, no Python zip.
    codes = hits.astype(np.int64) @ (1 << np.arange(len(_LATER)))
    by_code = [
        [_RULES_BY_KIND[k] for bit, k in enumerate(_LATER) if code >> bit & 1]
        for code in range(1 << len(_LATER))
    ]
    if found is not None and len(mailed):
        for i, text in zip(mailed.tolist(), texts.take(mailed).to_pylist(), strict=True):
            emails = _EMAIL_ASCII_RE.findall(text)
            if emails:
                found.setdefault(i, []).extend(("email", e) for e in emails)
    redo = np.flatnonzero(slow | (codes > 0))
    if len(redo) == 0:
        return arr
    originals = texts.take(redo).to_pylist()
    staged = arr.take(redo).to_pylist()
    out = []
    for j, (i, code) in enumerate(zip(redo.tolist(), codes[redo].tolist(), strict=True)):
        got: Found | None = [] if found is not None else None
        if slow[i]:
            out.append(redact(originals[j], known[i] if known is not None else None, got))
        else:
            out.append(_apply(staged[j], by_code[code], got))
        if got:
            found.setdefault(i, []).extend(got)  # type: ignore[union-attr]
    mask = np.zeros(len(arr), bool)
    mask[redo] = True
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(out, pa.string()))


def _matches(arr: Any, pattern: str) -> Any:
    """Which texts of a pyarrow string array RE2 `pattern` matches, as a numpy mask."""
    import pyarrow.compute as pc

    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False)


_DIGIT = re.compile(r"\d")
_NUMERIC_KINDS = frozenset({"iban", "labelled_id", "card", "phone"})


def _applicable(text: str) -> list[Rule]:
    """The rules that can match at all: most messages have no digit and no '@' (speed)."""
    has_digit = _DIGIT.search(text) is not None
    rules = []
    for rule in _RULES:
        kind = rule[0]
        if kind == "email" and "@" not in text:
            continue
        if kind in _NUMERIC_KINDS and not has_digit:
            continue
        if kind == "order_id" and "#" not in text and "ORD-" not in text:
            continue
        rules.append(rule)
    return rules


def detect(text: str, kinds: Iterable[str] | None = None) -> Found:
    """The precise PII (CHECKED_KINDS) in `text`: (kind, value) per match, as the redactor
    would replace it (rules in order, each on what the previous ones left). `kinds`: only
    these rules (those a screen says can match)."""
    found: Found = []
    if kinds is None:
        rules = [rule for rule in _applicable(text) if rule[0] in CHECKED_KINDS]
    else:
        rules = [_RULES_BY_KIND[k] for k in CHECKED_KINDS if k in kinds]
    _apply(text, rules, found, CHECKED_KINDS)
    return found


def pii_kinds(text: str) -> list[str]:
    """The precise kinds (e-mail, IBAN, card, phone) still detectable in `text`."""
    return _kinds(detect(text))


def _kinds(found: Found) -> list[str]:
    kinds = {kind for kind, _ in found}
    return [kind for kind in CHECKED_KINDS if kind in kinds]


# Every ASCII text in which `detect` can find anything matches this (RE2): the screens of
# the precise kinds.
PII_SCREEN = "|".join(f"(?:{_SCREENS[kind]})" for kind in CHECKED_KINDS)


# For the phone screen: a date (as `_PHONE` skips one) where no phone match can start before
# it (text start, or a letter and at most one separator before), blanked: no phone match
# starts in it, and one starting later sees the text unchanged. Dated ids
# ("syn-20261122-000123", the generator's) then never reach Python.
_DAY = r"(?:19|20)[0-9]{2}X(?:0[1-9]|1[0-2])X(?:0[1-9]|[12][0-9]|3[01])"
_UNDATED = (
    r"(^|[A-Za-z][-_./ ]?)(?:"
    + "|".join(_DAY.replace("X", sep) for sep in ("", "-", r"\.", "/"))
    + r")[ T./-]"
)


def detect_array(texts: Any) -> dict[int, Found]:
    """:func:`detect` over a pyarrow string array, for the texts that hold any PII. RE2
    screens each kind at C speed; Python runs, on the few candidates, only the rules whose
    screen matched (every rule on a non-ASCII text: RE2's classes are ASCII)."""
    import numpy as np
    import pyarrow.compute as pc

    if len(texts) <= _FEW:
        return {i: f for i, t in enumerate(texts.to_pylist()) if t and (f := detect(t))}
    texts = pc.fill_null(texts, "")
    ascii_ = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(_matches(texts, PII_SCREEN) | ~ascii_)  # one pass; then per kind
    if len(at) == 0:
        return {}
    some = texts.take(at)
    undated = pc.replace_substring_regex(some, _UNDATED, r"\1_")
    hits = np.stack(
        [_matches(undated if k == "phone" else some, _SCREENS[k]) for k in CHECKED_KINDS],
        axis=1,
    )
    # Python looks only at the texts some kind's screen still matches (the dated ids of a
    # whole day pass the first screen and no other), and at every non-ASCII one.
    look = np.flatnonzero(hits.any(axis=1) | ~ascii_[at])
    if len(look) == 0:
        return {}
    at, some, hits = at[look], some.take(look), hits[look]
    out = {}
    for i, text, row, plain in zip(at.tolist(), some.to_pylist(), hits, ascii_[at], strict=True):
        # Non-ASCII: every rule `_applicable` lets through (RE2 saw no Unicode digits).
        kinds = [k for k, hit in zip(CHECKED_KINDS, row, strict=True) if hit] if plain else None
        if (kinds is None or kinds) and (found := detect(text, kinds)):
            out[i] = found
    return out


def pii_found(texts: Any) -> dict[int, list[str]]:
    """Per index of a pyarrow string array, the precise PII kinds `pii_kinds` finds (only
    the texts that have any), by :func:`detect_array`."""
    return {i: _kinds(found) for i, found in detect_array(texts).items()}


def identifiers(text: str) -> Found:
    """The e-mail addresses and phone numbers `redact` replaces in `text`, as (kind, value)."""
    return [found for found in detect(text) if found[0] in IDENTIFIER_KINDS]

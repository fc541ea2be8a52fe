"""Parse raw JSONL transcript drops into canonical rows; anything else goes to quarantine.

Every physical non-blank line yields exactly one outcome: a canonical row or a quarantine
record naming the file, the line, the rule and the reason. Nothing is dropped silently.
"""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from ml.config import allowed_languages, settings
from ml.ingest import identifiers
from ml.ingest.redact import Found, pii_found, redact, redact_many
from ml.ingest.sources import Item, RecordError
from ml.subjects import pii_key
from ml.transcript import CHANNELS, SPEAKERS, canonical_hash, model_text

# A single turn longer than this is a paste accident or an attack, not a message.
MAX_TURN_CHARS = 10_000
# A conversation longer than this (turns; characters of model text after redaction) is an
# export loop or an attack: quarantined alone, so it never fails the day's gate.
MAX_TURNS = 1_000
MAX_TEXT_CHARS = 10 * MAX_TURN_CHARS
# `channel` values a row may hold; a record without one says "unknown".
ALLOWED_CHANNELS = frozenset((*CHANNELS, "unknown"))


def _invisible() -> str:
    """Characters that render as nothing: format characters (zero-width spaces and joiners,
    bidi controls, BOM, soft hyphen, tags) and the other default-ignorables (fillers,
    variation selectors), as a regex class body."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    ranges = "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
    return re.escape("".join(chars)) + ranges + "\U000e0100-\U000e01ef"


# Dropped before NFKC (which makes none of them): in turns every control character but
# newline and tab, in the other fields every one; invisible characters everywhere.
_INVISIBLE = _invisible()
_TEXT_DROP = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_FIELD_DROP = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
# Records redacted together: large enough for vectorised redaction, small enough for memory.
BATCH = 4096
# A row in which the redactor's own detectors still find PII after redaction: quarantined
# (ml.ingest.steps fails the day only when such rows pass a share of it: a systemic fault).
PII_RULE = "pii_after_redaction"


@dataclass(frozen=True)
class Rejected:
    """A record that broke a rule; becomes one quarantine row."""

    source_file: str
    record: int  # 1-based line or record number
    rule: str
    reason: str
    raw: str
    conversation_id: str | None = None

    def as_row(self) -> dict[str, Any]:
        cid = self.conversation_id
        return {
            "source_file": storable(self.source_file),
            "record": self.record,
            "rule": self.rule,
            "reason": storable(self.reason),
            "conversation_id": None if cid is None else storable(cid),
            "raw": storable(self.raw),
        }


def storable(text: str) -> str:
    """`text` as any UTF-8 file holds it: a lone surrogate (a JSON \\u escape, a file name
    that is not UTF-8) becomes its escape, so the quarantine writer never fails on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clean_text(text: str) -> str:
    """A turn's text as stored: no control (but newline and tab) nor invisible characters,
    Unicode NFKC (full-width and compatibility forms folded, so redaction sees them)."""
    return unicodedata.normalize("NFKC", _TEXT_DROP.sub("", text)).strip()


def clean_field(text: str) -> str:
    """Any other string field: as :func:`clean_text`, without any control character."""
    return unicodedata.normalize("NFKC", _FIELD_DROP.sub("", text)).strip()


def _field(record: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordError("missing_field", f"field '{name}' is missing")
        return None
    if not isinstance(value, kind):
        raise RecordError(
            "invalid_field", f"field '{name}' must be {kind.__name__}, got {type(value).__name__}"
        )
    if isinstance(value, str):
        _encodable(value, f"field '{name}'")
    return value


def _text(record: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string field, cleaned (:func:`clean_field`); None when absent and optional."""
    value = _field(record, name, str, required=required)
    return None if value is None else clean_field(value)


def _encodable(text: str, what: str) -> None:
    """A JSON \\u escape can decode to a lone surrogate, which no UTF-8 file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(
            "invalid_utf8", f"{what} holds a lone surrogate at character {exc.start}"
        ) from None


def _shown(value: Any) -> str:
    """A value in a reason: its repr, redacted, cut short (a reason is read, not a copy of the
    record; redacted before the cut, so no half e-mail escapes the detectors)."""
    text = redact(repr(value))
    return text if len(text) <= 80 else f"{text[:77]}..."


def _started_at(record: dict[str, Any], day: date) -> datetime:
    raw = _text(record, "started_at")
    if raw is None:  # _required_fields ran first
        raise RecordError("missing_field", "field 'started_at' is missing")
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(
            "invalid_field", f"field 'started_at' is not ISO 8601: {_shown(raw)}"
        ) from None
    if ts.tzinfo is None:
        raise RecordError("invalid_field", f"field 'started_at' has no time zone: {_shown(raw)}")
    try:
        utc: datetime | None = ts.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before year 1 in UTC, so not this day
        utc = None
    if utc is None or utc.date() != day:  # (not `start + 1 day`: no overflow on 9999-12-31)
        raise RecordError(
            "outside_interval",
            f"started_at {_shown(raw)} is outside the data interval {day.isoformat()}",
        )
    return utc


def _turns(record: dict[str, Any]) -> list[dict[str, str]]:
    """The turns checked and cleaned; redaction follows per batch (`_finish`)."""
    turns = _field(record, "turns", list)
    if not turns:
        raise RecordError("invalid_field", "field 'turns' is empty")
    if len(turns) > MAX_TURNS:
        raise RecordError("too_many_turns", f"{len(turns)} turns (> {MAX_TURNS})")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError("invalid_field", f"turns[{i}] is not an object")
        speaker, text = turn.get("speaker"), turn.get("text")
        if isinstance(speaker, str):
            _encodable(speaker, f"turns[{i}].speaker")
            speaker = clean_field(speaker)
        if speaker not in SPEAKERS:
            raise RecordError(
                "invalid_field", f"turns[{i}].speaker {_shown(speaker)} is not one of {SPEAKERS}"
            )
        if not isinstance(text, str):
            raise RecordError("invalid_field", f"turns[{i}].text must be a string")
        _encodable(text, f"turns[{i}].text")
        if len(text) > MAX_TURN_CHARS:
            raise RecordError(
                "text_too_long", f"turns[{i}].text has {len(text)} characters (> {MAX_TURN_CHARS})"
            )
        out.append({"speaker": speaker, "text": clean_text(text)})
    return out


def _known_pii(record: dict[str, Any]) -> dict[str, list[str]] | None:
    """`_pii`: values the source marks as personal (kind → value or values), cleaned as the
    text is, so they still match it."""
    known = record.get("_pii")
    if known is None:
        return None
    values = known.values() if isinstance(known, dict) else None
    if values is None or not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        for v in values
    ):
        raise RecordError(
            "invalid_field", "field '_pii' must map kinds to a string or a list of strings"
        )
    out = {}
    for kind, value in known.items():
        parts = [value] if isinstance(value, str) else value
        for part in parts:
            _encodable(part, f"field '_pii.{kind}'")
        out[kind] = [clean_field(p) for p in parts]
    return out


def _checked(
    record: Any,
    day: date,
    known_intents: frozenset[str],
    default_source: str,
    languages: frozenset[str],
) -> tuple[dict[str, Any], dict[str, list[str]] | None]:
    """Every rule of one record, in order; the row before redaction, and its source-given PII.

    Every string is cleaned before it is checked. Redaction cannot empty a text (placeholders
    are not blank), so `empty_text` is decided here; the model text's length after redaction
    is checked by :func:`_text_rule`.
    """
    if not isinstance(record, dict):
        raise RecordError(
            "not_an_object", f"record is a JSON {type(record).__name__}, not an object"
        )
    conversation_id = _text(record, "conversation_id")
    if not conversation_id:
        raise RecordError("missing_field", "field 'conversation_id' is empty")
    started_at = _started_at(record, day)
    known_pii = _known_pii(record)
    turns = _turns(record)
    if not model_text(turns):
        raise RecordError("empty_text", "no customer turn has any text")
    intent = _text(record, "intent", required=False)
    if intent is not None and intent not in known_intents:
        raise RecordError(
            "unknown_intent", f"intent {_shown(intent)} is not in the known label set"
        )
    channel = (_text(record, "channel", required=False) or "unknown").lower()
    if channel not in ALLOWED_CHANNELS:
        raise RecordError(
            "unknown_channel",
            f"channel {_shown(channel)} is not one of {', '.join(sorted(ALLOWED_CHANNELS))}",
        )
    language = _text(record, "language", required=False) or "und"
    if language not in languages:
        raise RecordError(
            "unknown_language",
            f"language {_shown(language)} is not one of {', '.join(sorted(languages))} "
            "(INTENTFLOW_LANGUAGES)",
        )
    row = {
        "conversation_id": conversation_id,
        "source": _text(record, "source", required=False) or default_source.strip(),
        "started_at": started_at,
        "channel": channel,
        "language": language,
        "turns": turns,
        "intent": intent,
    }
    return row, known_pii


def _finish(
    rows: list[tuple[dict[str, Any], dict[str, list[str]] | None]], key: bytes
) -> list[tuple[dict[str, Any], str | None]]:
    """Redact checked rows in one vectorised pass (turns, source; a personal conversation id
    becomes a pseudonym); add subject keys, model text and hash. With each row, what the
    detectors still find in it (None: nothing), for :func:`_pii_rule`."""
    texts = [t["text"] for row, _ in rows for t in row["turns"]]
    texts += [row["source"] for row, _ in rows]
    known = [pii for row, pii in rows for _ in row["turns"]] + [pii for _, pii in rows]
    found: dict[int, Found] = {}
    redacted = redact_many(texts, known, found)
    left = pii_found(pa.array(redacted, pa.string()))
    stored_ids, in_ids = identifiers.conversation_ids(
        pa.array([row["conversation_id"] for row, _ in rows], pa.string()),
        key,
        [pii for _, pii in rows],
    )
    ids = stored_ids.to_pylist()
    out = []
    first = 0  # the row's first turn in `texts`
    sources = len(redacted) - len(rows)  # then one source a row
    for r, (row, pii) in enumerate(rows):
        turns = range(first, first + len(row["turns"]))
        first = turns.stop
        for t, i in zip(row["turns"], turns, strict=True):
            t["text"] = redacted[i]
        row["source"] = redacted[sources + r]
        row["conversation_id"] = ids[r]
        removed = [f for i in [*turns, sources + r] for f in found.get(i, [])]
        row["subject_keys"] = identifiers.subject_keys([*removed, *in_ids.get(r, [])], pii, key)
        row["text"] = model_text(row["turns"])
        row["content_hash"] = canonical_hash(row)
        fields = [
            name
            for name, at in (("source", [sources + r]), ("turns", turns))
            if any(i in left for i in at)
        ]
        out.append((row, " and ".join(fields) or None))
    return out


def _pii_rule(fields: str | None) -> None:
    """No PII the detectors find may be left after redaction (the reason names the fields)."""
    if fields:
        raise RecordError(PII_RULE, f"the PII detectors still find PII in {fields} after redaction")


def _text_rule(row: dict[str, Any]) -> None:
    """The model text's length, as stored (redaction may lengthen it)."""
    if len(row["text"]) > MAX_TEXT_CHARS:
        raise RecordError(
            "text_too_long",
            f"the customer's turns have {len(row['text'])} characters (> {MAX_TEXT_CHARS})",
        )


def canonical_row(
    record: Any,
    day: date,
    known_intents: frozenset[str],
    default_source: str,
    key: bytes | None = None,
) -> dict[str, Any]:
    """Validate, normalise and redact one decoded record; raises RecordError naming the rule.

    `key`: the PII key (ml.subjects.pii_key; read from the settings when not given).
    """
    languages = frozenset(allowed_languages())
    key = key if key is not None else pii_key(settings())
    [(row, left)] = _finish([_checked(record, day, known_intents, default_source, languages)], key)
    _text_rule(row)
    _pii_rule(left)
    return row


def parse_items(
    items: Iterable[Item],
    source_file: str,
    day: date,
    known_intents: frozenset[str],
    default_source: str,
    batch_size: int = BATCH,
    key: bytes | None = None,
) -> Iterator[tuple[Item, dict[str, Any] | Rejected]]:
    """Yield each item with its canonical row or its Rejected (file, number, rule, reason).

    Items are checked one by one and redacted per batch, in order. `key`: the PII key
    (ml.subjects.pii_key), read once by the caller for a whole day; from the settings when
    not given.
    """
    languages = frozenset(allowed_languages())
    key = key if key is not None else pii_key(settings())
    it = iter(items)
    while batch := list(itertools.islice(it, batch_size)):
        outcomes: list[Any] = []
        checked = []
        for item in batch:
            try:
                if isinstance(item.record, RecordError):
                    raise item.record
                checked.append(_checked(item.record, day, known_intents, default_source, languages))
                outcomes.append(None)
            except RecordError as exc:
                outcomes.append(_rejected(item, source_file, exc, key))
        rows = iter(_finish(checked, key) if checked else [])
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                outcome, left = next(rows)
                try:
                    _text_rule(outcome)
                    _pii_rule(left)
                except RecordError as exc:
                    outcome = _rejected(item, source_file, exc, key)
            yield item, outcome


def _rejected(item: Item, source_file: str, exc: RecordError, key: bytes) -> Rejected:
    record = item.record
    cid = record.get("conversation_id") if isinstance(record, dict) else None
    return Rejected(
        source_file,
        item.number,
        exc.rule,
        str(exc),
        item.raw,
        quarantined_id(cid, key) if isinstance(cid, str) else None,
    )


def quarantined_id(cid: str, key: bytes) -> str:
    """A rejected record's conversation id as the quarantine names it: as read, or the
    pseudonym the lake would hold when it is personal (an e-mail used as id)."""
    cleaned = clean_field(storable(cid))
    stored, _ = identifiers.conversation_id(cleaned, key)
    return cid if stored == cleaned else stored

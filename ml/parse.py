"""Parse raw JSONL transcript drops into canonical rows; anything else goes to quarantine.

Every physical non-blank line yields exactly one outcome: a canonical row or a quarantine
record naming the file, the line, the rule and the reason. Nothing is dropped silently.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ml.redact import redact_many
from ml.schema import SPEAKERS, canonical_hash, model_text
from ml.sources import Item, RecordError

# A single turn longer than this is a paste accident or an attack, not a message.
MAX_TURN_CHARS = 10_000
# Keep newlines and tabs; drop other control characters (they break logs and tokenizers).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Records redacted together: large enough for vectorised redaction, small enough for memory.
BATCH = 4096


@dataclass(frozen=True)
class Rejected:
    """A record that broke a rule; becomes one quarantine row."""

    source_file: str
    line: int
    rule: str
    reason: str
    raw: str
    conversation_id: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "line": self.line,
            "rule": self.rule,
            "reason": self.reason,
            "conversation_id": self.conversation_id,
            "raw": self.raw,
        }


def clean_text(text: str) -> str:
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


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


def _encodable(text: str, what: str) -> None:
    """A JSON \\u escape can decode to a lone surrogate, which no UTF-8 file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(
            "invalid_utf8", f"{what} holds a lone surrogate at character {exc.start}"
        ) from None


def _started_at(record: dict[str, Any], day: date) -> datetime:
    raw = _field(record, "started_at", str)
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError("invalid_field", f"field 'started_at' is not ISO 8601: {raw!r}") from None
    if ts.tzinfo is None:
        raise RecordError("invalid_field", f"field 'started_at' has no time zone: {raw!r}")
    ts = ts.astimezone(UTC)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if not start <= ts < start + timedelta(days=1):
        raise RecordError(
            "outside_interval", f"started_at {raw} is outside the data interval {day.isoformat()}"
        )
    return ts


def _turns(record: dict[str, Any]) -> list[dict[str, str]]:
    """The turns checked and cleaned; redaction follows per batch (`_finish`)."""
    turns = _field(record, "turns", list)
    if not turns:
        raise RecordError("invalid_field", "field 'turns' is empty")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError("invalid_field", f"turns[{i}] is not an object")
        speaker, text = turn.get("speaker"), turn.get("text")
        if speaker not in SPEAKERS:
            raise RecordError(
                "invalid_field", f"turns[{i}].speaker {speaker!r} is not one of {SPEAKERS}"
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


def _checked(
    record: Any, day: date, known_intents: frozenset[str], default_source: str
) -> tuple[dict[str, Any], dict[str, list[str]] | None]:
    """Every rule of one record, in order; the row before redaction, and its source-given PII.

    Redaction cannot empty a text (placeholders are not blank), so `empty_text` is decided here.
    """
    if not isinstance(record, dict):
        raise RecordError(
            "not_an_object", f"record is a JSON {type(record).__name__}, not an object"
        )
    conversation_id = _field(record, "conversation_id", str).strip()
    if not conversation_id:
        raise RecordError("missing_field", "field 'conversation_id' is empty")
    started_at = _started_at(record, day)
    known_pii = record.get("_pii") if isinstance(record.get("_pii"), dict) else None
    turns = _turns(record)
    if not model_text(turns):
        raise RecordError("empty_text", "no customer turn has any text")
    intent = _field(record, "intent", str, required=False)
    if intent is not None and intent not in known_intents:
        raise RecordError("unknown_intent", f"intent {intent!r} is not in the known label set")
    row = {
        "conversation_id": conversation_id,
        "source": (_field(record, "source", str, required=False) or default_source).strip(),
        "started_at": started_at,
        "channel": (_field(record, "channel", str, required=False) or "unknown").strip().lower(),
        "language": (_field(record, "language", str, required=False) or "und").strip(),
        "turns": turns,
        "intent": intent,
    }
    return row, known_pii


def _finish(rows: list[tuple[dict[str, Any], dict[str, list[str]] | None]]) -> list[dict[str, Any]]:
    """Redact the turns of checked rows in one vectorised pass; add model text and hash."""
    texts = [t["text"] for row, _ in rows for t in row["turns"]]
    known = [pii for row, pii in rows for _ in row["turns"]]
    redacted = iter(redact_many(texts, known))
    out = []
    for row, _ in rows:
        for turn in row["turns"]:
            turn["text"] = next(redacted)
        row["text"] = model_text(row["turns"])
        row["content_hash"] = canonical_hash(row)
        out.append(row)
    return out


def canonical_row(
    record: Any, day: date, known_intents: frozenset[str], default_source: str
) -> dict[str, Any]:
    """Validate, normalise and redact one decoded record; raises RecordError naming the rule."""
    return _finish([_checked(record, day, known_intents, default_source)])[0]


def parse_items(
    items: Iterable[Item],
    source_file: str,
    day: date,
    known_intents: frozenset[str],
    default_source: str,
    batch_size: int = BATCH,
) -> Iterator[tuple[Item, dict[str, Any] | Rejected]]:
    """Yield each item with its canonical row or its Rejected (file, number, rule, reason).

    Items are checked one by one and redacted per batch, in order.
    """
    it = iter(items)
    while batch := list(itertools.islice(it, batch_size)):
        outcomes: list[Any] = []
        checked = []
        for item in batch:
            record = item.record
            try:
                if isinstance(record, RecordError):
                    raise record
                checked.append(_checked(record, day, known_intents, default_source))
                outcomes.append(None)
            except RecordError as exc:
                cid = record.get("conversation_id") if isinstance(record, dict) else None
                cid = cid if isinstance(cid, str) else None
                outcomes.append(
                    Rejected(source_file, item.number, exc.rule, str(exc), item.raw, cid)
                )
        rows = iter(_finish(checked))
        for item, outcome in zip(batch, outcomes, strict=True):
            yield item, outcome if outcome is not None else next(rows)

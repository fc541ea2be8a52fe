"""The canonical transcript: one row per conversation, the contract every stage shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

import pyarrow as pa

SPEAKERS = ("customer", "agent", "system")
CHANNELS = ("chat", "email", "voice", "sms")

TURN = pa.struct([("speaker", pa.string()), ("text", pa.string())])

TRANSCRIPT_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("turns", pa.list_(TURN), nullable=False),
        pa.field("intent", pa.string(), nullable=True),  # null: unlabeled
        pa.field("text", pa.string(), nullable=False),  # model_text(turns), after redaction
        pa.field("content_hash", pa.string(), nullable=False),
        # Keyed hashes (ml.subjects.subject_key) of the e-mails and phone numbers redacted from
        # the row and of the personal values its source names, sorted: how erasure finds a
        # person's rows in a redacted lake. Days written before it hold [] (ml.lake_migrate).
        pa.field("subject_keys", pa.list_(pa.string()), nullable=False),
    ]
)


def model_text(turns: Iterable[Mapping[str, str]]) -> str:
    """The text the model sees: the customer's turns in order, joined by a space.

    Agent and system turns are left out on purpose: at prediction time the router sees only
    what the customer wrote, and agent replies often name the intent outright.
    """
    return " ".join(
        t["text"].strip() for t in turns if t["speaker"] == "customer" and t["text"].strip()
    )


def content_hash(row: Mapping[str, object]) -> str:
    """sha256 of a transcript's content (everything but the hash), stable across runs.

    Fields joined with ASCII separators in a fixed order (not JSON: it is the ingest hot spot);
    the turns as speaker/text pairs. Any other key is appended sorted, so nothing is ignored.
    """
    parts = [f"{k}\x1f{_hash_value(row[k])}" for k in sorted(row) if k != "content_hash"]
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()


def canonical_hash(row: Mapping[str, object]) -> str:
    """`content_hash` of a row made by ml.ingest.parse (fixed keys and types), without the generic walk.

    Same string, same hash: tests/ingest/test_parse.py checks it against `content_hash`.
    """
    if row.keys() != _CANONICAL_KEYS:
        return content_hash(row)
    turns = "\x1d".join(f"{t['speaker']}\x1c{t['text']}" for t in row["turns"])  # type: ignore[attr-defined]
    intent = "\x00" if row["intent"] is None else row["intent"]
    subjects = "\x1d".join(row["subject_keys"])  # type: ignore[arg-type]
    text = (
        f"channel\x1f{row['channel']}\x1econversation_id\x1f{row['conversation_id']}"
        f"\x1eintent\x1f{intent}\x1elanguage\x1f{row['language']}"
        f"\x1esource\x1f{row['source']}\x1estarted_at\x1f{row['started_at'].isoformat()}"  # type: ignore[attr-defined]
        f"\x1esubject_keys\x1f{subjects}\x1etext\x1f{row['text']}\x1eturns\x1f{turns}"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_CANONICAL_KEYS = {
    "channel", "conversation_id", "intent", "language", "source", "started_at", "subject_keys",
    "text", "turns",
}  # fmt: skip


def _hash_value(value: object) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\x1d".join(map(_hash_item, value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return json.dumps(value, sort_keys=True, default=str)


def _hash_item(item: object) -> str:
    if isinstance(item, Mapping):  # a turn
        return f"{item['speaker']}\x1c{item['text']}"
    if isinstance(item, str):  # a subject key
        return item
    return json.dumps(item, sort_keys=True, default=str)

"""A distribution shift for the synthetic feed: from a given day, customers ask something new and
ask one old thing differently (the monitoring and feedback scenario, issue #23).

From `Shift.start` on, `new_share` of the conversations are about `new_intent`, a label the
taxonomy (ml.taxonomy.INTENTS) does not have, and every conversation about `reworded` opens with
new phrasings (a product change: passkeys and one-time codes instead of passwords).

How they arrive labelled, as in a real contact centre whose source system has not got the new
label yet: the new intent's transcripts carry `"intent": null` (unlabeled: ingest accepts them,
the retrain's snapshot leaves them out); the reworded intent's keep their label (agents still
file them under the old one). The true label of every conversation of a shifted day is written
apart, to TRUTH_DIR/YYYY-MM-DD.jsonl beside the day folders (never inside one, so a daily source
never reads it), for benchmarks and tests only: it stands for what agents would say if asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ml.taxonomy import INTENTS

# Truth files live in OUT/_truth/, outside every OUT/YYYY-MM-DD/ day folder.
TRUTH_DIR = "_truth"
NEW_SHARE = 0.10
DEFAULT_NEW_INTENT = "cancel_order"
DEFAULT_REWORDED = "password_reset"

# The built-in new intent. Its neighbours (cancel_subscription, order_status, refund_request)
# share words with it, so a model that never saw it spreads it over them at low confidence.
NEW_INTENTS: dict[str, dict[str, Any]] = {
    "cancel_order": {
        "openings": (
            "Please cancel my order, I placed it by mistake.",
            "I want to cancel the {product} I ordered {when}.",
            "Can I still cancel my order before it ships?",
            "I changed my mind, please cancel the order for the {product}.",
            "How do I cancel an order I just placed?",
            "Stop my order please, I don't need the {product} anymore.",
            "I ordered the {product} twice by accident, cancel one of them.",
            "Is it too late to cancel my order from {date}?",
            "Please don't ship my order, I want to cancel it.",
            "Cancel the order I made {when}, I found it cheaper elsewhere.",
            # neighbours: cancel_subscription, refund_request, order_status
            "I want to cancel my order, not my subscription.",
            "My order hasn't shipped yet, can you cancel it and give me the {amount} back?",
            "Where do I cancel an order? I don't want the {product} now.",
        ),
        "details": ("It hasn't shipped yet.", "The order was for the {product}."),
        "pii": "order_id",
        "agent_ack": "I can cancel that order for you.",
        "team": "orders",
    },
}

# New wordings of an existing intent (its label stays).
REWORDED: dict[str, dict[str, Any]] = {
    "password_reset": {
        "openings": (
            "The one-time code to sign in never arrives.",
            "My passkey stopped working after I got a new {device}.",
            "The magic link to log in goes nowhere.",
            "I need to set up a new passkey, the old one was on my lost phone.",
            "The sign-in code by text never comes through.",
            "Face ID login fails and it won't offer me another way in.",
            "How do I replace the passkey on my {device}?",
            "The verification code email takes forever and then expires.",
            "I switched phones and now my authenticator codes are gone.",
            "Can you send the login code again? It didn't come through.",
        ),
        "details": ("I'm trying on my {device}.", "I've waited ten minutes for the code."),
    },
}


@dataclass(frozen=True)
class Shift:
    """What changes from `start` on (days before it are generated exactly as without a shift)."""

    start: date
    new_intent: str
    new_openings: tuple[str, ...]
    new_details: tuple[str, ...]
    new_pii: str
    new_agent_ack: str
    new_team: str
    reworded: str | None
    reworded_openings: tuple[str, ...]
    reworded_details: tuple[str, ...]
    new_share: float = NEW_SHARE

    def applies(self, day: date) -> bool:
        return day >= self.start


def make_shift(
    start: date,
    new_intent: str = DEFAULT_NEW_INTENT,
    reworded: str | None = DEFAULT_REWORDED,
    new_share: float = NEW_SHARE,
    phrases_file: Path | None = None,
) -> Shift:
    """The shift from `start`: the built-in phrasings, or those of `phrases_file`, a JSON object
    {"new_intent": {"openings": [...], "details": [...], "agent_ack": "..."},
     "reworded": {"openings": [...], "details": [...]}} (each part optional; openings required
    in a part given) for a new intent or a reworded one that has no built-in phrasings."""
    if new_intent in INTENTS:
        raise ValueError(f"shift: new intent {new_intent!r} is already in the taxonomy")
    if reworded is not None and reworded not in INTENTS:
        raise ValueError(f"shift: reworded intent {reworded!r} is not in the taxonomy")
    if not 0.0 < new_share < 1.0:
        raise ValueError(f"shift: new intent share must be within (0, 1), got {new_share}")
    given = _read_phrases(phrases_file) if phrases_file else {}
    new = {**NEW_INTENTS.get(new_intent, {}), **given.get("new_intent", {})}
    if not new.get("openings"):
        raise ValueError(
            f"shift: no phrasings for new intent {new_intent!r}; built-in: "
            f"{', '.join(NEW_INTENTS)}, or give a phrases file"
        )
    old = {**REWORDED.get(reworded or "", {}), **given.get("reworded", {})}
    if reworded is not None and not old.get("openings"):
        raise ValueError(
            f"shift: no new phrasings for {reworded!r}; built-in: {', '.join(REWORDED)}, "
            "or give a phrases file"
        )
    return Shift(
        start=start,
        new_intent=new_intent,
        new_openings=tuple(new["openings"]),
        new_details=tuple(new.get("details", ())),
        new_pii=new.get("pii", "order_id"),
        new_agent_ack=new.get("agent_ack", "I can help you with that."),
        new_team=new.get("team", "customer care"),
        reworded=reworded,
        reworded_openings=tuple(old.get("openings", ())),
        reworded_details=tuple(old.get("details", ())),
        new_share=new_share,
    )


def _read_phrases(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"shift phrases file {path}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"new_intent", "reworded"}:
        raise ValueError(f"shift phrases file {path}: expected keys new_intent and/or reworded")
    for part, fields in data.items():
        if not isinstance(fields, dict):
            raise ValueError(f"shift phrases file {path}: {part} must be an object")
        for key in ("openings", "details"):
            value = fields.get(key, [])
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise ValueError(f"shift phrases file {path}: {part}.{key} must list texts")
    return data


def truth_path(out_dir: Path, day: date) -> Path:
    return Path(out_dir) / TRUTH_DIR / f"{day.isoformat()}.jsonl"


def read_truth(out_dir: Path, day: date) -> dict[str, dict[str, Any]]:
    """conversation_id -> {"intent", "shift"} of a shifted day ({} for a day without a shift)."""
    path = truth_path(out_dir, day)
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {r["conversation_id"]: r for r in rows}

"""Synthetic customer-service chat transcripts, written as daily JSONL drops.

Each day is generated from its own `random.Random`, seeded from (seed, day), so a day's files are
byte-identical whatever range a call covers. The data is meant to be *hard enough*: paraphrased
openings, typos, vague starts and templates that borrow a neighbouring intent's vocabulary keep a
fine-tuned model below 100%. A small share of lines is deliberately broken so that ingest's
quarantine rules have something to catch, and fake PII is seeded so that redaction can be tested.
The text itself (openings, details, agent and system turns, slot fillers) is ml.synthetic.phrases;
this module decides what is drawn, how often, and writes the drops.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from ml.progress import Progress
from ml.synthetic import phrases
from ml.synthetic.shift import Shift, truth_path
from ml.taxonomy import INTENTS
from ml.transcript import CHANNELS, SPEAKERS

SOURCE = "synthetic"
LINES_PER_FILE = 500
PII_KINDS = ("email", "phone", "card", "order_id", "name")
# Each is the ingest quarantine rule it is meant to trip.
BROKEN_KINDS = ("malformed_json", "missing_field", "empty_text", "unknown_intent", "duplicate_id")
UNKNOWN_INTENTS = ("pizza_order", "book_flight", "weather_query", "car_rental", "song_request")
REQUIRED_FIELDS = ("conversation_id", "turns", "started_at")

PII_SHARE = 0.40  # conversations that carry any PII
TYPO_SHARE = 0.15  # customer turns with a typo
UNCLEAR_SHARE = 0.10  # conversations whose customer text names only a family of intents
VAGUE_SHARE = 0.06  # conversations that open with small talk; the request comes second

CUSTOMER, AGENT, SYSTEM = SPEAKERS

# Mostly chat; the other channels exist in real feeds in smaller numbers.
CHANNEL_WEIGHTS = dict(zip(CHANNELS, (70, 12, 10, 8), strict=True))
LANGUAGE_WEIGHTS = {"en": 85, "en-US": 8, "en-GB": 7}
# Skewed like a real contact centre: "where is my order" dominates.
INTENT_WEIGHTS = {
    name: {
        "order_status": 3.0,
        "delivery_delay": 2.5,
        "refund_request": 2.5,
        "password_reset": 2.0,
        "technical_issue": 2.0,
        "return_item": 1.5,
        "billing_dispute": 1.5,
        "cancel_subscription": 1.5,
    }.get(name, 1.0)
    for name in INTENTS
}


@dataclass(frozen=True)
class GeneratedDay:
    """What one day's drop holds; tests and the DAGs check ingest against it."""

    day: date
    files: list[Path]  # the .jsonl files written for that day
    records: int  # physical lines written (good + broken)
    broken: int  # lines that are deliberately broken
    pii: dict[str, list[str]]  # PII values seeded into that day's text, by kind
    truth: Path | None = None  # a shifted day's true labels (ml.synthetic.shift), else None


def generate(
    out_dir: Path,
    days: int,
    per_day: int,
    start: date | None = None,
    seed: int = 0,
    broken_share: float = 0.02,
    shift: Shift | None = None,
) -> list[GeneratedDay]:
    """Write `days` daily drops of `per_day` lines each under `out_dir/YYYY-MM-DD/`.

    `start` defaults to `days` days ago, so the last day written is yesterday. With `shift`,
    days from `shift.start` on carry its new intent and reworded intent, and their true labels
    go to `out_dir/_truth/YYYY-MM-DD.jsonl`; earlier days are byte-identical to a run without.
    """
    if days < 0 or per_day < 0:
        raise ValueError("days and per_day must be >= 0")
    if not 0.0 <= broken_share <= 1.0:
        raise ValueError("broken_share must be within [0, 1]")
    first = start if start is not None else date.today() - timedelta(days=days)
    out = Path(out_dir)
    with Progress("generate", days * per_day, "records") as progress:
        return [
            _write_day(out, first + timedelta(days=i), per_day, seed, broken_share, progress, shift)
            for i in range(days)
        ]


# --- One day ----------------------------------------------------------------------------------


def _day_rng(seed: int, day: date) -> random.Random:
    """A private RNG per (seed, day): a day's bytes never depend on the rest of the call."""
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (seeded test data)


def _broken_count(per_day: int, share: float) -> int:
    if share <= 0 or per_day < 2:
        return 0
    n = round(per_day * share)
    if per_day >= 20:
        n = max(n, 1)
    return min(n, per_day - 1)  # line 0 stays good, so a duplicate always has an original


def _write_day(
    out: Path,
    day: date,
    per_day: int,
    seed: int,
    share: float,
    progress: Progress,
    shift: Shift | None = None,
) -> GeneratedDay:
    shift = shift if shift is not None and shift.applies(day) else None
    lines, broken, pii, truth = _day_lines(day, per_day, seed, share, progress, shift)
    files = _write_files(out / day.isoformat(), lines)
    truth_file = None
    if shift is not None:
        truth_file = truth_path(out, day)
        truth_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(truth_file, "".join(_dumps(row) + "\n" for row in truth))
    else:  # a rerun without the shift must not leave a stale truth file behind
        truth_path(out, day).unlink(missing_ok=True)
    return GeneratedDay(
        day=day, files=files, records=len(lines), broken=broken, pii=pii, truth=truth_file
    )


def _day_lines(
    day: date,
    per_day: int,
    seed: int,
    share: float,
    progress: Progress,
    shift: Shift | None = None,
) -> tuple[list[str], int, dict[str, list[str]], list[dict[str, object]]]:
    """The day's lines, its broken count, its PII and, under a shift, the true label of each
    good line (conversation_id, intent, shift: "new_intent" | "reworded" | None)."""
    rng = _day_rng(seed, day)
    n_broken = _broken_count(per_day, share)
    positions = sorted(rng.sample(range(1, per_day), n_broken)) if n_broken else []
    # Rotate by day so that a few consecutive days cover every kind, even at 1 broken a day.
    kinds = {
        p: BROKEN_KINDS[(day.toordinal() + k) % len(BROKEN_KINDS)] for k, p in enumerate(positions)
    }
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    seconds = sorted(rng.randrange(86_400) for _ in range(per_day))
    lines: list[str] = []
    good_ids: list[str] = []
    pii: dict[str, list[str]] = {kind: [] for kind in PII_KINDS}
    truth: list[dict[str, object]] = []
    for i, offset in enumerate(seconds):
        cid = f"syn-{day:%Y%m%d}-{i:06d}"
        started = (midnight + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record, seeded, (true_intent, shifted) = _conversation(rng, cid, started, shift)
        kind = kinds.get(i)
        line = _broken_line(kind, record, rng, good_ids) if kind else _dumps(record)
        if kind is None:
            good_ids.append(cid)
            if shift is not None:
                truth.append({"conversation_id": cid, "intent": true_intent, "shift": shifted})
        _collect_pii(pii, seeded, line)
        lines.append(line)
        progress.advance()
    return lines, n_broken, pii, truth


def _collect_pii(pii: dict[str, list[str]], seeded: list[tuple[str, str]], line: str) -> None:
    """Record only values that survived into the line (a truncated line may cut one off)."""
    for kind, value in seeded:
        if value in line and value not in pii[kind]:
            pii[kind].append(value)


def _dumps(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False)


def _write_files(day_dir: Path, lines: list[str]) -> list[Path]:
    day_dir.mkdir(parents=True, exist_ok=True)
    chunks = [lines[i : i + LINES_PER_FILE] for i in range(0, len(lines), LINES_PER_FILE)] or [[]]
    files = [day_dir / f"chats-{n:03d}.jsonl" for n in range(len(chunks))]
    for path, chunk in zip(files, chunks, strict=True):
        _write_atomic(path, "".join(line + "\n" for line in chunk))
    # A rerun with a smaller per_day must not leave an older, longer drop's tail behind.
    for stale in day_dir.glob("chats-*.jsonl"):
        if stale not in files:
            stale.unlink()
    return files


def _write_atomic(path: Path, text: str) -> None:
    """Readers (ingest sensors) never see a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


# --- Broken lines -----------------------------------------------------------------------------


def _broken_line(kind: str, record: dict[str, Any], rng: random.Random, good_ids: list[str]) -> str:
    if kind == "malformed_json":
        line = _dumps(record)
        return line[: rng.randint(len(line) // 3, len(line) - 2)]  # any strict prefix is invalid
    if kind == "missing_field":
        del record[rng.choice(REQUIRED_FIELDS)]
    elif kind == "empty_text":
        for turn in record["turns"]:
            if turn["speaker"] == CUSTOMER:
                turn["text"] = rng.choice(("", " ", "   ", "\n", "\t "))
    elif kind == "unknown_intent":
        record["intent"] = rng.choice(UNKNOWN_INTENTS)
    elif kind == "duplicate_id":
        record["conversation_id"] = rng.choice(good_ids)  # same id, fresh content
    else:
        raise ValueError(f"unknown broken kind {kind!r}")
    return _dumps(record)


# --- One conversation -------------------------------------------------------------------------


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _conversation(
    rng: random.Random, cid: str, started: str, shift: Shift | None = None
) -> tuple[dict[str, object], list[tuple[str, str]], tuple[str, str | None]]:
    """One transcript record (keys in contract order), the PII seeded into it, and its true
    intent with how the shift touched it (None, "new_intent", "reworded")."""
    intent = _pick(rng, INTENT_WEIGHTS)
    shifted = None
    if shift is not None:  # no extra draw without a shift: unshifted days keep their bytes
        if rng.random() < shift.new_share:
            intent, shifted = shift.new_intent, "new_intent"
        elif intent == shift.reworded:
            shifted = "reworded"
    channel = _pick(rng, CHANNEL_WEIGHTS)
    language = _pick(rng, LANGUAGE_WEIGHTS)
    values = _slots(rng, language)
    pii_kind = shift.new_pii if shifted == "new_intent" else phrases.PII_FOR_INTENT[intent]
    seeded = _seed_pii(rng, pii_kind, language)
    pii = {kind: value for kind, value in seeded if kind != "name"}
    if seeded and seeded[-1][0] == "name":  # full name first, then the first name alone
        pii["name"], pii["first"] = (v for k, v in seeded if k == "name")
    roles = _roles(rng)
    clarity = _clarity(rng, intent, roles)
    n_customer = roles.count(CUSTOMER)
    pools = _pools(intent, shifted, shift)
    customer, substantive = _customer_texts(rng, intent, values, pii, n_customer, clarity, pools)
    ack = shift.new_agent_ack if shift and shifted == "new_intent" else None
    team = shift.new_team if shift and shifted == "new_intent" else None
    agent = _AgentVoice(intent, pii.get("first"), clarity, ack, team)
    turns = _fill_turns(rng, roles, customer, substantive, channel, agent)
    record: dict[str, object] = {
        "conversation_id": cid,
        "source": SOURCE,
        "started_at": started,
        "channel": channel,
        "language": language,
        # The source has no label for a new intent yet: it arrives unlabeled (ml.synthetic.shift).
        "intent": None if shifted == "new_intent" else intent,
        "turns": turns,
    }
    return record, seeded, (intent, shifted)


def _pools(
    intent: str, shifted: str | None, shift: Shift | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The customer's openings and details for `intent`: the shift's where it changed them."""
    if shift is not None and shifted == "new_intent":
        return shift.new_openings, shift.new_details
    if shift is not None and shifted == "reworded":
        return shift.reworded_openings, shift.reworded_details or phrases.DETAILS[intent]
    return phrases.OPENINGS[intent], phrases.DETAILS[intent]


def _clarity(rng: random.Random, intent: str, roles: list[str]) -> str:
    """How the customer opens: "clear", "vague" (small talk first) or "unclear" (family only)."""
    draw = rng.random()
    # Unclear only when an agent answers the customer, so the transcript still settles it.
    if (
        draw < UNCLEAR_SHARE
        and intent in phrases.FAMILIES
        and AGENT in roles[roles.index(CUSTOMER) :]
    ):
        return "unclear"
    if draw >= 1 - VAGUE_SHARE and roles.count(CUSTOMER) >= 2:
        return "vague"
    return "clear"


def _slots(rng: random.Random, language: str) -> dict[str, str]:
    currency = "£" if language == "en-GB" else rng.choice("$$$$£")
    low, high = sorted(rng.sample(range(len(phrases.PLANS)), 2))
    product, product2 = rng.sample(phrases.PRODUCTS, 2)
    return {
        "product": product,
        "product2": product2,
        "amount": f"{currency}{rng.randint(5, 400)}.{rng.choice(('00', '99', '49', '50'))}",
        "amount2": f"{currency}{rng.randint(5, 120)}",
        "when": rng.choice(phrases.WHEN),
        "date": rng.choice(phrases.DATES),
        "days": str(rng.randint(3, 21)),
        "merchant": rng.choice(phrases.MERCHANTS),
        "city": rng.choice(phrases.CITIES),
        "low_plan": phrases.PLANS[low],
        "high_plan": phrases.PLANS[high],
        "service": rng.choice(phrases.SERVICES),
        "code": rng.choice(phrases.CODES),
        "points": f"{rng.randint(2, 250) * 100:,}",
        "device": rng.choice(phrases.DEVICES),
        "error": rng.choice(phrases.ERRORS),
        "call_time": rng.choice(phrases.CALL_TIMES),
    }


_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: dict[str, str]) -> str:
    """Fill known slots, leave the rest as-is (PII slots are filled after typos)."""
    return _SLOT.sub(lambda m: values.get(m[1], m[0]), template)


def _roles(rng: random.Random) -> list[str]:
    """2-6 alternating turns, usually customer first, sometimes with system events."""
    n = rng.choices((2, 3, 4, 5, 6), weights=(20, 25, 30, 15, 10))[0]
    transfer = rng.random() < 0.08
    roles = [SYSTEM] if rng.random() < 0.12 else []
    speaker = AGENT if rng.random() < 0.08 else CUSTOMER
    while len(roles) < n or CUSTOMER not in roles:
        roles.append(speaker)
        if transfer and speaker == AGENT and CUSTOMER in roles:
            roles.append(SYSTEM)
            transfer = False
        speaker = CUSTOMER if speaker == AGENT else AGENT
    return roles[:6]


# --- PII --------------------------------------------------------------------------------------


def _seed_pii(rng: random.Random, natural: str, language: str) -> list[tuple[str, str]]:
    """This conversation's PII as (kind, value), in ~40% of conversations; `natural` is the
    kind a customer volunteers for the intent (phrases.PII_FOR_INTENT).

    A name comes last, as the full name then the first name the agent greets with.
    """
    if rng.random() >= PII_SHARE:
        return []
    kinds = {natural} if rng.random() < 0.8 else set()
    if rng.random() < 0.25:
        kinds.add(rng.choice(("email", "phone", "card", "order_id")))
    first, last = rng.choice(phrases.FIRST_NAMES), rng.choice(phrases.LAST_NAMES)
    if rng.random() < 0.6 or not kinds:
        kinds.add("name")
    makers = {
        "name": lambda: f"{first} {last}",
        "email": lambda: _make_email(rng, first, last),
        "phone": lambda: _make_phone(rng, language),
        "card": lambda: _make_card(rng),
        "order_id": lambda: _make_order_id(rng),
    }
    seeded = [(kind, makers[kind]()) for kind in PII_KINDS if kind in kinds]
    if "name" in kinds:
        seeded.append(("name", first))
    return seeded


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


def _make_email(rng: random.Random, first: str, last: str) -> str:
    local = rng.choice(
        (
            f"{_ascii(first)}.{_ascii(last)}",
            f"{_ascii(first)[0]}{_ascii(last)}",
            f"{_ascii(first)}{rng.randint(1, 99)}",
            f"{_ascii(last)}.{_ascii(first)}{rng.randint(70, 99)}",
        )
    )
    return f"{local}@{rng.choice(phrases.EMAIL_DOMAINS)}"


def _make_phone(rng: random.Random, language: str) -> str:
    """Numbers from the ranges reserved for fiction (US 555-01xx, Ofcom drama ranges)."""
    area = rng.choice(("415", "212", "312", "617", "206", "512", "303"))
    us, uk = f"{rng.randint(0, 99):02d}", f"{rng.randint(0, 999):03d}"
    us_formats = (
        f"+1 {area}-555-01{us}",
        f"({area}) 555 01{us}",
        f"({area}) 555-01{us}",
        f"{area}.555.01{us}",
        f"{area}-555-01{us}",
    )
    uk_formats = (
        f"07700 900{uk}",
        f"+44 7700 900{uk}",
        f"+44 20 7946 0{uk}",
        f"020 7946 0{uk}",
    )
    uk_share = 0.8 if language == "en-GB" else 0.3
    return rng.choice(uk_formats if rng.random() < uk_share else us_formats)


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)  # the check digit will sit right of body
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def _make_card(rng: random.Random) -> str:
    """16 digits with a valid Luhn digit, sometimes grouped by 4 with spaces or dashes."""
    prefix = rng.choice(("4", "51", "52", "53", "54", "55"))
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    digits = body + _luhn_check_digit(body)
    sep = rng.choice(("", "", " ", " ", "-"))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def _make_order_id(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"ORD-{rng.randrange(10**8):08d}"
    return "#" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))


# --- Customer text ----------------------------------------------------------------------------


def _customer_texts(
    rng: random.Random,
    intent: str,
    values: dict[str, str],
    pii: dict[str, str],
    n: int,
    clarity: str,
    pools: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> tuple[list[str], int]:
    """The customer's `n` turns: opening, details and PII, then short follow-ups.

    Also returns how many leading turns say something substantive (the agent only wraps up
    after those).
    """
    unclear = clarity == "unclear"
    openings, more = pools or (phrases.OPENINGS[intent], phrases.DETAILS[intent])
    pool = phrases.FAMILY_OPENINGS[phrases.FAMILIES[intent]] if unclear else openings
    opening = _fill(rng.choice(pool), values)
    details = [
        _fill(rng.choice(phrases.PII_DETAILS[k]), values) for k in phrases.PII_DETAILS if k in pii
    ]
    if unclear and n >= 2:
        details.insert(0, rng.choice(phrases.CONFIRMS))  # answers the agent's check
    elif not unclear and rng.random() < 0.5 and more:
        details.insert(0, _fill(rng.choice(more), values))
    greeting = rng.choice(phrases.NAME_INTROS) if "name" in pii else rng.choice(phrases.GREETINGS)
    texts = [_greet(greeting, opening)]
    if clarity == "vague":
        vague = _greet(greeting, rng.choice(phrases.VAGUE_OPENINGS))
        texts = [vague, opening]  # the request comes second
    if len(texts) >= n:
        texts[-1] = " ".join([texts[-1], *details])  # no turn left: the last carries the rest
    elif details:
        texts.append(" ".join(details))
    substantive = len(texts)
    texts += [rng.choice(phrases.CUSTOMER_FOLLOWUPS) for _ in range(n - len(texts))]
    # Typos first, then PII: the seeded values must survive verbatim.
    typed = [_fill(_typo(t, rng) if rng.random() < TYPO_SHARE else t, pii) for t in texts]
    return typed, substantive


def _greet(greeting: str, text: str) -> str:
    """'Hi, ' + 'Where is...' reads 'Hi, where is...'; 'I' stays capital."""
    if greeting.endswith(", ") and not re.match(r"I\b", text):
        text = text[0].lower() + text[1:]
    return greeting + text


_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")


def _typo(text: str, rng: random.Random) -> str:
    """A human slip: a swapped, dropped or doubled letter, lowercase, or missing punctuation.

    Only plain words are touched, so `{slot}` placeholders and seeded PII stay intact.
    """
    ops = []
    tokens = text.split(" ")
    words = [i for i, t in enumerate(tokens) if _TYPO_WORD.fullmatch(t.rstrip(",.!?"))]
    if words and rng.random() < 0.75:
        ops.append("word")
    if any(c.isupper() for c in text) and rng.random() < 0.35:
        ops.append("lower")
    if re.search(r"[,.!?']", text) and rng.random() < 0.35:
        ops.append("punct")
    if not ops:
        ops.append("word" if words else "lower" if text != text.lower() else "punct")
    if "word" in ops:
        i = rng.choice(words)
        tokens[i] = _misspell(tokens[i], rng)
        text = " ".join(tokens)
    if "lower" in ops:
        text = text.lower()
    if "punct" in ops:
        text = re.sub(r"[.!?]+$", "", text.replace("'", "").replace(",", ""))
    return text


def _misspell(token: str, rng: random.Random) -> str:
    word = token.rstrip(",.!?")
    tail = token[len(word) :]
    i = rng.randrange(1, len(word) - 1)  # keep the first letter, as most slips do
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap" and word[i].lower() != word[i + 1].lower():
        word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    elif op == "double":
        word = word[: i + 1] + word[i:]
    else:
        word = word[:i] + word[i + 1 :]
    return word + tail


# --- Agent and system text --------------------------------------------------------------------


@dataclass(frozen=True)
class _AgentVoice:
    """What the agent knows when replying: the request, the customer's name, how it opened."""

    intent: str
    first_name: str | None
    clarity: str  # see _clarity
    intent_ack: str | None = None  # a shift's new intent brings its own (ml.synthetic.shift)
    team: str | None = None


def _fill_turns(
    rng: random.Random,
    roles: list[str],
    customer: list[str],
    substantive: int,
    channel: str,
    agent: _AgentVoice,
) -> list[dict[str, str]]:
    turns: list[dict[str, str]] = []
    said = 0  # customer turns so far
    stage = "greet"  # agent: greet before the customer speaks, ack once, then progress/close
    for role in roles:
        if role == CUSTOMER:
            text = customer[said]
            said += 1
            stage = "ack" if stage == "greet" else stage
        elif role == SYSTEM:
            text = _system_text(rng, bool(turns), agent.intent, channel, agent.team)
        else:
            text = _agent_text(rng, stage, said >= substantive, agent)
            stage = "later" if stage == "ack" else stage
        turns.append({"speaker": role, "text": text})
    return turns


def _agent_text(rng: random.Random, stage: str, wrap_up: bool, agent: _AgentVoice) -> str:
    if stage == "greet":
        return rng.choice(phrases.AGENT_GREETINGS)
    if stage == "later":
        return rng.choice(phrases.AGENT_CLOSINGS if wrap_up else phrases.AGENT_PROGRESS)
    if agent.clarity == "unclear":
        ack = rng.choice(phrases.AGENT_CHECK_FORMS).format(phrases.AGENT_CHECKS[agent.intent])
    else:
        ack = rng.choice(phrases.AGENT_ACKS)
        if agent.clarity == "clear" and rng.random() < 0.3:  # it can't name what it hasn't heard
            named = agent.intent_ack or phrases.AGENT_INTENT_ACKS[agent.intent]
            ack = f"{named} {ack}"
    if agent.first_name and rng.random() < 0.8:
        ack = f"Hi {agent.first_name}! {ack}"
    return ack


def _system_text(
    rng: random.Random, mid_conversation: bool, intent: str, channel: str, team: str | None = None
) -> str:
    if not mid_conversation:
        return rng.choice(phrases.SYSTEM_JOINS[channel])
    team = team or phrases.TEAMS.get(intent, "billing")
    return rng.choice(phrases.SYSTEM_TRANSFERS).format(team=team)

"""Replaying a day of customer messages through the served champion, over HTTP, as the
customer-service tool would have sent them: `intentflow replay` (the feedback-loop scenario).

Each conversation of a daily drop (DIR/YYYY-MM-DD/*.jsonl, canonical transcripts) that ingest
would accept is sent as its customer text (ml.transcript.model_text), in order of arrival, in
batches to POST /v1/models/{name}/predict. The service must run with INTENTFLOW_SERVE_REPLAY on:
each request says when its texts arrived (the batch's first `started_at`), so the predictions
land in that day of the prediction log, where monitoring reads them.

For benchmarks and tests only, the replay writes a key file outside the lake: one line per
prediction, {prediction_id, conversation_id, day, label (the true label), predicted, confidence,
shift}. The true label comes from the drop's truth file (ml.synthetic.shift) where the day has
one, else from the record. It holds no customer text (ids and labels only). Simulated agents
read it to correct predictions; a real deployment has no such file, its agents know.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ml.transcript import model_text

# Texts per request: the service's default micro-batch.
BATCH = 32
# Retries of a request the service answered 503 (overloaded, or the model still loading).
RETRIES = 30
TIMEOUT_S = 60.0


class ReplayError(RuntimeError):
    """The service refused a request for a reason a retry does not fix (the message says)."""


@dataclass(frozen=True)
class Message:
    conversation_id: str
    started_at: str
    text: str
    label: str
    shift: str | None


@dataclass
class Replayed:
    day: str
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> lines not sent
    correct: int = 0  # predicted label == true label
    by_shift: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> sent, correct
    versions: list[int] = field(default_factory=list)  # the versions that answered
    key_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "sent": self.sent,
            "skipped": self.skipped,
            "accuracy": round(self.correct / self.sent, 4) if self.sent else None,
            "by_shift": self.by_shift,
            "versions": sorted(set(self.versions)),
            "key_file": self.key_file,
        }


def day_messages(drops: Path, day: date, known: frozenset[str]) -> tuple[list[Message], Counter]:
    """The day's messages ingest would accept, in order of arrival, each with its true label;
    and the lines left out, by reason (broken lines the generator seeds for quarantine)."""
    from ml.synthetic.shift import read_truth

    truth = read_truth(drops, day)
    folder = Path(drops) / day.isoformat()
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no drop for {day} in {folder}")
    messages: list[Message] = []
    skipped: Counter = Counter()
    seen: set[str] = set()
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            reason, message = _message(line, truth, known, seen)
            if message is None:
                skipped[reason] += 1
            else:
                messages.append(message)
    messages.sort(key=lambda m: (m.started_at, m.conversation_id))
    return messages, skipped


def _message(
    line: str, truth: dict[str, dict[str, Any]], known: frozenset[str], seen: set[str]
) -> tuple[str, Message | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return "malformed_json", None
    cid, turns, started = (record.get(k) for k in ("conversation_id", "turns", "started_at"))
    if not isinstance(cid, str) or not isinstance(turns, list) or not isinstance(started, str):
        return "missing_field", None
    try:
        text = model_text(
            t for t in turns if isinstance(t, dict) and isinstance(t.get("text"), str)
        )
    except KeyError:
        return "missing_field", None
    if not text:
        return "empty_text", None
    if cid in seen:
        return "duplicate_id", None
    true = truth.get(cid)
    label = true["intent"] if true else record.get("intent")
    if label is None or (true is None and label not in known):
        return "unknown_intent" if label else "unlabeled", None
    seen.add(cid)
    return "", Message(cid, started, text, label, true.get("shift") if true else None)


def replay_day(
    drops: Path,
    day: date,
    url: str,
    model: str,
    token: str,
    key_dir: Path,
    known: frozenset[str],
    batch: int = BATCH,
) -> Replayed:
    """Send the day's messages to the served `model` at `url`; the key file goes to
    key_dir/YYYY-MM-DD.jsonl (replaced: a rerun of the day is a new replay)."""
    messages, skipped = day_messages(drops, day, known)
    done = Replayed(day.isoformat(), skipped=dict(skipped))
    key_dir.mkdir(parents=True, exist_ok=True)
    key_file = key_dir / f"{day.isoformat()}.jsonl"
    endpoint = f"{url.rstrip('/')}/v1/models/{model}/predict"
    with key_file.open("w", encoding="utf-8") as out:
        for i in range(0, len(messages), batch):
            chunk = messages[i : i + batch]
            body = {"texts": [m.text for m in chunk], "received_at": chunk[0].started_at}
            answer = _post(endpoint, body, token)
            done.versions.append(int(answer["version"]))
            for message, prediction in zip(chunk, answer["predictions"], strict=True):
                _count(done, message, prediction.get("label"))
                row = {
                    "prediction_id": prediction["prediction_id"],
                    "conversation_id": message.conversation_id,
                    "day": day.isoformat(),
                    "label": message.label,
                    "predicted": prediction.get("label"),
                    "confidence": prediction.get("confidence"),
                    "version": answer["version"],
                    "shift": message.shift,
                }
                out.write(json.dumps(row) + "\n")
    done.key_file = str(key_file)
    return done


def _count(done: Replayed, message: Message, predicted: str | None) -> None:
    right = int(predicted == message.label)
    done.sent += 1
    done.correct += right
    kind = done.by_shift.setdefault(message.shift or "none", {"sent": 0, "correct": 0})
    kind["sent"] += 1
    kind["correct"] += right


def _post(endpoint: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    """POST `body`; retries 503 (Retry-After) and refused connections (the service starting);
    any other refusal is a ReplayError with the service's own message (it never echoes texts)."""
    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    for attempt in range(RETRIES):
        request = urllib.request.Request(endpoint, data=data, headers=headers, method="POST")  # noqa: S310 (the operator's URL)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code != 503 or attempt == RETRIES - 1:
                raise ReplayError(f"{endpoint}: HTTP {exc.code}: {detail}") from None
            time.sleep(float(exc.headers.get("Retry-After") or 1))
        except urllib.error.URLError as exc:
            if attempt == RETRIES - 1:
                raise ReplayError(f"{endpoint}: {exc.reason}") from None
            time.sleep(1.0)
    raise ReplayError(f"{endpoint}: no answer after {RETRIES} tries")


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def read_keys(key_dir: Path) -> list[dict[str, Any]]:
    """Every key file's rows (all days replayed into `key_dir`), oldest day first."""
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(key_dir).glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows

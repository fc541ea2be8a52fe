"""An adversarial corpus through the real `intentflow ingest`: no PII outside redaction.

Every value below once reached the lake, its manifest or the quarantine's derived fields
(issue #17): personal values as conversation id, source or intent, and e-mails or cards
disguised by Unicode (full-width forms, zero-width and bidirectional controls) or written in
spellings the redactor missed. None may appear, in any spelling, in anything ingest writes or
prints except the quarantined raw lines (stored apart, ml.quarantine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from datetime import date
from pathlib import Path

from ml import lake
from ml.ingest.parse import clean_field

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 22)

# field -> personal values written there (one record each)
CORPUS = {
    "conversation_id": ["ann.lee@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"],
    "source": ["bob.source@example.org"],
    "intent": ["carol.intent@example.net"],
    "channel": ["hank.channel@example.com"],
    "text": [
        "ｄａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # full-width throughout
        "erin＠example.com",  # a full-width at sign
        "fr\u200bank@exa\u200dmple.com",  # zero-width space and joiner
        "gr\u202eace@exam\u202cple.com",  # bidi override
        "id\u2066a@exa\u2069mple.com",  # bidi isolate
        "ja\ufeffck@example.com",  # BOM as zero-width no-break space
        "5105\u200b1051\u200b0510\u200b5100",  # a card split by zero-width spaces
        "3782\u202e8224\u202c6310005",  # a card split by bidi controls
        "5500.0055.5555.5559",
        "4012/8888/8888/1881",
        "6011  1111  1111  1117",
        "jürgen@exämple.de",
        "用户@例子.公司",
        "de89 3704 0044 0532 0130 00",
        "gb82west12345698765432",
        "+33 1 23 45 67 89",
    ],
}


def record(i: int, field: str, value: str) -> dict:
    rec = {
        "conversation_id": f"adv{i}",
        "started_at": "2026-11-22T10:00:00Z",
        "channel": "chat",
        "language": "en",
        "intent": "refund_request",
        "turns": [
            {"speaker": "customer", "text": "I want a refund"},
            {"speaker": "agent", "text": "Sure"},
        ],
    }
    if field == "text":
        rec["turns"][i % 2]["text"] = f"my details: {value} thanks"
    else:
        rec[field] = value
    return rec


def needles(value: str) -> set[str]:
    """The value in the spellings a leak could take: as cleaned (NFKC, no invisible
    characters), case-folded; and for numbers, their digits and letters alone."""
    cleaned = clean_field(value).casefold()
    out = {cleaned}
    if "@" not in cleaned:
        out.add(re.sub(r"[^0-9a-z]", "", cleaned))
    return out


def texts_under(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_no_personal_value_survives_ingest_anywhere(tmp_path: Path) -> None:
    values = [(f, v) for f, vs in CORPUS.items() for v in vs]
    lines = [
        json.dumps(record(i, f, v), ensure_ascii=i % 2 == 0) for i, (f, v) in enumerate(values)
    ]
    lines += [json.dumps(record(100 + i, "text", "nothing personal")) for i in range(60)]
    folder = tmp_path / "feed" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "day.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTFLOW_")}
    env.update(PYTHONPATH=str(REPO), INTENTFLOW_HOME=str(home), INTENTFLOW_PROGRESS="log")
    done = subprocess.run(
        [sys.executable, "-m", "ml.cli", "--verbose", "ingest", "--date", DAY.isoformat(),
         "--path", str(tmp_path / "feed"), "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    partition = Path(result["partition"])
    day = date.fromisoformat(partition.name.removeprefix("dt="))
    rows = lake.read_partition(partition.parent, day).to_pylist()
    quarantine = lake.read_quarantine(Path(result["quarantine_file"]).parent, day).to_pylist()
    derived = [{k: v for k, v in r.items() if k != "raw"} for r in quarantine]
    places = {
        "lake rows": json.dumps(rows, default=str, ensure_ascii=False),
        "manifest": "".join(
            p.read_text() for p in (partition.parent / "_delta_log").glob("*.json")
        ),
        "quarantine (derived fields)": json.dumps(derived, ensure_ascii=False),
        "reports": texts_under(home / "reports"),
        "stdout (JSON result)": done.stdout,
        "stderr (logs)": done.stderr,
    }
    assert (home / "reports" / f"dt={DAY}" / "validation.json").exists()
    for place, text in places.items():
        # As stored and as a reader would normalise it; JSON escapes decoded.
        haystack = unicodedata.normalize("NFKC", text).casefold()
        for field, value in values:
            for needle in needles(value):
                assert needle not in haystack, f"{field} value {value!r} found in {place}"

    # The intent and the channel are quarantined; every other record reaches the lake.
    assert result["rows_written"] == len(lines) - 2
    assert result["quarantine_rules"] == {"unknown_channel": 1, "unknown_intent": 1}
    assert result["new_intents"] == {"[masked]": 1}
    ids = {r["conversation_id"] for r in rows}
    assert sum(cid.startswith("anon-") for cid in ids) == 3  # the personal ids, pseudonymised
    # The e-mail and the phone used as id are subject keys too (a card is not an identifier).
    anon = [r for r in rows if r["conversation_id"].startswith("anon-")]
    assert sum(bool(r["subject_keys"]) for r in anon) == 2
    assert not (home / "staging").exists() or not any((home / "staging").iterdir())

"""The synthetic daily drops: layout, determinism, record contract, broken lines, PII, typos."""

import json
import random
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from ml.synthetic.generate import BROKEN_KINDS, GeneratedDay, _typo, generate
from ml.taxonomy import INTENTS
from ml.transcript import CHANNELS, SPEAKERS

DAY = date(2026, 11, 20)
DAYS = 5
PER_DAY = 600
SEED = 7
FIELDS = ["conversation_id", "source", "started_at", "channel", "language", "intent", "turns"]
REQUIRED = ("conversation_id", "started_at", "channel", "language", "intent", "turns")


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory) -> list[GeneratedDay]:
    out = tmp_path_factory.mktemp("raw")
    return generate(out, days=DAYS, per_day=PER_DAY, start=DAY, seed=SEED)


def lines_of(day: GeneratedDay) -> list[str]:
    return [line for f in day.files for line in f.read_text(encoding="utf-8").splitlines()]


def classify(line: str, seen: set[str]) -> str | None:
    """The broken kind a line shows (None: good); `seen` collects the day's good ids."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return "malformed_json"
    if any(key not in rec for key in REQUIRED):
        return "missing_field"
    if rec["intent"] not in INTENTS:
        return "unknown_intent"
    if not any(t["speaker"] == "customer" and t["text"].strip() for t in rec["turns"]):
        return "empty_text"
    if rec["conversation_id"] in seen:
        return "duplicate_id"
    seen.add(rec["conversation_id"])
    return None


def good_records(day: GeneratedDay) -> list[dict]:
    seen: set[str] = set()
    return [json.loads(line) for line in lines_of(day) if classify(line, seen) is None]


def customer_texts(records: list[dict]) -> list[str]:
    return [t["text"] for r in records for t in r["turns"] if t["speaker"] == "customer"]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, d in enumerate(int(c) for c in reversed(number)):
        total += d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d)
    return total % 10 == 0


# --- layout and determinism -------------------------------------------------------------------


def test_layout_splits_each_day_into_files_of_500(drops: list[GeneratedDay]) -> None:
    root = drops[0].files[0].parent.parent
    assert [d.day for d in drops] == [DAY + timedelta(days=i) for i in range(DAYS)]
    assert sorted(p.name for p in root.iterdir()) == [d.day.isoformat() for d in drops]
    for day in drops:
        folder = root / day.day.isoformat()
        assert sorted(folder.iterdir()) == day.files  # nothing else, no .tmp left behind
        assert [f.name for f in day.files] == ["chats-000.jsonl", "chats-001.jsonl"]
        counts = [len(f.read_text(encoding="utf-8").splitlines()) for f in day.files]
        assert counts == [500, 100]
        assert day.records == PER_DAY == sum(counts)
        assert all(f.read_bytes().endswith(b"\n") for f in day.files)


def test_small_day_is_one_file(tmp_path: Path) -> None:
    [day] = generate(tmp_path, days=1, per_day=7, start=DAY)
    assert [f.name for f in day.files] == ["chats-000.jsonl"]
    assert day.records == 7


def test_same_seed_same_bytes_whatever_the_range(drops: list[GeneratedDay], tmp_path: Path) -> None:
    # Days 3-4 alone, in a different call, are byte-identical to days 3-4 of the 5-day call.
    again = generate(tmp_path / "a", days=2, per_day=PER_DAY, start=DAY + timedelta(3), seed=SEED)
    for mine, theirs in zip(again, drops[3:], strict=True):
        assert [f.read_bytes() for f in mine.files] == [f.read_bytes() for f in theirs.files]
        assert (mine.broken, mine.pii) == (theirs.broken, theirs.pii)
    other = generate(tmp_path / "b", days=1, per_day=PER_DAY, start=DAY, seed=SEED + 1)
    assert other[0].files[0].read_bytes() != drops[0].files[0].read_bytes()


def test_default_start_ends_yesterday(tmp_path: Path) -> None:
    days = generate(tmp_path, days=2, per_day=5)
    today = date.today()
    assert [d.day for d in days] == [today - timedelta(2), today - timedelta(1)]


def test_rerun_with_fewer_lines_leaves_no_stale_file(tmp_path: Path) -> None:
    generate(tmp_path, days=1, per_day=PER_DAY, start=DAY)
    [day] = generate(tmp_path, days=1, per_day=50, start=DAY)
    assert sorted((tmp_path / DAY.isoformat()).iterdir()) == day.files
    assert len(day.files) == 1


@pytest.mark.parametrize(
    "kwargs", [{"days": -1}, {"per_day": -1}, {"broken_share": 1.5}, {"broken_share": -0.1}]
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    args = {"days": 1, "per_day": 10} | kwargs
    with pytest.raises(ValueError):
        generate(tmp_path, **args)


# --- the record contract ----------------------------------------------------------------------


def test_good_records_follow_the_contract(drops: list[GeneratedDay]) -> None:
    for day in drops:
        records = good_records(day)
        assert len(records) == day.records - day.broken
        start = datetime.combine(day.day, datetime.min.time(), tzinfo=UTC)
        for rec in records:
            assert list(rec) == FIELDS
            assert re.fullmatch(rf"syn-{day.day:%Y%m%d}-\d{{6}}", rec["conversation_id"])
            assert rec["source"] == "synthetic"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["started_at"])
            at = datetime.fromisoformat(rec["started_at"])
            assert start <= at < start + timedelta(days=1)
            assert rec["channel"] in CHANNELS
            assert re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", rec["language"])
            turns = rec["turns"]
            assert 2 <= len(turns) <= 6
            assert all(set(t) == {"speaker", "text"} and t["speaker"] in SPEAKERS for t in turns)
            assert all(a["speaker"] != b["speaker"] for a, b in pairwise(turns))
            assert any(t["speaker"] == "customer" and t["text"].strip() for t in turns)


def test_mix_of_channels_languages_and_speakers(drops: list[GeneratedDay]) -> None:
    records = [r for day in drops for r in good_records(day)]
    channels = Counter(r["channel"] for r in records)
    languages = Counter(r["language"] for r in records)
    assert channels.most_common(1)[0][0] == "chat" and len(channels) > 1
    assert languages["en"] / len(records) > 0.7 and len(languages) > 1
    firsts = Counter(r["turns"][0]["speaker"] for r in records)
    assert firsts.most_common(1)[0][0] == "customer" and len(firsts) == 3
    system = [t["text"] for r in records for t in r["turns"] if t["speaker"] == "system"]
    assert "Customer joined the chat" in system
    assert any(text.startswith("Transferred to") for text in system)


def test_every_intent_appears_in_a_600_line_day(drops: list[GeneratedDay]) -> None:
    assert {r["intent"] for r in good_records(drops[0])} == set(INTENTS)


def test_ids_are_unique_across_days(drops: list[GeneratedDay]) -> None:
    ids = [r["conversation_id"] for day in drops for r in good_records(day)]
    assert len(ids) == len(set(ids))


def test_utf8_without_escapes(drops: list[GeneratedDay]) -> None:
    text = "\n".join(lines_of(drops[0]))
    assert "\\u" not in text
    assert any(ord(c) > 127 for c in text)  # £ amounts, names like Zoë


# --- broken lines -----------------------------------------------------------------------------


def test_broken_share_and_kinds(drops: list[GeneratedDay]) -> None:
    kinds: Counter[str] = Counter()
    for day in drops:
        seen: set[str] = set()
        found = [k for k in (classify(line, seen) for line in lines_of(day)) if k]
        assert len(found) == day.broken == round(PER_DAY * 0.02)
        kinds.update(found)
    assert set(kinds) == set(BROKEN_KINDS)
    assert max(kinds.values()) <= 2 * min(kinds.values())  # spread, not one kind


def test_duplicate_repeats_an_earlier_id_with_other_content(drops: list[GeneratedDay]) -> None:
    checked = 0
    for day in drops:
        by_id: dict[str, str] = {}
        seen: set[str] = set()
        for line in lines_of(day):
            if classify(line, seen) == "duplicate_id":
                original = by_id[json.loads(line)["conversation_id"]]
                assert json.loads(original)["turns"] != json.loads(line)["turns"]
                checked += 1
            elif line.endswith("}") and "conversation_id" in json.loads(line):
                by_id.setdefault(json.loads(line)["conversation_id"], line)
    assert checked > 0


@pytest.mark.parametrize(("per_day", "share", "expected"), [(20, 0.02, 1), (1000, 0.1, 100)])
def test_broken_count(tmp_path: Path, per_day: int, share: float, expected: int) -> None:
    days = generate(tmp_path, days=5, per_day=per_day, start=DAY, broken_share=share)
    for day in days:
        seen: set[str] = set()
        found = [line for line in lines_of(day) if classify(line, seen)]
        assert day.broken == len(found) == expected


def test_one_broken_a_day_still_covers_every_kind_in_five_days(tmp_path: Path) -> None:
    days = generate(tmp_path, days=5, per_day=20, start=DAY)
    kinds = set()
    for day in days:
        seen: set[str] = set()
        kinds |= {classify(line, seen) for line in lines_of(day)} - {None}
    assert kinds == set(BROKEN_KINDS)


def test_zero_share_is_all_good(tmp_path: Path) -> None:
    [day] = generate(tmp_path, days=1, per_day=300, start=DAY, broken_share=0)
    assert day.broken == 0
    assert len(good_records(day)) == 300


# --- PII --------------------------------------------------------------------------------------


def test_seeded_pii_appears_verbatim(drops: list[GeneratedDay]) -> None:
    for day in drops:
        text = "\n".join(lines_of(day))
        assert set(day.pii) == {"email", "phone", "card", "order_id", "name"}
        for kind, values in day.pii.items():
            assert values, kind
            assert all(value in text for value in values), kind


def test_pii_values_look_real(drops: list[GeneratedDay]) -> None:
    pii = {kind: [v for day in drops for v in day.pii[kind]] for kind in drops[0].pii}
    for card in pii["card"]:
        assert re.fullmatch(r"\d{16}|\d{4}( \d{4}){3}|\d{4}(-\d{4}){3}", card), card
        assert luhn_ok(card.replace(" ", "").replace("-", "")), card
    assert {len(set(re.sub(r"\d", "", c))) for c in pii["card"]} == {0, 1}  # plain and grouped
    assert all(re.fullmatch(r"ORD-\d{8}|#[A-Z0-9]{8}", o) for o in pii["order_id"])
    assert all(re.fullmatch(r"[a-z0-9.]+@[a-z.]+", e) for e in pii["email"])
    assert all(re.fullmatch(r"[+()\d][\d .()-]{9,16}\d", p) for p in pii["phone"])
    assert any(p.startswith("+44") for p in pii["phone"])
    assert any(p.startswith("(") for p in pii["phone"])
    assert any(" " in n for n in pii["name"])  # full names as well as first names


def test_luhn_helper_itself() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_about_40_percent_of_conversations_carry_pii(drops: list[GeneratedDay]) -> None:
    for day in drops[:2]:
        values = [v for kind, vs in day.pii.items() for v in vs if kind != "name" or " " in v]
        any_value = re.compile("|".join(map(re.escape, values)))
        records = good_records(day)
        carrying = sum(bool(any_value.search(json.dumps(r, ensure_ascii=False))) for r in records)
        assert 0.3 < carrying / len(records) < 0.5


# --- realism ----------------------------------------------------------------------------------


def test_typo_changes_text_but_keeps_placeholders() -> None:
    text = "Hi, I'd like to return my {product}. The order number is {order_id}."
    results = [_typo(text, random.Random(i)) for i in range(300)]
    assert all(r != text for r in results)
    assert all("{product}" in r and "{order_id}" in r for r in results)
    assert text.lower() in results  # lowercase only
    assert any(not r.endswith(".") and "'" not in r for r in results)  # punctuation dropped
    assert any(len(r) == len(text) + 1 for r in results)  # a doubled letter
    assert any(len(r) == len(text) - 1 for r in results)  # a dropped letter


def test_typo_on_text_without_words_or_case() -> None:
    assert _typo("ok", random.Random(0)) == "ok"  # nothing it may touch


def test_customer_text_has_typos_and_variety(drops: list[GeneratedDay]) -> None:
    texts = customer_texts(good_records(drops[0]))
    lowercase_start = sum(t[:1].islower() for t in texts) / len(texts)
    assert 0.01 < lowercase_start < 0.2  # templates all start with a capital
    openings = {r["turns"][0]["text"] for r in good_records(drops[0])}
    assert len(openings) > 300  # paraphrases and slots, not a handful of strings


def test_agents_do_not_always_name_the_intent(drops: list[GeneratedDay]) -> None:
    records = good_records(drops[0])
    agent_texts = Counter(t["text"] for r in records for t in r["turns"] if t["speaker"] == "agent")
    # The most common agent replies are generic and shared across many intents.
    top = agent_texts.most_common(1)[0][0]
    intents = {r["intent"] for r in records if any(t["text"] == top for t in r["turns"])}
    assert len(intents) > 10

"""`intentflow evaluate --data FILE` for every task type: a model trained (tiny BERT, one epoch)
on one labeled file through `intentflow train --data`, then scored through the CLI on another
file, read by the same adapters: every usable record scored, the others quarantined with file,
record number, rule and reason (never their text), and the counts of each reported."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from answer_pairs import TOPICS, pairs_csv, write_pairs
from ci import dataset
from typer.testing import CliRunner

from ml.cli.main import app

runner = CliRunner()
# In every refused record: it must never reach the output, a log or the report's quarantine.
SECRET = "zebra-4417"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def evaluate_json(model: str, data: Path, *options: str) -> dict[str, Any]:
    return json.loads(invoke("evaluate", "--model", model, "--data", str(data), *options, "--json"))


def quarantine_rows(report: str | Path) -> list[dict[str, Any]]:
    return pq.read_table(Path(report) / "quarantine.parquet").to_pylist()


@pytest.fixture
def tiny_home(intentflow_home: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home training on the tiny BERT, whose first version of a model is champion
    whatever the size of its (tiny) test split."""
    monkeypatch.setenv("INTENTFLOW_BASE_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "1")
    return intentflow_home


def train(data: Path, *args: str) -> dict[str, Any]:
    return json.loads(
        invoke("train", "--data", str(data), *args, "--epochs", "1", "--batch-size", "16", "--json")
    )


# --- intent ----------------------------------------------------------------------------------

INTENT_WORDS = {
    "refund_request": "refund money back",
    "lost_card": "lost card stolen",
    "order_status": "where order track",
}


def test_evaluate_intent_on_another_file_scores_the_usable_records_and_quarantines_the_rest(
    tiny_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train_csv = tmp_path / "train.csv"
    train_csv.write_text(
        "text,label\n"
        + "".join(f"{w} please {i},{y}\n" for y, w in INTENT_WORDS.items() for i in range(40))
    )
    assert train(train_csv, "--test-fraction", "0.1")["alias"] == "champion"

    # Held out, DSTC11-style JSON lines: 30 usable records, then three it cannot score.
    held_out = tmp_path / "held_out.jsonl"
    good = [
        {"utterance": f"{w} now {i}", "utterance_id": f"u{y}{i}", "intent": y}
        for y, w in INTENT_WORDS.items()
        for i in range(10)
    ]
    lines = [json.dumps(r) for r in good]
    lines.append(json.dumps({"utterance": 5, "utterance_id": SECRET, "intent": SECRET}))  # 31
    lines.append(json.dumps({"utterance": f"my {SECRET} card", "utterance_id": "u", "intent": ""}))
    lines.append('{"utterance": "' + SECRET)  # 33: malformed JSON
    held_out.write_text("\n".join(lines) + "\n")

    report = tmp_path / "report"
    with caplog.at_level("INFO"):
        result = runner.invoke(
            app,
            ["evaluate", "--model", "intent@champion", "--data", str(held_out)]
            + ["--report-dir", str(report)],
        )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "records      33 read, 30 scored, 3 quarantined" in text
    assert f"{held_out}: record 31: invalid_field: field 'utterance' must be a string" in text
    assert f"{held_out}: record 32: missing_label: field 'intent' is empty or missing" in text
    assert f"{held_out}: record 33: malformed_json: malformed JSON" in text
    assert SECRET not in text + caplog.text

    refused = quarantine_rows(report)
    assert [(r["source_file"], r["record"], r["rule"]) for r in refused] == [
        (str(held_out), 31, "invalid_field"),
        (str(held_out), 32, "missing_label"),
        (str(held_out), 33, "malformed_json"),
    ]
    # The report says where and why; the record itself stays in the file it came from.
    assert all(r["raw"] == "" and r["conversation_id"] is None for r in refused)
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in report.iterdir())
    assert {"metrics.json", "confusion_matrix.json", "quarantine.parquet"} <= {
        p.name for p in report.iterdir()
    }

    metrics = evaluate_json("intent@champion", held_out)
    assert (metrics["n"], metrics["records_read"], metrics["records_quarantined"]) == (30, 33, 3)
    assert metrics["quarantine_rules"] == {
        "invalid_field": 1,
        "missing_label": 1,
        "malformed_json": 1,
    }
    assert set(metrics["per_class"]) == set(INTENT_WORDS)
    # Without --report-dir, the report goes under the data folder, per model version.
    default = Path(metrics["report"])
    assert default.parent.parent == tiny_home / "reports" / "evaluate" / "intent"
    assert default.parent.name == "v1" and len(quarantine_rows(default)) == 3

    # The same usable records as Parquet with other column names: the same scores.
    parquet = tmp_path / "held_out.parquet"
    pq.write_table(
        pa.table(
            {
                "message": [r["utterance"] for r in good],
                "topic": [r["intent"] for r in good],
            }
        ),
        parquet,
    )
    columns = ["--text-column", "message", "--label-column", "topic"]
    again = evaluate_json("intent@champion", parquet, *columns)
    assert (again["n"], again["records_quarantined"]) == (30, 0)
    assert again["accuracy"] == metrics["accuracy"] and again["macro_f1"] == metrics["macro_f1"]


def test_evaluate_fails_clearly_on_a_file_it_cannot_read_as_labeled_data(
    tiny_home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_text(
        "text,label\n" + "".join(f"lost card {i},lost\nrefund {i},refund\n" for i in range(20))
    )
    train(data)
    words = tmp_path / "words.csv"
    words.write_text("words,label\nhello,x\n")
    result = runner.invoke(app, ["evaluate", "--model", "intent:1", "--data", str(words)])
    assert result.exit_code == 2
    assert f"{words}: no column 'text' (columns: words, label)" in result.output
    missing = runner.invoke(app, ["evaluate", "--model", "intent:1", "--data", "/no/such.csv"])
    assert missing.exit_code == 2 and "no labeled" in missing.output


# --- entities --------------------------------------------------------------------------------

BITEXT = "bitext-customer-support/train.csv"


def _bitext_rows(n_train: int, n_test: int) -> tuple[list[str], list[dict], list[dict]]:
    """Bitext's header and two disjoint random samples of its records."""
    with dataset(BITEXT).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    random.Random(0).shuffle(rows)
    return header, rows[:n_train], rows[n_train : n_train + n_test]


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_entities_trained_on_bitext_evaluate_on_a_held_out_file_in_every_format(
    tiny_home: Path, tmp_path: Path
) -> None:
    """The issue's own steps: `train --task entities --data bitext/train.csv`, then `evaluate
    --model entities@champion --data bitext/test.csv` (it used to fail on Parquet magic bytes)."""
    header, train_rows, test_rows = _bitext_rows(300, 100)
    train_csv = _write_csv(tmp_path / "train.csv", header, train_rows)
    broken = {**test_rows[0], "instruction": f"order {SECRET}", "entity_type": "order_id"}
    broken.update(start_offset="x", end_offset="9")
    test_csv = _write_csv(tmp_path / "test.csv", header, [*test_rows, broken])
    trained = train(train_csv, "--task", "entities")
    assert (trained["model"], trained["alias"]) == ("entities", "champion")

    metrics = evaluate_json("entities@champion", test_csv)
    assert metrics["task"] == "entities" and metrics["records_read"] == 101
    assert metrics["n"] + metrics["records_quarantined"] == 101
    refused = quarantine_rows(metrics["report"])
    assert refused[-1]["record"] == 101 and refused[-1]["rule"] == "invalid_field"
    # Bitext's own bad spans (86 past the text's end, 11 inside a word in the whole file).
    assert {r["rule"] for r in refused} <= {
        "invalid_field",
        "span_out_of_range",
        "span_splits_word",
    }
    assert all(r["raw"] == "" for r in refused)
    text = invoke("evaluate", "--model", "entities@champion", "--data", str(test_csv))
    assert f"records      101 read, {metrics['n']} scored" in text and SECRET not in text

    # The usable records as JSON lines (a `spans` column, the text under another name) and as
    # Parquet: read the same way, scored the same.
    from ml.tasks.entities.data import read_examples

    examples, _, _ = read_examples(str(test_csv))
    assert len(examples) == metrics["n"]
    jsonl = tmp_path / "test.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"message": e["text"], "spans": e["spans"]}) + "\n" for e in examples)
    )
    parquet = tmp_path / "test.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"text": e["text"], "spans": e["spans"]} for e in examples]), parquet
    )
    for data, options in ((jsonl, ["--text-column", "message"]), (parquet, [])):
        again = evaluate_json("entities@champion", data, *options)
        assert (again["n"], again["records_quarantined"]) == (metrics["n"], 0)
        assert again["micro_f1"] == metrics["micro_f1"]
        assert again["per_class"] == metrics["per_class"]


# --- answers ---------------------------------------------------------------------------------


def _question(intent: str, n: int, opener: str = "") -> dict[str, Any]:
    question, reply = TOPICS[intent]
    q = opener + question.format(n=n)
    start = q.index(str(n))
    return {
        "instruction": q,
        "intent": intent,
        "start_offset": start,
        "end_offset": start + 4,
        "response": reply.format(n=n),
    }


def test_answers_evaluate_scores_gold_replies_missing_from_the_bank_as_misses_and_by_intent(
    tiny_home: Path, tmp_path: Path
) -> None:
    """A question whose gold reply is in the bank is ranked against it; one whose gold reply
    the bank lacks scores 0 on the exact-reply metrics (`gold_missing`) and is scored by the
    replies of its intent on the intent-level ones; one without an intent is left out of those."""
    trained = train(pairs_csv(tmp_path / "pairs.csv", per_intent=40), "--task", "answers")
    assert (trained["model"], trained["alias"]) == ("answers", "champion")
    in_bank = []  # new phrasings whose reply is a bank entry (training's reply of that id)
    for intent in TOPICS:
        for i in range(4):
            row = _question(intent, 1000 + i, "so ")
            row["response"] += f"\r\nVariant {i % 7}."  # pairs_csv's exact reply
            in_bank.append(row)
    new_replies = [_question(intent, 3000 + i, "hey ") for intent in TOPICS for i in range(3)]
    no_intent = [{**r, "intent": ""} for r in in_bank[:2]]
    bad = [
        {**in_bank[0], "instruction": ""},  # empty_question
        {**in_bank[0], "instruction": f"is {SECRET} here", "response": " "},  # empty_answer
    ]
    files = {
        "a": write_pairs(tmp_path / "a.csv", in_bank),
        "ab": write_pairs(tmp_path / "ab.csv", in_bank + new_replies),
        "ac": write_pairs(tmp_path / "ac.csv", in_bank + no_intent),
        "all": write_pairs(tmp_path / "all.csv", in_bank + new_replies + no_intent + bad),
    }
    with files["all"].open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow([SECRET, "x", "", "", "reply", "one field too many"])
    m = {name: evaluate_json("answers@champion", path) for name, path in files.items()}

    full = m["all"]
    n = len(in_bank) + len(new_replies) + len(no_intent)
    assert (full["n"], full["records_read"], full["records_quarantined"]) == (n, n + 3, 3)
    assert full["quarantine_rules"] == {"empty_question": 1, "empty_answer": 1, "malformed_csv": 1}
    assert full["gold_missing"] == len(new_replies) and m["a"]["gold_missing"] == 0
    assert full["intent_n"] == len(in_bank) + len(new_replies) and full["intent_missing"] == 0
    # Exact reply: the missing replies add questions that score 0.
    assert m["ab"]["mrr"] * m["ab"]["n"] == pytest.approx(m["a"]["mrr"] * m["a"]["n"], abs=1e-6)
    assert m["ab"]["recall_at_5"] * m["ab"]["n"] == pytest.approx(
        m["a"]["recall_at_5"] * m["a"]["n"], abs=1e-6
    )
    # Intent level: those questions count, by their intent's replies; questions without an
    # intent are left out (not misses).
    assert m["ab"]["intent_n"] == len(in_bank) + len(new_replies)
    assert m["ac"]["intent_n"] == m["a"]["intent_n"] == len(in_bank)
    assert m["ac"]["intent_mrr"] == pytest.approx(m["a"]["intent_mrr"], abs=1e-6)

    text = invoke("evaluate", "--model", "answers@champion", "--data", str(files["all"]))
    assert f"records      {n + 3} read, {n} scored, 3 quarantined" in text
    assert f"gold reply not in the bank: {len(new_replies)} of {n} questions" in text
    assert f"same intent  intent_mrr {full['intent_mrr']:.4f}" in text
    assert SECRET not in text
    assert all(r["raw"] == "" for r in quarantine_rows(full["report"]))

    # Another file's own column names, named as `train --data` would take them.
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(
            json.dumps({"question": r["instruction"], "reply": r["response"], "topic": r["intent"]})
            + "\n"
            for r in in_bank
        )
    )
    named = ["--text-column", "question", "--answer-column", "reply", "--label-column", "topic"]
    again = evaluate_json("answers@champion", other, *named)
    assert again["n"] == len(in_bank) and again["mrr"] == pytest.approx(m["a"]["mrr"], abs=1e-6)

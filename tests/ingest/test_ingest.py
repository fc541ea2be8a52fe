"""Ingest of one day: real files, real Great Expectations, real Parquet."""

import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ml import lake
from ml.config import settings
from ml.ingest.sources import SourceSpec
from ml.ingest.steps import discover, ingest_day, normalise, validate
from ml.ingest.validation import DataQualityError
from ml.progress import Progress

DAY = date(2026, 11, 22)


def rec(
    cid: str, intent: str | None = "refund_request", hour: int = 10, text: str = "I want a refund"
) -> str:
    return json.dumps(
        {
            "conversation_id": cid,
            "started_at": f"2026-11-22T{hour:02d}:00:00Z",
            "channel": "chat",
            "language": "en",
            "intent": intent,
            "turns": [{"speaker": "customer", "text": text}, {"speaker": "agent", "text": "ok"}],
        }
    )


def write_drop(root: Path, name: str, lines: list[str]) -> Path:
    folder = root / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_discover_finds_the_days_jsonl_files_only(tmp_path: Path) -> None:
    write_drop(tmp_path, "b.jsonl", [rec("1")])
    write_drop(tmp_path, "a.jsonl", [rec("2")])
    (tmp_path / DAY.isoformat() / "notes.txt").write_text("x")
    (tmp_path / "2026-11-23").mkdir()
    files = discover(SourceSpec(str(tmp_path)), DAY)
    assert [Path(f).name for f in files] == ["a.jsonl", "b.jsonl"]


def test_discover_on_memory_filesystem() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/feed/2026-11-22/x.jsonl", rec("1").encode())
    assert discover(SourceSpec("memory://feed"), DAY) == ["memory:///feed/2026-11-22/x.jsonl"]


def test_ingest_day_counts_quarantine_and_partition(intentflow_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_drop(
        src, "a.jsonl", [rec("1"), rec("2", intent="pizza_order"), "{broken", "", rec("3", hour=9)]
    )
    write_drop(src, "b.jsonl", [rec("3", text="dup id, other file"), rec("4", intent=None)])
    write_drop(src, "c.jsonl", [rec(f"x{i}") for i in range(10)])
    result = ingest_day(DAY, SourceSpec(str(src)))
    assert (result["rows_read"], result["rows_written"], result["rows_quarantined"]) == (16, 13, 3)
    assert result["rows_read"] == result["rows_written"] + result["rows_quarantined"]
    assert result["quarantine_rules"] == {
        "duplicate_id": 1,
        "malformed_json": 1,
        "unknown_intent": 1,
    }
    table = lake.read_partition(settings().lake, DAY)
    assert table.column("conversation_id").to_pylist()[:3] == ["1", "3", "4"]
    assert table.column("intent").to_pylist()[2] is None  # unlabeled rows are kept
    q = pq.read_table(result["quarantine_file"]).to_pylist()
    dup = next(r for r in q if r["rule"] == "duplicate_id")
    assert dup["source_file"].endswith("b.jsonl") and dup["record"] == 1 and "dup id" in dup["raw"]
    broken = next(r for r in q if r["rule"] == "malformed_json")
    assert broken["record"] == 3 and broken["raw"] == "{broken"
    # The summary page lists every expectation GX ran (the day's, then the one batch's) as passed.
    report = Path(result["validation_report"])
    ran = json.loads((report.parent / "validation.json").read_text())
    expectations = [r for run in ran for r in run["results"]]
    assert len(ran) == 2 and len(expectations) >= 5 and all(r["success"] for r in expectations)
    html = report.read_text()
    assert "passed</h1>" in html and "FAIL" not in html
    assert html.count("<td>pass</td>") == len(expectations)
    assert not list(settings().staging.iterdir())  # staging cleaned up


def test_rerun_gives_identical_partition(intentflow_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec(str(i)) for i in range(30)])
    first = ingest_day(DAY, SourceSpec(str(src)))
    (data,) = lake.data_files(settings().lake, DAY)
    first_bytes = Path(data).read_bytes()
    second = ingest_day(DAY, SourceSpec(str(src)))
    assert second["content_hash"] == first["content_hash"]
    (again,) = lake.data_files(settings().lake, DAY)
    assert again != data and Path(again).read_bytes() == first_bytes  # a new commit, same bytes
    assert lake.read_partition(settings().lake, DAY).num_rows == 30
    assert lake.list_partitions(settings().lake) == [DAY]


def test_a_retried_normalise_ignores_what_a_killed_attempt_staged(tmp_path: Path) -> None:
    """A task retry stages into its run's folder again: a dead attempt's runs are not merged."""
    from ml.ingest import normalise as step

    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec(str(i)) for i in range(30)])
    files = discover(SourceSpec(str(src)), DAY)
    staging = tmp_path / "staging"
    first = normalise(files, DAY, staging, SourceSpec(str(src)))
    # What an attempt killed after staging its blocks leaves behind: run files, not merged
    # (numbered apart from this attempt's, as when the day's files changed in between).
    stale = step._Stage(staging, 1)
    stale.seq = 1000
    with Progress("stale attempt", None, mode="off") as progress:
        step._normalise_blocks(
            stale,
            SourceSpec(str(src)),
            files,
            DAY,
            frozenset({"refund_request"}),
            b"test-key",
            None,
            progress,
        )
    again = normalise(files, DAY, staging, SourceSpec(str(src)))
    assert (again["rows_written"], again["rows_quarantined"]) == (30, 0)
    assert again["content_hash"] == first["content_hash"]


def test_a_day_without_input_files_fails_saying_so(intentflow_home: Path, tmp_path: Path) -> None:
    """An empty or missing day folder names what is missing, not a row count of 0."""
    from ml.ingest.steps import SourceError

    (tmp_path / "raw" / "2026-11-23").mkdir(parents=True)
    for folder, day in (("nothing", DAY), ("raw", date(2026, 11, 23))):
        with pytest.raises(SourceError, match=rf"^no input files for {day} under .*{folder}$"):
            ingest_day(day, SourceSpec(str(tmp_path / folder)))
    assert lake.list_partitions(settings().lake) == []
    assert not list(settings().staging.glob("*"))


def test_quarantine_share_over_threshold_fails(intentflow_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec("1"), "{x", "{y"])
    staged = normalise(
        discover(SourceSpec(str(src)), DAY), DAY, tmp_path / "stage", SourceSpec(str(src))
    )
    with pytest.raises(DataQualityError, match="quarantine_share"):
        validate(staged, tmp_path / "reports")
    # The DAG's validate task keeps the staged day for inspection; the CLI's one-shot run
    # leaves none, its report stays.
    with pytest.raises(DataQualityError, match="quarantine_share"):
        ingest_day(DAY, SourceSpec(str(src)))
    assert not list(settings().staging.iterdir())
    assert (settings().reports / f"dt={DAY.isoformat()}" / "validation.html").exists()


def test_a_crashed_run_leaves_no_staged_day(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge is made to fail (a stand-in for any crash: a full disk, a bug)."""
    from ml.ingest import staging

    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec(str(i)) for i in range(10)])

    def crash(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(staging, "merge", crash)
    with pytest.raises(OSError, match="no space"):
        ingest_day(DAY, SourceSpec(str(src)))
    assert not list(settings().staging.iterdir())


def test_the_issue_corpus_publishes_the_day_with_one_quarantine_row_each(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records that crashed ingest or failed a whole day, beside 40 good ones, on
    both parsing paths (in a 32+ line file the fast path once accepted the deep record)."""
    from ml.ingest import normalise as step

    base = json.loads(rec("x"))
    deep = "[" * 60_000 + "]" * 60_000
    bad = {
        "invalid_utf8": rec("id-\ud83d"),
        "too_deep": json.dumps({**base, "conversation_id": "deep", "meta": None}).replace(
            "null", deep
        ),
        "outside_interval": rec("old").replace("2026-11-22T10:00:00Z", "0001-01-01T00:00:00+01:00"),
        "too_many_turns": json.dumps(
            {**base, "conversation_id": "many", "turns": [{"speaker": "customer", "text": "a"}] * 100_000}
        ),
        "unknown_channel": json.dumps({**base, "conversation_id": "fax", "channel": "fax"}),
        "unknown_language": json.dumps({**base, "conversation_id": "fr", "language": "fr"}),
        "empty_text": json.dumps(
            {**base, "conversation_id": "zw", "turns": [{"speaker": "customer", "text": "\u200b\u200d"}]}
        ),
    }  # fmt: skip
    control = json.dumps(
        {**base, "conversation_id": "ctl\x00\x1b[31m\x07\x08", "source": "s\x00rc"}
    )
    src = tmp_path / "raw"
    good = [rec(f"g{i}") for i in range(40)]
    write_drop(src, "a.jsonl", [*good[:20], deep, *bad.values(), control, *good[20:]])
    path = src / DAY.isoformat() / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte-order mark opens the file
    results = {}
    for fast in (True, False):
        monkeypatch.setattr(step, "FAST_PATH", fast)
        results[fast] = result = ingest_day(DAY, SourceSpec(str(src)))
        assert (result["rows_read"], result["rows_written"]) == (49, 41)
        assert result["quarantine_rules"] == {**{rule: 1 for rule in bad}, "too_deep": 2}
        assert not list(settings().staging.iterdir())
    assert results[True]["content_hash"] == results[False]["content_hash"]
    q = pq.read_table(results[False]["quarantine_file"]).to_pylist()
    surrogate = next(r for r in q if r["rule"] == "invalid_utf8")
    assert surrogate["conversation_id"] == "id-\\ud83d" and surrogate["record"] == 22
    table = lake.read_partition(settings().lake, DAY).to_pylist()
    [cleaned] = [r for r in table if r["conversation_id"].startswith("ctl")]
    assert (cleaned["conversation_id"], cleaned["source"]) == ("ctl[31m", "src")
    assert "g0" in {r["conversation_id"] for r in table}  # the first line, after the BOM


def test_gx_gate_catches_raw_pii_that_slipped_through(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """Redaction is bypassed on purpose (staged file edited) to prove the gate looks."""
    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec(str(i)) for i in range(5)])
    staged = normalise(
        discover(SourceSpec(str(src)), DAY), DAY, tmp_path / "stage", SourceSpec(str(src))
    )
    path = Path(staged["staging_dir"]) / "rows.parquet"
    table = pq.read_table(path)
    import pyarrow as pa

    texts = table.column("text").to_pylist()
    texts[0] = "mail me at leak@example.com"
    pq.write_table(
        table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)), path
    )
    with pytest.raises(DataQualityError, match=r"expect_column_values_to_be_null\(pii_left\)=1"):
        validate(staged, tmp_path / "reports")


def test_every_kind_of_bad_input_is_quarantined_and_the_run_goes_on(
    intentflow_home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "raw"
    good = [rec(f"g{i}") for i in range(40)]
    control = json.loads(rec("ctl", text="refund\x00 now\x07 please"))
    huge = json.loads(rec("huge", text="x" * 10_000_000))  # a 10 MB message
    mistyped = json.loads(rec("typed"))
    mistyped["turns"] = "not a list"
    missing = json.loads(rec("missing"))
    del missing["started_at"]
    write_drop(
        src,
        "a.jsonl",
        [
            *good[:20],
            json.dumps(control),
            json.dumps(huge),
            json.dumps(mistyped),
            json.dumps(missing),
            '["an", "array"]',
            "42",
            rec("late", hour=23).replace("T23:", "T23:").replace("2026-11-22T", "2026-11-23T"),
        ],
    )
    write_drop(src, "b.jsonl", [*good[20:], rec("g0", text="same id, other file")])
    folder = src / DAY.isoformat()
    (folder / "c.jsonl").write_bytes(b'{"conversation_id": "bad\xff\xfe"}\n' + rec("c1").encode())
    # Truncated: the writer died mid-record (and mid-way through a UTF-8 character).
    (folder / "d.jsonl").write_bytes(rec("d1").encode() + b"\n" + rec("d2").encode()[:40] + b"\xc3")
    result = ingest_day(DAY, SourceSpec(str(src)))
    assert result["rows_read"] == result["rows_written"] + result["rows_quarantined"] == 52
    assert result["quarantine_rules"] == {
        "duplicate_id": 1,
        "invalid_field": 1,
        "invalid_utf8": 2,
        "missing_field": 1,
        "not_an_object": 2,
        "outside_interval": 1,
        "text_too_long": 1,
    }
    q = {
        (Path(r["source_file"]).name, r["record"]): r
        for r in pq.read_table(result["quarantine_file"]).to_pylist()
    }
    assert (
        q[("a.jsonl", 22)]["rule"] == "text_too_long"
        and len(q[("a.jsonl", 22)]["raw"]) > 10_000_000
    )
    assert (
        q[("b.jsonl", 21)]["rule"] == "duplicate_id" and "a.jsonl:1" in q[("b.jsonl", 21)]["reason"]
    )
    assert q[("d.jsonl", 2)]["rule"] == "invalid_utf8"
    assert (
        "'turns'" in q[("a.jsonl", 23)]["reason"] and "'started_at'" in q[("a.jsonl", 24)]["reason"]
    )
    table = lake.read_partition(settings().lake, DAY)
    texts = dict(
        zip(
            table.column("conversation_id").to_pylist(),
            table.column("text").to_pylist(),
            strict=True,
        )
    )
    assert texts["ctl"] == "refund now please"  # control characters removed, record kept
    assert {"c1", "d1"} <= set(texts)


def test_a_file_that_cannot_be_read_fails_the_day_and_writes_nothing(
    intentflow_home: Path, tmp_path: Path
) -> None:
    from ml.ingest.steps import SourceError

    src = tmp_path / "raw"
    write_drop(src, "a.jsonl", [rec(str(i)) for i in range(10)])
    (src / DAY.isoformat() / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")  # dangling
    with pytest.raises(SourceError, match=r"cannot read .*b\.jsonl"):
        ingest_day(DAY, SourceSpec(str(src)))
    cfg = settings()
    assert lake.list_partitions(cfg.lake) == []
    assert not (cfg.quarantine / f"dt={DAY.isoformat()}").exists()


def _edge_lines() -> list[bytes]:
    """Records the Arrow fast path must hand to the record-by-record path, among plain ones."""
    base = json.loads(rec("e0"))
    odd = [
        b"",
        b"   ",
        b"\x0b",
        rec("e1").encode() + b"\r",  # CRLF
        b'{"conversation_id": "e2", "conversation_id": "e3", "started_at": "2026-11-22T01:00:00Z",'
        b' "turns": [{"speaker": "customer", "text": "dup key"}]}',
        rec("e4").encode() + rec("e5").encode(),  # two objects on one line
        json.dumps({**base, "conversation_id": "e6", "_pii": {"name": ["Ann Lee"]}}).encode(),
        json.dumps({**base, "conversation_id": "e7", "turns": [{"speaker": "customer", "text": "héllo Ann"}]}).encode(),
        json.dumps({**base, "conversation_id": "e8", "started_at": "2026-11-22T10:00:00.250Z"}).encode(),
        json.dumps({**base, "conversation_id": "e9", "started_at": "2026-11-22T23:30:00-02:00"}).encode(),
        json.dumps({**base, "conversation_id": "e10", "started_at": "2026-11-22T10:00:00"}).encode(),
        b'{"conversation_id": "e11", "started_at": "2026-11-22T10:00:00Z", "turns": [{"speaker": "customer", "text": "\\ud800"}]}',
        b'{"conversation_id": "e12\xff", "started_at": "2026-11-22T10:00:00Z"}',
        json.dumps({**base, "conversation_id": " e13 "}).encode(),
        json.dumps({**base, "conversation_id": "e14", "channel": " Chat", "source": ""}).encode(),
        json.dumps({**base, "conversation_id": "e15", "channel": "CHAT", "language": None}).encode(),
        json.dumps({**base, "conversation_id": "e16", "intent": ""}).encode(),
        json.dumps({**base, "conversation_id": "e17", "turns": [{"speaker": "customer", "text": "x" * 10_001}]}).encode(),
        json.dumps({**base, "conversation_id": "e18", "turns": [{"speaker": "customer", "text": " \x00\t "}, {"speaker": "customer", "text": "ok\x07 "}]}).encode(),
        json.dumps({**base, "conversation_id": "e19", "turns": [None]}).encode(),
        json.dumps({**base, "conversation_id": "e20", "turns": []}).encode(),
        json.dumps({**base, "conversation_id": 21}).encode(),
        b"[1, 2]",
        b'{"conversation_id": "e22", "started_at": "2026-11-22T10:00:00Z", "turns": [{"speaker": "customer", "text": "a"}], "x": NaN}',
        json.dumps({**base, "conversation_id": "e0"}).encode(),  # duplicate of a fast row
        json.dumps({**base, "conversation_id": "e23", "started_at": "2026-11-23T00:00:00Z"}).encode(),
        json.dumps({**base, "conversation_id": "e24", "turns": [{"speaker": "bot", "text": "a"}]}).encode(),
        json.dumps({**base, "conversation_id": "e25", "turns": [{"speaker": "agent", "text": "only agent"}]}).encode(),
        json.dumps({**base, "conversation_id": "e29", "channel": " Chat"}).encode(),
        json.dumps({**base, "conversation_id": "e32", "turns": [{"speaker": "customer", "text": "a"}, {"speaker": "bot", "text": "b"}]}).encode(),
        json.dumps({**base, "conversation_id": "e31", "started_at": "2026-11-22T10:00:60Z"}).encode(),
        json.dumps({**base, "conversation_id": "e30", "turns": [{"speaker": "customer", "text": "cafe\u0301 \u0085x\u3000"}]}).encode(),
        b'{"conversation_id": "e27", "started_at": "2026-11-22T10:00:00Z", "_p\\u0069i": {"name": ["ann"]},'
        b' "turns": [{"speaker": "customer", "text": "ann called"}]}',  # source PII, escaped key
        b'{"conversation_id": "e28", "ch\\u0061nnel": "email", "started_at": "2026-11-22T10:00:00Z",'
        b' "turns": [{"speaker": "customer", "text": "escaped key"}]}',
        b'{"conversation_id": "e26", "started_at": "2026-11-22T10:00:00Z", "turns": [{"speaker": "customer", "text": "trunc',
        # PII outside the turns and in spellings the fast path must redact as the record path does.
        json.dumps({**base, "conversation_id": "ann@example.com"}).encode(),
        json.dumps({**base, "conversation_id": "+44 20 7946 0958"}).encode(),
        json.dumps({**base, "conversation_id": "4111 1111 1111 1111", "source": "bob@example.org"}).encode(),
        json.dumps({**base, "conversation_id": "e33", "source": "crm, call 415.555.0134"}).encode(),
        json.dumps({**base, "conversation_id": "e34", "intent": "carol@example.net"}).encode(),
        json.dumps({**base, "conversation_id": "e35", "turns": [{"speaker": "customer", "text": "card 4111.1111.1111.1111 iban de89 3704 0044 0532 0130 00"}]}).encode(),
        json.dumps({**base, "conversation_id": "e36", "turns": [{"speaker": "customer", "text": "a@b.co and c@d.io, +33 1 23 45 67 89"}, {"speaker": "agent", "text": "a@b.co"}]}).encode(),
        json.dumps({**base, "conversation_id": "e37", "turns": [{"speaker": "customer", "text": "mail dan\u200b@example.com or ｅｖｅ＠ｘ．ｃｏｍ"}]}).encode(),
        # Bytes that are not UTF-8 in a field the fast path does not read: invalid_utf8 still.
        rec("e38").encode()[:-1] + b', "note": "\xff\xfe"}',
        # Beyond ASCII, taken by the fast path (Python cleans those texts): NFKC, Unicode
        # spaces at the ends, full-width PII, an escaped emoji, Latin-1 accents unescaped.
        json.dumps({**base, "conversation_id": "e39", "turns": [{"speaker": "customer", "text": "\u00a0Zoë paid £12, call ０４１５ ５５５ ０１３４\u2003"}, {"speaker": "agent", "text": "Hi Zoë!"}]}).encode(),
        json.dumps({**base, "conversation_id": "e40", "turns": [{"speaker": "customer", "text": "ok \U0001f600 ﬁne \u200b"}]}).encode(),
        json.dumps({**base, "conversation_id": "e41", "turns": [{"speaker": "customer", "text": "I'm José García, jose@exämple.de"}]}, ensure_ascii=False).encode(),
        json.dumps({**base, "conversation_id": "e42", "turns": [{"speaker": "customer", "text": "\u3000\u200b"}]}).encode(),
    ]  # fmt: skip
    return [rec("e0").encode(), *odd]


def test_fast_path_stages_exactly_what_the_record_path_stages(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """The Arrow fast path is an optimisation only: same rows, same quarantine, same counts."""
    from ml.ingest import fast_jsonl as jsonl_arrow
    from ml.ingest import normalise as step
    from ml.ingest import staging
    from ml.synthetic.generate import generate

    generate(tmp_path / "feed", days=1, per_day=1500, start=DAY, seed=9)
    sys_path = Path(__file__).resolve().parents[2] / "bench"
    monkeypatch.syspath_prepend(str(sys_path))
    import ingest as bench  # bench/ingest.py: its templates hold every PII kind

    bench.write_feed(tmp_path / "bench", 3000, 2)
    day_dir = tmp_path / "feed" / DAY.isoformat()
    # Each odd line among plain ones, so halving isolates it and its neighbours stay fast.
    good = [rec(f"g{i}").encode() for i in range(40 * len(_edge_lines()))]
    edge = [
        line for i, odd in enumerate(_edge_lines()) for line in (*good[40 * i : 40 * i + 40], odd)
    ]
    (day_dir / "zz-edge.jsonl").write_bytes(b"\n".join(edge))  # no final newline
    for f in sorted((tmp_path / "bench" / DAY.isoformat()).iterdir()):
        (day_dir / f"b-{f.name}").write_bytes(f.read_bytes())
    # A file delivered twice, with a blank line first: every record a repeated id, read back.
    (day_dir / "c-again.jsonl").write_bytes(b"\n" + (day_dir / "b-part-000.jsonl").read_bytes())
    # Small blocks: records cross block boundaries, refused chunks are halved many times.
    monkeypatch.setattr(jsonl_arrow, "BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(jsonl_arrow, "MIN_CHUNK_LINES", 1)  # in this process: down to one line
    files = discover(SourceSpec(str(tmp_path / "feed")), DAY)
    staged = {}
    # Arrow path in two worker processes, in this process, then record by record.
    # "buckets": the day staged in many buckets (as a day of gigabytes is), merged one by one.
    variants = [
        ("pool", True, "2", staging.BUCKET_INPUT_BYTES),
        ("fast", True, "1", staging.BUCKET_INPUT_BYTES),
        ("buckets", True, "2", 100 << 10),
        ("slow", False, "1", staging.BUCKET_INPUT_BYTES),
    ]
    for key, fast, workers, bucket_bytes in variants:
        # Jobs of several blocks and files: small ones in a pool, the whole day in one.
        monkeypatch.setattr(step, "GROUP_BYTES", 150 << 10 if key == "pool" else 64 << 20)
        monkeypatch.setattr(step, "FAST_PATH", fast)
        monkeypatch.setattr(staging, "BUCKET_INPUT_BYTES", bucket_bytes)
        # Small batches in the many-buckets run: quarantine and repeats written piece by piece.
        monkeypatch.setattr(step, "QUARANTINE_BATCH", 7 if key == "buckets" else 10_000)
        monkeypatch.setattr(staging, "REPEATS_BATCH", 5 if key == "buckets" else 50_000)
        monkeypatch.setenv("INTENTFLOW_INGEST_WORKERS", workers)
        out = tmp_path / f"stage-{key}"
        with caplog.at_level("INFO", logger="ml.ingest.normalise"):
            staged[key] = normalise(files, DAY, out, SourceSpec(str(tmp_path / "feed")))
        assert ("worker processes" in caplog.text) == (key in ("pool", "buckets"))
        caplog.clear()
        staged[key]["tables"] = [
            pq.read_table(out / f) for f in ("rows.parquet", "quarantine.parquet")
        ]
    slow = staged["slow"]
    assert len(list((tmp_path / "stage-buckets" / "runs").iterdir())) > 10  # many buckets
    for fast in (staged["pool"], staged["fast"], staged["buckets"]):
        assert fast["tables"][0].sort_by("conversation_id").equals(slow["tables"][0])
        # The quarantine is published sorted by file and line (ml.lake.write_quarantine).
        order = [("source_file", "ascending"), ("record", "ascending")]
        got, want = (s["tables"][1].sort_by(order).to_pylist() for s in (fast, slow))
        assert got == want
        for key in (
            "rows_read",
            "rows_written",
            "rows_quarantined",
            "quarantine_rules",
            "new_intents",
        ):
            assert fast[key] == slow[key], key
    # One bucket: ordered by id (as lake.write_partition orders a table), hash of that order.
    for key in ("pool", "fast"):
        assert staged[key]["content_hash"] == slow["content_hash"]
        assert staged[key]["content_hash"] == lake.table_content_hash(slow["tables"][0])
    assert staged["buckets"]["content_hash"] == lake.table_content_hash(
        staged["buckets"]["tables"][0]
    )
    assert fast["rows_written"] > 4000 and len(fast["quarantine_rules"]) >= 6
    assert fast["quarantine_rules"]["duplicate_id"] >= 1500


def test_fast_path_keeps_the_good_lines_around_a_bad_one_and_text_beyond_ascii() -> None:
    """Only what needs the record-by-record path takes it (speed): a malformed line alone,
    not its neighbours; a text in any script stays on the fast path."""
    from ml.ingest import fast_jsonl as jsonl_arrow
    from ml.taxonomy import known_intents

    lines = [rec(f"g{i}").encode() for i in range(9)]
    lines[3] = lines[3][:40]  # malformed, among short runs of good lines
    lines[6] = rec("g6", text="Hi, I'm Zoë, £12 ｔｏｏ much\u00a0").encode()
    data = b"\n".join(lines) + b"\n"
    half = len(b"\n".join(lines[:5])) + 1
    pieces = [  # two files in one block: the second starts at its line 11, byte 500
        jsonl_arrow.Piece(0, "/nowhere/a.jsonl", 1, 0, half),
        jsonl_arrow.Piece(3, "/nowhere/b.jsonl", 11, 500, len(data) - half),
    ]
    block = jsonl_arrow.parse_block(
        SourceSpec("/nowhere"), DAY, known_intents(), "x", data, pieces, b"k" * 32, threads=False
    )
    assert [(file, line) for file, line, _, _ in block.slow] == [(0, 4)]
    assert block.slow[0][3].source_file == "/nowhere/a.jsonl"
    assert block.rows.num_rows == 8
    where = block.rows.select(["file", "line", "offset"]).to_pylist()
    assert where[-1] == {
        "file": 3,
        "line": 14,
        "offset": 500 + len(data) - half - len(lines[8]) - 1,
    }
    assert where[4] == {"file": 3, "line": 11, "offset": 500}  # after 4 rows of a.jsonl
    [zoe] = [row for row in block.rows.to_pylist() if row["conversation_id"] == "g6"]
    assert zoe["turns"][0]["text"] == "Hi, I'm [NAME], £12 too much"


def test_fast_path_finds_a_bad_line_deep_in_a_big_block() -> None:
    """pyarrow names the row it refuses from the start of its reader's block: one block per
    chunk on a worker's one thread, so the row is right past the first megabyte too."""
    from ml.ingest import fast_jsonl as jsonl_arrow
    from ml.taxonomy import known_intents

    lines = [rec(f"g{i}", text="I want a refund " * 20).encode() for i in range(8000)]
    lines[6000] = b'{"conversation_id": "bad", "turns": }'  # closes, yet no JSON
    data = b"\n".join(lines) + b"\n"
    assert len(data) > 2 * jsonl_arrow.READER_BLOCK_BYTES
    pieces = [jsonl_arrow.Piece(0, "/nowhere/a.jsonl", 1, 0, len(data))]
    block = jsonl_arrow.parse_block(
        SourceSpec("/nowhere"), DAY, known_intents(), "x", data, pieces, b"k" * 32, threads=False
    )
    assert [(line, outcome.rule) for _, line, _, outcome in block.slow] == [
        (6001, "malformed_json")
    ]
    assert block.rows.num_rows == 7999


def test_validation_batches_shrink_for_long_rows(tmp_path: Path, monkeypatch) -> None:
    """GX sees at most VALIDATION_BATCH_BYTES of rows at once, at most VALIDATION_BATCH_ROWS."""
    import random
    import string

    import pyarrow as pa

    from ml.ingest import steps as ingest

    rng = random.Random(0)
    long_rows = pa.table(
        {"text": ["".join(rng.choices(string.ascii_letters, k=10_000)) for _ in range(200)]}
    )
    short_rows = pa.table({"text": [f"row {i}" for i in range(200)]})
    monkeypatch.setattr(ingest, "VALIDATION_BATCH_BYTES", 100_000)
    monkeypatch.setattr(ingest, "VALIDATION_BATCH_ROWS", 50)
    sizes = {}
    for name, table in (("long", long_rows), ("short", short_rows)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
        sizes[name] = ingest.validation_batch_rows(
            pq.ParquetFile(tmp_path / f"{name}.parquet").metadata
        )
    # About 10 KB a long row: 100 KB holds 9 or 10 of them; short rows hit the row cap.
    assert sizes["long"] in (9, 10) and sizes["short"] == 50

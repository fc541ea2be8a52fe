"""The fast path for JSONL drops: parse, check and normalise whole blocks in Arrow.

pyarrow's JSON reader decodes a block of lines in C++; the rules of :mod:`ml.ingest.parse` are then
checked column by column. A row goes this way only when it plainly passes every rule in the
common shape (ASCII ids and codes; turn texts in any script, those beyond ASCII cleaned by
Python's :func:`ml.ingest.parse.clean_text`; a `started_at` of the data interval's day in UTC
with whole seconds); everything else (a line pyarrow refuses, found by the row its error names
or by halving, a `_pii` field, a row any check is unsure of) takes the record-by-record path of
:func:`ml.ingest.parse.parse_items`, so every quarantine row, rule and reason is the same as there.
Lines pyarrow must not read at all (not opening an object, nested deeper than
ml.ingest.sources.MAX_DEPTH, not UTF-8) go that way before it sees them. tests/ingest/test_ingest.py and
tests/ingest/test_hostile.py check that both paths stage identical rows and quarantine.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ml.config import allowed_languages
from ml.ingest import identifiers
from ml.ingest.parse import (
    ALLOWED_CHANNELS,
    MAX_TEXT_CHARS,
    MAX_TURN_CHARS,
    MAX_TURNS,
    Rejected,
    clean_text,
    parse_items,
)
from ml.ingest.redact import Found, pii_found, redact_array
from ml.ingest.sources import BOM, MAX_DEPTH, SourceSpec, jsonl_item, too_deep
from ml.transcript import SPEAKERS, TRANSCRIPT_SCHEMA

# Bytes read per block: bounds memory whatever the file size.
BLOCK_BYTES = 16 << 20
# Below this many lines a refused chunk is parsed record by record instead of split again.
MIN_CHUNK_LINES = 1
_JSON_SPACE = np.frombuffer(b" \t\r\n", np.uint8)
# pyarrow's JSON reader's default block (what its threads share out).
READER_BLOCK_BYTES = 1 << 20
# The row pyarrow's JSON reader names when it refuses a chunk.
_REFUSED_ROW = re.compile(r" in row (\d+)$")

_INPUT = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("started_at", pa.string()),
        ("channel", pa.string()),
        ("language", pa.string()),
        ("intent", pa.string()),
        ("source", pa.string()),
        ("turns", pa.list_(pa.struct([("speaker", pa.string()), ("text", pa.string())]))),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=_INPUT, unexpected_field_behavior="ignore")
# Printable ASCII, not blank at either end: Python's strip() leaves it as it is.
_PLAIN = r"^[!-~](?:[ -~]*[!-~])?$"
# The control characters ml.ingest.parse.clean_text drops, as far as ASCII goes.
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Lines that may carry source-given PII (`_pii`, which the reader's schema leaves out, also
# spelt with \u escapes of printable ASCII, which JSON writers never need): record by record.
# Surrogate escapes too: Python decodes a lone one (invalid_utf8), Arrow's reader may not.
_SLOW_LINE = r'"_pii"|\\u00[2-7][0-9A-Fa-f]|\\u[Dd][89A-Fa-f]'


def fast_path_applies(spec: SourceSpec) -> bool:
    """Plain JSONL drops (no column mapping, dated by their folder)."""
    return spec.format == "jsonl" and not spec.columns and spec.layout == "daily"


@dataclass(frozen=True)
class Piece:
    """Whole lines of one file in a block: the file (its index in the day's list, its URL),
    the number of its first line there, its byte offset in the file and its size."""

    file: int
    url: str
    first_line: int
    offset: int
    size: int


@dataclass
class Block:
    """One block's outcome: canonical rows (with file, line numbers and byte offsets) and the
    rest, (file, line, raw record, row or Rejected) in block order."""

    rows: pa.Table  # TRANSCRIPT_SCHEMA + `file` + `line` + `offset` (in the file), block order
    slow: list[tuple[int, int, str, dict[str, Any] | Rejected]] = field(default_factory=list)


def split_blocks(fh: Any) -> Iterator[tuple[bytes, int, int]]:
    """An open JSONL file as blocks of whole lines: (bytes, first line number, byte offset)."""
    first_line, offset, rest = 1, 0, b""
    while True:
        chunk = fh.read(BLOCK_BYTES)
        data = rest + chunk
        if not chunk:
            if data:
                yield (data if data.endswith(b"\n") else data + b"\n"), first_line, offset
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        data, rest = data[:cut], data[cut:]
        yield data, first_line, offset
        first_line += data.count(b"\n")
        offset += len(data)


def parse_block(
    spec: SourceSpec,
    day: date,
    labels: frozenset[str],
    default_source: str,
    data: bytes,
    pieces: list[Piece],
    key: bytes,
    threads: bool = True,
) -> Block:
    """One block of whole lines (each piece ending with a newline), normalised.

    `data` is the pieces' bytes one after the other: the small files of a day go to Arrow
    together (the fixed cost of a block, some 4 ms, paid once for them all).
    `key`: the PII key (ml.subjects.pii_key), read once for the day by the caller;
    `threads`: whether pyarrow's reader may use its thread pool (not in a worker process).
    """
    parser = _Parser(spec, day, labels, default_source, key, threads)
    return parser.block(data, pieces)


class _Parser:
    def __init__(
        self,
        spec: SourceSpec,
        day: date,
        labels: frozenset[str],
        default_source: str,
        key: bytes,
        threads: bool = True,
    ) -> None:
        self.spec, self.day = spec, day
        self.labels, self.default_source, self.key = labels, default_source, key
        self.started_re = rf"^{re.escape(day.isoformat())}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:Z|\+00:00)$"
        self.label_set = pa.array(sorted(labels), pa.string())
        self.speakers = pa.array(SPEAKERS, pa.string())
        self.channels = pa.array(sorted(ALLOWED_CHANNELS), pa.string())
        self.languages = pa.array(sorted(set(allowed_languages())), pa.string())
        # In a worker process the pool is the parallelism: the reader's own threads only add
        # a hand-off per chunk (2.3 ms against 1.0 ms for 500 lines).
        self.threads = threads

    def block(self, data: bytes, pieces: list[Piece]) -> Block:
        buf = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(buf == 10) + 1
        starts = np.concatenate(([0], ends)).astype(np.int64)  # one more than lines
        n_lines = len(ends)
        # Per line, its piece, and its number in its file.
        bounds = np.cumsum([0] + [p.size for p in pieces]).astype(np.int64)
        piece_of = np.searchsorted(bounds, starts[:-1], "right") - 1
        first_index = np.searchsorted(starts, bounds[:-1])  # each piece's first line
        first_number = np.array([p.first_line for p in pieces], np.int64)
        number = first_number[piece_of] + np.arange(n_lines) - first_index[piece_of]
        opens = buf[starts[:-1]] == ord("{")  # JSON records open with '{' (cheap checks)
        # Python skips lines that strip() to nothing (after the byte-order mark of a file).
        nonblank = np.ones(n_lines, bool)
        for i in np.flatnonzero(~opens).tolist():
            line = data[starts[i] : starts[i + 1]]
            nonblank[i] = bool((line.removeprefix(BOM) if number[i] == 1 else line).strip())
        lines = np.flatnonzero(nonblank)
        offsets = pa.py_buffer(starts.astype(np.int64))
        line_arr = pa.Array.from_buffers(
            pa.large_binary(), n_lines, [None, offsets, pa.py_buffer(data)]
        )
        slow_line = pc.match_substring_regex(line_arr, _SLOW_LINE).to_numpy(zero_copy_only=False)
        # Only lines that open an object go to Arrow: pyarrow 26's reader crashes the process
        # (SIGSEGV) on input that opens with `null`; any other line is no record anyway.
        slow_line = (
            slow_line | ~opens | ~_closes(buf, data, starts) | _too_deep(line_arr, data, starts)
        )
        # Python refuses a line that is not UTF-8 (invalid_utf8) wherever the bad bytes are;
        # Arrow's reader does not check strings at all, nor reads fields outside its schema.
        slow_line |= _not_utf8(data, starts)
        tables: list[pa.Table] = []
        slow = lines[slow_line[lines]].tolist()
        fast = lines[~slow_line[lines]]
        # Arrow reads a chunk as one slice of the block: it must never span a line kept from
        # it (a line nested 100,000 deep overflows its parser's stack).
        for run in np.split(fast, np.unique(np.searchsorted(fast, slow))):
            self._parse(data, starts, run, tables, slow)
        parsed = (
            pa.concat_tables(tables)
            if tables
            else _INPUT.empty_table()
            .append_column("line", pa.array([], pa.int64()))
            .append_column("offset", pa.array([], pa.int64()))
        )
        rows, unsure = self._normalise(parsed)
        slow.extend(unsure)
        slow.sort()
        # From the block's line index and byte to the file's line number and byte offset.
        at = rows.column("line").to_numpy()
        where = piece_of[at]
        file_offset = np.array([p.offset for p in pieces], np.int64) - bounds[:-1]
        files = np.array([p.file for p in pieces], np.int32)
        rows = rows.set_column(rows.schema.get_field_index("line"), "line", pa.array(number[at]))
        rows = rows.set_column(
            rows.schema.get_field_index("offset"),
            "offset",
            pa.array(rows.column("offset").to_numpy() + file_offset[where]),
        )
        rows = rows.append_column("file", pa.array(files[where], pa.int32()))
        return Block(
            rows=rows, slow=self._record_by_record(data, starts, slow, pieces, piece_of, number)
        )

    def _parse(
        self, data: bytes, starts: np.ndarray, lines: np.ndarray, out: list, slow: list
    ) -> None:
        """Parse lines (indexes into the block) with pyarrow; split a chunk it refuses.

        The reader names the row it refused ("... in row N"): that line goes record by record
        and the lines around it are parsed again; without a row number the chunk is halved.
        Every row kept comes from a chunk the reader took whole with one row per line, so a
        wrong hint costs a parse, never a row.
        """
        if len(lines) == 0:
            return
        first, last = int(lines[0]), int(lines[-1])
        # Lines in between that are not in `lines` are blank: the reader skips them too.
        # (`lines` never straddles a line sent record by record: see `block`.)
        chunk = data[starts[first] : starts[last + 1]]
        refused = None
        # The row an error names counts from the start of the reader's block: on one thread,
        # the chunk is one block; with threads, the row is used only for a chunk of one block.
        block_size = READER_BLOCK_BYTES if self.threads else max(len(chunk) + 1, READER_BLOCK_BYTES)
        options = pj.ReadOptions(use_threads=self.threads, block_size=block_size)
        try:
            table = pj.read_json(io.BytesIO(chunk), options, parse_options=_PARSE)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            table = None
            refused = _refused_row(exc) if len(chunk) <= block_size else None
        if table is not None and table.num_rows == len(lines):  # one row per line
            out.append(
                table.append_column("line", pa.array(lines, pa.int64())).append_column(
                    "offset", pa.array(starts[lines], pa.int64())
                )
            )
            return
        if len(lines) < max(MIN_CHUNK_LINES, 2):
            slow.extend(lines.tolist())
            return
        half = (len(lines) + 1) // 2
        if refused is not None and refused < len(lines):
            slow.append(int(lines[refused]))
            parts = [lines[:refused], lines[refused + 1 :]]
        else:
            parts = [lines[:half], lines[half:]]
        for part in parts:
            # At most half the chunk each: a block with many bad lines is parsed about
            # log2(lines) times over, never once per bad line.
            for piece in (part[:half], part[half:]) if len(part) > half else (part,):
                self._parse(data, starts, piece, out, slow)

    def _record_by_record(
        self,
        data: bytes,
        starts: np.ndarray,
        slow: list[int],
        pieces: list[Piece],
        piece_of: np.ndarray,
        number: np.ndarray,
    ) -> list[tuple[int, int, str, dict[str, Any] | Rejected]]:
        """The `slow` lines (block indexes, in order) through ml.ingest.parse, file by file."""
        out = []
        for p, lines in itertools.groupby(slow, key=lambda i: int(piece_of[i])):
            piece = pieces[p]
            stem = Path(piece.url).stem
            items = (
                jsonl_item(self.spec, int(number[i]), data[starts[i] : starts[i + 1]], stem)
                for i in lines
            )
            out += [
                (piece.file, item.number, item.raw, outcome)
                for item, outcome in parse_items(
                    items, piece.url, self.day, self.labels, self.default_source, key=self.key
                )
            ]
        return out

    def _normalise(self, t: pa.Table) -> tuple[pa.Table, list[int]]:
        """Canonical rows for the rows that plainly pass every rule; the others' line indexes."""
        n = t.num_rows
        ok = _true(pc.match_substring_regex(t["conversation_id"], _PLAIN))
        ok &= _true(pc.match_substring_regex(t["started_at"], self.started_re))
        for name in ("channel", "language", "source"):
            col = t[name]
            ok &= _true(pc.or_kleene(pc.is_null(col), pc.match_substring_regex(col, _PLAIN)))
        ok &= _true(pc.or_kleene(pc.is_null(t["intent"]), pc.is_in(t["intent"], self.label_set)))
        channel = pc.ascii_lower(pc.fill_null(t["channel"], "unknown"))
        ok &= _true(pc.is_in(channel, self.channels))
        ok &= _true(pc.is_in(pc.fill_null(t["language"], "und"), self.languages))
        turns = t["turns"].combine_chunks() if n else pa.array([], _INPUT.field("turns").type)
        count = pc.list_value_length(turns)
        ok &= _true(pc.and_kleene(pc.greater(count, 0), pc.less_equal(count, MAX_TURNS)))
        flat = pc.list_flatten(turns)
        parents = pc.list_parent_indices(turns).to_numpy(zero_copy_only=False)
        speaker, text = pc.struct_field(flat, "speaker"), pc.struct_field(flat, "text")
        turn_ok = _true(pc.is_in(speaker, self.speakers))
        turn_ok &= _true(pc.less_equal(pc.utf8_length(text), MAX_TURN_CHARS))
        # Texts beyond ASCII (accents, currency signs) are cleaned by Python's own
        # clean_text (NFKC, Unicode controls and invisibles, Unicode strip), one by one.
        wide = np.flatnonzero(turn_ok & ~_true(pc.string_is_ascii(text)))
        wide_texts = [clean_text(t) for t in text.take(wide).to_pylist()] if len(wide) else []
        # Control characters are rare: look for them before paying for a rewrite of every text.
        if pc.any(pc.match_substring_regex(text, _CONTROL)).as_py():
            text = pc.replace_substring_regex(text, _CONTROL, "")
        cleaned = pc.ascii_trim_whitespace(text)
        if len(wide):
            mask = np.zeros(len(cleaned), bool)
            mask[wide] = True
            cleaned = pc.replace_with_mask(
                cleaned, pa.array(mask), pa.array(wide_texts, pa.string())
            )
        said = _true(pc.equal(speaker, "customer")) & _true(pc.greater(pc.utf8_length(cleaned), 0))
        ok &= np.bincount(parents, weights=~turn_ok, minlength=n) == 0
        ok &= np.bincount(parents, weights=said, minlength=n) > 0
        unsure = t["line"].to_numpy()[~ok].tolist()
        keep = np.flatnonzero(ok)
        if len(keep) < n:
            t = t.take(keep)
        turn_keep = ok[parents]
        parents = np.searchsorted(keep, parents[turn_keep])  # renumbered among kept rows
        speaker = speaker.filter(turn_keep)
        said = said[turn_keep]
        found: dict[int, Found] = {}
        redacted = redact_array(cleaned.filter(turn_keep), found=found)
        rows, left = self._rows(t, parents, speaker, redacted, said, found)
        # Every text, changed or not: a redactor bug may leave one as it was.
        left[parents[list(pii_found(redacted))]] = True
        # The model text's length is a rule on it as stored, after redaction; so is PII the
        # detectors still find (ml.ingest.parse quarantines both, naming the rule).
        left |= _true(pc.greater(pc.utf8_length(rows["text"]), MAX_TEXT_CHARS))
        if left.any():
            unsure += rows["line"].to_numpy()[left].tolist()
            rows = rows.filter(pa.array(~left))
        return rows, unsure

    def _rows(
        self,
        t: pa.Table,
        parents: np.ndarray,
        speaker: pa.Array,
        text: pa.Array,
        said: np.ndarray,
        found: dict[int, Found],
    ) -> tuple[pa.Table, np.ndarray]:
        """The canonical rows (as ml.ingest.parse makes them: source redacted, a personal id
        pseudonymised, subject keys), and the rows whose source the detectors still find PII
        in (the caller checks the turns).

        `found`: per turn, the e-mails and phones its redaction removed.
        """
        n = t.num_rows
        offsets = pa.array(
            np.concatenate(([0], np.cumsum(np.bincount(parents, minlength=n)))), pa.int32()
        )
        turns = pa.ListArray.from_arrays(
            offsets, pa.StructArray.from_arrays([speaker, text], names=["speaker", "text"])
        ).cast(TRANSCRIPT_SCHEMA.field("turns").type)
        said_offsets = np.concatenate(([0], np.cumsum(np.bincount(parents[said], minlength=n))))
        model_text = pc.binary_join(
            pa.ListArray.from_arrays(pa.array(said_offsets, pa.int32()), text.filter(said)), " "
        )
        cid = t["conversation_id"].combine_chunks() if n else pa.array([], pa.string())
        cid, in_ids = identifiers.conversation_ids(cid, self.key)
        source, source_found, left = self._source(t)
        subject_keys = self._subject_keys(n, parents, found, source_found, in_ids)
        started_raw = pc.utf8_slice_codeunits(t["started_at"], 0, 19)
        started_at = pc.assume_timezone(
            pc.strptime(started_raw, format="%Y-%m-%dT%H:%M:%S", unit="us"), "UTC"
        )
        channel = pc.ascii_lower(pc.fill_null(t["channel"], "unknown"))
        language = pc.fill_null(t["language"], "und")
        intent = t["intent"]
        hash_input = pc.binary_join_element_wise(
            "channel\x1f", channel,
            "\x1econversation_id\x1f", cid,
            "\x1eintent\x1f", pc.fill_null(intent, "\x00"),
            "\x1elanguage\x1f", language,
            "\x1esource\x1f", source,
            "\x1estarted_at\x1f", started_raw, "+00:00",
            "\x1esubject_keys\x1f", pc.binary_join(subject_keys, "\x1d"),
            "\x1etext\x1f", model_text,
            "\x1eturns\x1f",
            pc.binary_join(
                pa.ListArray.from_arrays(offsets, pc.binary_join_element_wise(speaker, text, "\x1c")),
                "\x1d",
            ),
            "",
        )  # fmt: skip
        hashes = [
            hashlib.sha256(b).hexdigest() for b in pc.cast(hash_input, pa.binary()).to_pylist()
        ]
        columns = {
            "conversation_id": cid,
            "source": source,
            "started_at": started_at,
            "channel": channel,
            "language": language,
            "turns": turns,
            "intent": intent,
            "text": model_text,
            "content_hash": pa.array(hashes, pa.string()),
            "subject_keys": subject_keys,
            "line": t["line"],
            "offset": t["offset"],
        }
        schema = TRANSCRIPT_SCHEMA.append(pa.field("line", pa.int64())).append(
            pa.field("offset", pa.int64())
        )
        return pa.table([columns[f.name] for f in schema], schema=schema), left

    def _source(self, t: pa.Table) -> tuple[pa.Array, dict[int, Found], np.ndarray]:
        """The rows' sources redacted, each distinct value once (a feed has a handful); per
        row what was removed, and which rows' source the detectors still find PII in."""
        n = t.num_rows
        if n == 0:
            return pa.array([], pa.string()), {}, np.zeros(0, bool)
        values = pc.fill_null(t["source"], self.default_source.strip()).combine_chunks()
        encoded = values.dictionary_encode()
        found: dict[int, Found] = {}
        redacted = redact_array(encoded.dictionary, None, found)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        by_row = {row: found[d] for d in found for row in np.flatnonzero(indices == d).tolist()}
        left = np.isin(indices, list(pii_found(redacted)))
        return redacted.take(encoded.indices), by_row, left

    def _subject_keys(
        self,
        n: int,
        parents: np.ndarray,
        turns: dict[int, Found],
        sources: dict[int, Found],
        ids: dict[int, Found],
    ) -> pa.Array:
        """Per row, the subject keys of what was removed from it (most rows: none)."""
        removed: dict[int, Found] = {}
        for turn, got in turns.items():
            removed.setdefault(int(parents[turn]), []).extend(got)
        for found in (sources, ids):
            for row, got in found.items():
                removed.setdefault(row, []).extend(got)
        counts = np.zeros(n, np.int32)
        values: list[str] = []
        for row in sorted(removed):
            keys = identifiers.subject_keys(removed[row], None, self.key)
            counts[row] = len(keys)
            values += keys
        offsets = pa.array(np.concatenate(([0], np.cumsum(counts))).astype(np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(values, pa.string())).cast(
            TRANSCRIPT_SCHEMA.field("subject_keys").type
        )


def _too_deep(lines: pa.Array, data: bytes, starts: np.ndarray) -> np.ndarray:
    """Lines nested deeper than ml.ingest.sources.MAX_DEPTH, which Python may not decode at all.

    Only a line with more opening brackets than that can be: mostly long conversations,
    which ml.ingest.sources.too_deep clears.
    """
    brackets = pc.add(pc.count_substring(lines, "["), pc.count_substring(lines, "{"))
    brackets = brackets.to_numpy(zero_copy_only=False)
    deep = np.zeros(len(lines), bool)
    for i in np.flatnonzero(brackets > MAX_DEPTH).tolist():
        deep[i] = too_deep(data[starts[i] : starts[i + 1]].decode("utf-8", "replace"))
    return deep


def _closes(buf: np.ndarray, data: bytes, starts: np.ndarray) -> np.ndarray:
    """Lines whose last character but JSON whitespace is `}`: only those can be an object.

    Any other line (a record cut short, say) is malformed for Python too: sent record by record
    before Arrow sees it, it costs no refused chunk (a reparse of the lines around it).
    """
    last = buf[np.maximum(starts[1:] - 2, starts[:-1])]  # the byte before the newline
    closes = last == ord("}")
    for i in np.flatnonzero(np.isin(last, _JSON_SPACE)).tolist():  # CRLF, trailing blanks
        closes[i] = data[starts[i] : starts[i + 1]].rstrip(b" \t\r\n").endswith(b"}")
    return closes


def _refused_row(exc: Exception) -> int | None:
    """The row (of the chunk) a reader's error names, if it names one."""
    found = _REFUSED_ROW.search(str(exc))
    return int(found.group(1)) if found else None


def _not_utf8(data: bytes, starts: np.ndarray) -> np.ndarray:
    """Lines that are not valid UTF-8 (a block almost never has one: one decode says so)."""
    bad = np.zeros(len(starts) - 1, bool)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for i in range(len(bad)):
            try:
                data[starts[i] : starts[i + 1]].decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
    return bad


def _true(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean mask as numpy, null counting as False."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool)

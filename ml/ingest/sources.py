"""Where transcripts come from, chosen by configuration: files in a folder or any fsspec URL
(JSONL, CSV with a column mapping, ABCD-style JSON, CLINC150 JSON) or a SQL table.

A source is a URL (daily JSONL drops, the default) or a JSON object, e.g.::

    {"format": "csv", "url": "/data/banking77", "layout": "static", "pattern": "train.csv",
     "columns": {"text": "text", "intent": "category"}, "labels": "/data/banking77/categories.json",
     "name": "banking77", "dates": ["2026-01-01", "2026-03-31"]}
    {"format": "sql", "conn_id": "crm_readonly", "table": "chats", "columns": {...}}

Ingest reads only sources an administrator named (ml.ingest.named_sources). A source reads
nothing outside its root: a local file that is, or sits behind, a link out of the source's
folder is refused (:func:`checked_path`), when discovered and again when opened. A SQL source
selects the mapped columns of one table, every identifier quoted, through an Airflow
connection whose role may only read (:func:`_sql`); there is no free query.

Every adapter yields one :class:`Item` per record (its number, the raw record as text, and the
record in the canonical input shape or the RecordError it broke), so parsing, redaction and
quarantine are the same for all formats. Sources without timestamps (the public single-message
sets) are spread over `dates` by a hash of the conversation id, so replaying them as daily
drops is deterministic; a record belongs to exactly one day.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fsspec

from ml import storage

FORMATS = ("jsonl", "csv", "abcd", "clinc150", "sql")
DEFAULT_PATTERNS = {"jsonl": "*.jsonl", "csv": "*.csv", "abcd": "*.json", "clinc150": "*.json"}
# A record nested deeper than this is quarantined (a transcript is 3 deep): Python's decoder
# cannot decode a deep enough one at all, and the Arrow fast path must agree with it.
MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"


class SourceError(RuntimeError):
    """A file (or query) that cannot be read at all; the day is not written."""


class RecordError(ValueError):
    """A record-level problem: which rule, and what a person should read."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


@dataclass(frozen=True)
class Item:
    number: int  # 1-based line (JSONL, CSV data row) or record index
    raw: str  # the record as read, for quarantine
    record: dict[str, Any] | RecordError


@dataclass(frozen=True)
class SourceSpec:
    url: str
    format: str = "jsonl"
    layout: str = "daily"  # daily: URL/YYYY-MM-DD/PATTERN; static: URL/PATTERN, dated by hash
    pattern: str | None = None
    # canonical field -> source field: conversation_id, text, agent_text, intent, started_at,
    # channel, language, source, turns
    columns: dict[str, str] = field(default_factory=dict)
    labels: str | None = None  # a label file for this feed (JSON list, ABCD ontology, lines)
    name: str | None = None
    dates: tuple[str, str] | None = None  # static layout: spread records over these days
    # sql: the Airflow connection to read through (credentials, read-only role), and the
    # table (with its `started_at` column, or the one `columns` maps) and its schema.
    conn_id: str | None = None
    table: str | None = None
    schema: str | None = None
    splits: tuple[str, ...] = ()  # clinc150: which parts (default all)

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.format == "sql":
            return self.table or "sql"
        return Path(self.url.rstrip("/")).name or self.url


def parse_source(source: str | dict[str, Any]) -> SourceSpec:
    """A URL (daily JSONL drops), or a JSON object (as text or parsed) naming the format and
    its options; ValueError when it is not a source Intentflow can read."""
    if isinstance(source, str):
        text = source.strip()
        if not text.startswith("{"):
            return SourceSpec(url=text)
        try:
            source = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"source configuration is not valid JSON: {exc}") from None
        if not isinstance(source, dict):
            raise ValueError("source configuration is not a JSON object")
    raw = dict(source)
    unknown = set(raw) - set(SourceSpec.__dataclass_fields__)
    if unknown:
        # `query` included: a source names a table, never SQL to run.
        raise ValueError(f"source configuration has unknown keys: {sorted(unknown)}")
    if raw.get("format", "jsonl") not in FORMATS:
        raise ValueError(f"source format {raw.get('format')!r} is not one of {FORMATS}")
    for key in ("dates", "splits"):
        if key in raw and raw[key] is not None:
            raw[key] = tuple(raw[key])
    spec = SourceSpec(**{"url": "", **raw})
    check_spec(spec)
    return spec


_TEXT_KEYS = ("url", "pattern", "labels", "name", "conn_id", "table", "schema")
_SQL_ONLY = ("conn_id", "table", "schema")


def check_spec(spec: SourceSpec) -> None:
    """The shape of a source spec: what each format needs, and nothing that reads elsewhere
    (a pattern cannot climb out of the source's folder, a SQL source has no URL)."""
    for key in _TEXT_KEYS:
        value = getattr(spec, key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"source key {key!r} must be a string")
    if spec.layout not in ("daily", "static"):
        raise ValueError(f"source layout {spec.layout!r} is not daily or static")
    if not isinstance(spec.columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in spec.columns.items()
    ):
        raise ValueError("source columns must map canonical fields to column names")
    if spec.format == "sql":
        if spec.url:
            raise ValueError(
                "a sql source reads through an Airflow connection (`conn_id`), not a `url`"
            )
        if not (spec.conn_id and spec.table):
            raise ValueError("a sql source needs `conn_id` (an Airflow connection) and `table`")
        return
    if not spec.url:
        raise ValueError(f"a {spec.format} source needs a `url`")
    if extra := [k for k in _SQL_ONLY if getattr(spec, k)]:
        raise ValueError(f"source keys {extra} are for sql sources only")
    if spec.pattern is not None and (
        not spec.pattern
        or spec.pattern.startswith(("/", "\\"))
        or "://" in spec.pattern
        or ".." in re.split(r"[/\\]", spec.pattern)
    ):
        raise ValueError(f"source pattern {spec.pattern!r} must be a glob inside the source")


# --- discovery -------------------------------------------------------------------------------


def discover(spec: SourceSpec, day: date) -> list[str]:
    """The files of `day` (daily layout) or of the whole set (static); SQL: one pseudo-file."""
    if spec.format == "sql":
        return [f"sql:{spec.display_name}"]
    fs, root = fsspec.core.url_to_fs(spec.url)
    pattern = spec.pattern or DEFAULT_PATTERNS[spec.format]
    root = root.rstrip("/")
    if spec.layout == "daily":
        glob = f"{root}/{day.isoformat()}/{pattern}"
    elif fs.isfile(root):
        glob = root
    else:
        glob = f"{root}/{pattern}"
    files = sorted(fs.glob(glob))
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    if protocol not in ("file", "local"):
        return [f"{protocol}://{f}" for f in files]
    for file in files:  # refused now, with a clear error, rather than when normalise opens it
        checked_path(spec.url, file)
    return files


def checked_path(root: str, url: str) -> str:
    """What to open for `url`, a file of the source whose folder (or file) is `root`: for a
    local file its real path, refused with a SourceError naming the file when the file, or a
    folder on its way, links out of `root` (`x.jsonl -> /etc/passwd` in a drop folder);
    other stores have no links, and `url` is returned as it is."""
    path, top = storage.location(url), storage.location(root)
    if storage.is_remote(path) or storage.is_remote(top):
        return url
    real, real_top = os.path.realpath(path), os.path.realpath(top)
    if os.path.commonpath([real, real_top]) != real_top:
        # The link's target is not named: it is none of the reader's business.
        raise SourceError(f"cannot read {url}: it links out of the source's folder {root}")
    return real


# --- dates for sources without timestamps ----------------------------------------------------


def assigned_start(spec: SourceSpec, conversation_id: str) -> datetime:
    """A deterministic start time in `spec.dates` for a record that has none."""
    if not spec.dates:
        raise RecordError(
            "missing_field", "field 'started_at' is missing and the source sets no 'dates'"
        )
    first, last = (date.fromisoformat(d) for d in spec.dates)
    span = (last - first).days + 1
    h = int.from_bytes(hashlib.sha256(conversation_id.encode()).digest()[:8], "big")
    day = first + timedelta(days=h % span)
    seconds = (h // span) % 86_400
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


# --- adapters --------------------------------------------------------------------------------


def open_file(url: str, root: str | None = None) -> Any:
    """A source file opened for binary reading; SourceError when it cannot be. With the
    source's `root`, a local file linked out of it is refused (:func:`checked_path`)."""
    target = checked_path(root, url) if root is not None else url
    try:
        return fsspec.open(target, "rb").open()
    except OSError as exc:
        raise SourceError(f"cannot read {url}: {exc}") from exc


def _mapped(
    spec: SourceSpec, raw: dict[str, Any], number: int, file_stem: str
) -> dict[str, Any] | RecordError:
    """A flat record (CSV row, single-message JSON) in the canonical input shape."""
    if not spec.columns:
        return raw
    cols = spec.columns
    out: dict[str, Any] = {}
    for key in ("conversation_id", "started_at", "channel", "language", "intent", "source"):
        if key in cols:
            out[key] = raw.get(cols[key])
    if "turns" in cols:
        turns = raw.get(cols["turns"])
        try:
            out["turns"] = loads(turns) if isinstance(turns, str) else turns
        except RecordError as err:
            return RecordError(err.rule, f"column '{cols['turns']}': {err}")
    elif "text" in cols:
        text = raw.get(cols["text"])
        out["turns"] = [
            {"speaker": "customer", "text": text.strip() if isinstance(text, str) else text}
        ]
        reply = raw.get(cols["agent_text"]) if "agent_text" in cols else None
        if isinstance(reply, str) and reply.strip():
            out["turns"].append({"speaker": "agent", "text": reply.strip()})
    if "conversation_id" not in cols:
        out["conversation_id"] = f"{spec.display_name}-{file_stem}-{number}"
    for key, value in list(out.items()):
        if isinstance(value, str) and key != "turns":
            out[key] = value.strip() or None
    return out


def too_deep(text: str) -> bool:
    """Whether JSON text nests arrays and objects more than MAX_DEPTH deep (brackets inside
    strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case, at C speed
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def loads(text: str) -> Any:
    """One record's JSON; a RecordError naming the rule when it cannot be a record."""
    if too_deep(text):
        raise RecordError("too_deep", f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            "malformed_json", f"malformed JSON: {exc.msg} at column {exc.colno}"
        ) from None
    except ValueError:  # an integer too long for int() (sys.int_info): valid JSON still
        return json.loads(text, parse_int=Decimal)


def jsonl_item(spec: SourceSpec, number: int, line: bytes, stem: str) -> Item:
    """One JSONL line as an Item (the caller skips blank lines)."""
    if number == 1:  # a byte-order mark opens the file, not the record
        line = line.removeprefix(BOM)
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        # Undecodable bytes stay visible as \xNN escapes: nothing is lost.
        raw = line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        return Item(
            number, raw, RecordError("invalid_utf8", f"not valid UTF-8 at byte {exc.start}")
        )
    try:
        record = loads(text)
    except RecordError as err:
        return Item(number, text, err)
    if isinstance(record, dict):
        record = _mapped(spec, record, number, stem)
    return Item(number, text, record)


def _jsonl(spec: SourceSpec, url: str) -> Iterator[Item]:
    stem = Path(url).stem
    with open_file(url, spec.url) as fh:
        try:
            for number, line in enumerate(fh, start=1):  # streamed: memory stays flat
                if (line.removeprefix(BOM) if number == 1 else line).strip():
                    yield jsonl_item(spec, number, line, stem)
        except OSError as exc:
            raise SourceError(f"cannot read {url}: {exc}") from exc


def _csv(spec: SourceSpec, url: str) -> Iterator[Item]:
    stem = Path(url).stem
    with open_file(url, spec.url) as fh:
        # surrogateescape keeps undecodable bytes visible so each bad row is quarantined alone.
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            reader = csv.DictReader(text)
            for number, row in enumerate(reader, start=1):
                raw = json.dumps(row, ensure_ascii=False, default=str, allow_nan=False)
                try:
                    raw.encode("utf-8")
                except UnicodeEncodeError:
                    safe = raw.encode("utf-8", "surrogateescape").decode(
                        "utf-8", "backslashreplace"
                    )
                    yield Item(number, safe, RecordError("invalid_utf8", "row is not valid UTF-8"))
                    continue
                if None in row:
                    yield Item(
                        number,
                        raw,
                        RecordError("malformed_csv", "row has more fields than the header"),
                    )
                    continue
                yield Item(number, raw, _mapped(spec, row, number, stem))
        except csv.Error as exc:
            raise SourceError(
                f"cannot read {url}: CSV error at row {reader.line_num}: {exc}"
            ) from exc


def _load_json(spec: SourceSpec, url: str) -> Any:
    with open_file(url, spec.url) as fh:
        try:
            return json.loads(fh.read().decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            raise SourceError(f"cannot read {url}: not a JSON document ({exc})") from exc


_FAQ_NUMBER = re.compile(r"_\d+$")


def _abcd(spec: SourceSpec, url: str) -> Iterator[Item]:
    """ABCD conversations: `original` turns, `scenario.subflow` the intent, its PII known."""
    data = _load_json(spec, url)
    if not isinstance(data, list):
        raise SourceError(f"cannot read {url}: ABCD data is a JSON list of conversations")
    for number, convo in enumerate(data, start=1):
        raw = json.dumps(convo, ensure_ascii=False)
        if not isinstance(convo, dict):
            yield Item(number, raw, convo)  # canonical_row names the rule
            continue
        scenario = convo.get("scenario") or {}
        personal = scenario.get("personal") or {}
        order = scenario.get("order") or {}
        speakers = {"customer": "customer", "agent": "agent", "action": "system"}
        turns = [
            {"speaker": speakers.get(t[0], t[0]), "text": t[1]}
            if isinstance(t, list) and len(t) == 2
            else t
            for t in convo.get("original") or []
        ]
        subflow = scenario.get("subflow")
        cid = str(convo["convo_id"]) if "convo_id" in convo else None
        known = {
            k: [str(personal[k])]
            for k in ("customer_name", "email", "phone", "username")
            if personal.get(k)
        }
        if order.get("order_id"):
            known["order_id"] = [str(order["order_id"])]
        record = {
            "conversation_id": f"{spec.display_name}-{cid}" if cid else None,
            "channel": "chat",
            "language": "en",
            "intent": _FAQ_NUMBER.sub("", subflow) if isinstance(subflow, str) else subflow,
            "turns": turns,
            "_pii": known,
        }
        yield Item(number, raw, record)


def _clinc150(spec: SourceSpec, url: str) -> Iterator[Item]:
    data = _load_json(spec, url)
    if not isinstance(data, dict):
        raise SourceError(f"cannot read {url}: CLINC150 data is a JSON object of splits")
    number = 0
    for split in spec.splits or sorted(data):
        for i, pair in enumerate(data.get(split) or []):
            number += 1
            raw = json.dumps(pair, ensure_ascii=False)
            if not (isinstance(pair, list) and len(pair) == 2):
                yield Item(
                    number, raw, RecordError("invalid_field", f"{split}[{i}] is not [text, intent]")
                )
                continue
            record = {
                "conversation_id": f"{spec.display_name}-{split}-{i}",
                "intent": pair[1],
                "turns": [{"speaker": "customer", "text": pair[0]}],
            }
            yield Item(number, raw, record)


def _sql(spec: SourceSpec, day: date) -> Iterator[Item]:
    """Rows of the source's table over the data interval [day, day + 1), read through its
    Airflow connection in a read-only transaction, by a role that may only read (refused
    otherwise: :func:`_require_read_only`)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from ml.config import airflow_connection_url

    if not spec.conn_id:  # check_spec refuses it first
        raise SourceError(f"source {spec.display_name!r}: a SQL source needs a conn_id")
    url = sa.engine.make_url(airflow_connection_url(spec.conn_id))
    options = {"postgresql_readonly": True} if url.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(url, execution_options=options)
    try:
        with engine.connect() as conn:
            _require_read_only(conn, spec)
            result = conn.execution_options(stream_results=True).execute(sql_select(spec, day))
            for number, row in enumerate(result.mappings(), start=1):
                record = {
                    k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()
                }
                raw = json.dumps(record, ensure_ascii=False, default=str)
                yield Item(number, raw, _mapped(spec, record, number, spec.display_name))
    except SQLAlchemyError as exc:
        # The driver's own message, first line: the statement and its parameters stay out.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SourceError(f"cannot read sql:{spec.display_name}: {reason}") from exc
    finally:
        engine.dispose()


def sql_select(spec: SourceSpec, day: date) -> Any:
    """SELECT the mapped columns (all, without a mapping) of the source's table whose start
    column lies in the data interval (bound parameters), ordered by it. Table, schema and
    columns are identifiers, always quoted by SQLAlchemy: a name is never SQL."""
    import sqlalchemy as sa

    table = sql_table(spec)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    when = table.c[spec.columns.get("started_at", "started_at")]
    columns = list(table.c) if spec.columns else [sa.literal_column("*")]
    return (
        sa.select(*columns)
        .select_from(table)
        .where(when >= start, when < start + timedelta(days=1))
        .order_by(when)
    )


def sql_table(spec: SourceSpec) -> Any:
    """The source's table with the columns it reads (the mapped ones and the start column),
    every name a quoted identifier."""
    import sqlalchemy as sa
    from sqlalchemy.sql.elements import quoted_name

    if not spec.table:  # check_spec refuses it first
        raise SourceError(f"source {spec.display_name!r}: a SQL source needs a table")
    started = spec.columns.get("started_at", "started_at")
    wanted = dict.fromkeys([*spec.columns.values(), started])
    return sa.table(
        quoted_name(spec.table, quote=True),
        *(sa.column(quoted_name(c, quote=True)) for c in wanted),
        schema=quoted_name(spec.schema, quote=True) if spec.schema else None,
    )


def _require_read_only(conn: Any, spec: SourceSpec) -> None:
    """Refuse a connection whose role could do more than read the table.

    The statement is a SELECT Intentflow builds, in a read-only transaction; the role is the
    second wall. PostgreSQL: not a superuser, no server-file roles (pg_read_file), no
    INSERT/UPDATE/DELETE/TRUNCATE on the table. SQLite has no roles: the connection is put
    in query-only mode.
    """
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
        return
    if conn.dialect.name != "postgresql":  # ml.config.airflow_conn_to_url allows no other
        raise SourceError(f"sql:{spec.display_name}: {conn.dialect.name} is not supported")
    qualified = conn.dialect.identifier_preparer.format_table(sql_table(spec))
    powers = conn.execute(
        sa.text(
            "SELECT r.rolsuper"
            " OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE')"
            " OR pg_has_role(current_user, 'pg_write_server_files', 'USAGE')"
            " OR pg_has_role(current_user, 'pg_execute_server_program', 'USAGE'),"
            " coalesce(has_table_privilege(to_regclass(:table),"
            " 'INSERT, UPDATE, DELETE, TRUNCATE'), false)"
            " FROM pg_roles r WHERE r.rolname = current_user"
        ),
        {"table": qualified},
    ).one()
    if any(powers):
        what = "is a superuser or may use server files" if powers[0] else "may write the table"
        raise SourceError(
            f"sql:{spec.display_name}: the role of connection {spec.conn_id!r} {what}; "
            "a source reads with a role granted SELECT only (docs/security.md#sources)"
        )


def read_items(spec: SourceSpec, url: str, day: date) -> Iterator[Item]:
    """Every record of one file (or of the SQL query) as Items, in order."""
    if spec.format == "sql":
        return _sql(spec, day)
    return {"jsonl": _jsonl, "csv": _csv, "abcd": _abcd, "clinc150": _clinc150}[spec.format](
        spec, url
    )


def load_labels(path: str) -> frozenset[str]:
    """A label file: a JSON list, an ABCD ontology (its subflows), or one label a line."""
    with fsspec.open(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    if text.lstrip().startswith(("[", "{")):
        data = json.loads(text)
        if isinstance(data, dict):  # ABCD ontology.json
            subflows = data["intents"]["subflows"]
            return frozenset(s for values in subflows.values() for s in values)
        return frozenset(str(x) for x in data)
    return frozenset(x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#"))

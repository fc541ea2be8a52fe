"""What ingest may read: configured sources by name, under allowed roots, never a link out of
a source's folder, a SQL table only through a read-only role with quoted identifiers."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from ml.cli.main import app
from ml.config import ConfigError, settings
from ml.ingest import normalise as normalise_module
from ml.ingest import sources
from ml.ingest.sources import SourceError, SourceSpec
from ml.ingest.steps import discover, ingest_day, normalise

pytest_plugins = ("pg",)

DAY = date(2026, 11, 22)
SECRET = "s3cret-line-of-another-file"
runner = CliRunner()


def rec(cid: str, text: str = "I want a refund") -> str:
    return json.dumps(
        {
            "conversation_id": cid,
            "started_at": "2026-11-22T10:00:00Z",
            "channel": "chat",
            "language": "en",
            "intent": "refund_request",
            "turns": [{"speaker": "customer", "text": text}],
        }
    )


def drop(root: Path, name: str = "a.jsonl", n: int = 10) -> Path:
    folder = root / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(rec(f"{name}-{i}") + "\n" for i in range(n)))
    return folder / name


def secret_file(tmp_path: Path) -> Path:
    """A file outside every source, whose lines would pass as records if read."""
    path = tmp_path / "elsewhere" / "secret.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rec("leaked", SECRET) + "\n")
    return path


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict, roots=()) -> None:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setenv("INTENTFLOW_SOURCES_FILE", str(path))
    monkeypatch.setenv("INTENTFLOW_SOURCE_ROOTS", ",".join(map(str, roots)))


def nothing_written(home: Path) -> bool:
    cfg = settings()
    quarantined = list(Path(cfg.quarantine).glob("dt=*")) if Path(cfg.quarantine).exists() else []
    staged = list(cfg.staging.iterdir()) if cfg.staging.exists() else []
    return not quarantined and not staged


# --- names -----------------------------------------------------------------------------------


def test_a_run_reads_a_configured_source_by_name(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.ingest.named_sources import resolve

    crm = tmp_path / "feeds" / "crm"
    drop(crm)
    configure(tmp_path, monkeypatch, {"crm": {"url": str(crm)}}, [tmp_path / "feeds"])
    assert resolve(None).url == str(intentflow_home / "raw")  # `default`: INTENTFLOW_SOURCE
    assert resolve("default") == resolve(None)
    spec = resolve("crm")
    assert (spec.url, spec.display_name) == (str(crm), "crm")  # the name is its display name
    result = ingest_day(DAY, "crm")
    assert (result["rows_written"], result["source"]) == (10, "crm")
    with pytest.raises(
        ConfigError, match="'nope' is not configured; the configured sources: crm, d"
    ):
        resolve("nope")


@pytest.mark.parametrize(
    "typed",
    [
        "/etc/passwd",
        "/etc",
        "file:///etc/passwd",
        json.dumps(
            {"url": "/etc/passwd", "layout": "static", "dates": [DAY.isoformat()] * 2, "name": "x"}
        ),
        json.dumps(
            {
                "format": "sql",
                "url": "postgresql://postgres:pw@127.0.0.1/test",
                "query": "SELECT pg_read_file('/etc/passwd')",
            }
        ),
    ],
)
def test_a_path_url_or_spec_given_as_the_source_reads_nothing(
    intentflow_home: Path, typed: str
) -> None:
    """What a form or --source used to take (a path, URL or spec) is no name: refused, unread,
    and not echoed (a URL may hold a password)."""
    opened: list[str] = []
    real_open = sources.open_file

    def spy(url: str, *args: object) -> object:
        opened.append(url)
        return real_open(url, *args)

    with (
        mock.patch.object(sources, "open_file", spy),
        pytest.raises(ConfigError, match="chosen by name, not by path, URL or spec") as err,
    ):
        ingest_day(DAY, typed)
    assert opened == [] and "pw" not in str(err.value) and "passwd" not in str(err.value)
    assert nothing_written(intentflow_home)


def test_the_cli_takes_a_source_name_or_a_local_path_never_a_spec(
    intentflow_home: Path, tmp_path: Path
) -> None:
    """`--source` is a name; `--path` (the operator's own files) is a local folder only."""
    spec = json.dumps({"url": "/etc/passwd", "layout": "static", "dates": [DAY.isoformat()] * 2})
    for typed in (spec, "/etc/passwd"):
        result = runner.invoke(app, ["ingest", "--date", DAY.isoformat(), "--source", typed])
        assert result.exit_code == 2, result.output
        assert "a source is chosen by name" in result.output
        assert "root:" not in result.output
    assert nothing_written(intentflow_home)
    for typed in ("s3://bucket/drops", spec):
        result = runner.invoke(app, ["ingest", "--date", DAY.isoformat(), "--path", typed])
        assert result.exit_code == 2 and "--path is a local folder" in result.output
    result = runner.invoke(
        app, ["ingest", "--date", DAY.isoformat(), "--path", "x", "--source", "default"]
    )
    assert result.exit_code == 2 and "not both" in result.output
    drop(tmp_path / "mine")
    result = runner.invoke(
        app, ["ingest", "--date", DAY.isoformat(), "--path", str(tmp_path / "mine"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_written"] == 10


# --- allowed roots ---------------------------------------------------------------------------


def test_named_sources_must_lie_under_an_allowed_root(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.ingest.named_sources import named_source

    allowed = tmp_path / "allowed"
    (allowed / "crm").mkdir(parents=True)
    (allowed / "escape").symlink_to("/etc")
    entries = {
        "crm": {"url": str(allowed / "crm")},
        "bucket": {"url": "s3://crm-exports/chats/eu", "format": "csv"},
        "mem": {"url": "memory://feeds/a"},
        "etc": {"url": "/etc"},
        "up": {"url": str(allowed / "crm" / ".." / ".." / "other")},
        "linked": {"url": str(allowed / "escape")},
        "labels": {"url": str(allowed / "crm"), "labels": "/etc/passwd"},
        "sibling": {"url": "s3://crm-exports/chatsX"},
        "dots": {"url": "s3://crm-exports/chats/../../other-bucket"},
        "userinfo": {"url": "s3://AKIAKEY:hunter2@crm-exports/chats"},
        "chained": {"url": "simplecache::s3://crm-exports/chats"},
        "http": {"url": "http://crm-exports/chats"},
        "pattern": {"url": str(allowed / "crm"), "pattern": "../../../etc/*"},
        "query": {"format": "sql", "conn_id": "crm", "table": "t", "query": "SELECT 1"},
        "sql_url": {"format": "sql", "url": "sqlite:////etc/x.db", "table": "t"},
    }
    configure(tmp_path, monkeypatch, entries, [allowed, "s3://crm-exports/chats", "memory://feeds"])
    for name in ("crm", "bucket", "mem"):
        assert named_source(name).display_name == name
    for name in ("etc", "up", "linked", "labels", "sibling", "dots", "userinfo", "chained", "http"):
        with pytest.raises(ConfigError, match=rf"^source '{name}': its \w+ .* not under") as err:
            named_source(name)
        assert "hunter2" not in str(err.value) and "AKIAKEY" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^source 'pattern' .* must be a glob inside"):
        named_source("pattern")
    with pytest.raises(ConfigError, match=r"^source 'query' .*unknown keys: \['query'\]"):
        named_source("query")
    with pytest.raises(ConfigError, match=r"^source 'sql_url' .*Airflow connection"):
        named_source("sql_url")
    # Without INTENTFLOW_SOURCE_ROOTS only the default source's folder is allowed.
    monkeypatch.delenv("INTENTFLOW_SOURCE_ROOTS")
    with pytest.raises(ConfigError, match="source 'crm'"):
        named_source("crm")


def test_under_root_compares_whole_segments_of_one_scheme(tmp_path: Path) -> None:
    from ml.ingest.named_sources import under_root

    assert under_root("s3://b/p/q", "s3://b/p") and under_root("s3://b/p", "s3://b/p/")
    assert not under_root("s3://b/pq", "s3://b/p") and not under_root("gs://b/p", "s3://b/p")
    assert not under_root("/b/p", "s3://b/p") and not under_root("s3://b/p", tmp_path)
    assert under_root(str(tmp_path / "x"), tmp_path) and under_root(f"file://{tmp_path}", tmp_path)
    assert not under_root(str(tmp_path), tmp_path / "x")


# --- links out of a source's folder --------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_file_linked_out_of_the_source_is_never_read(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "raw"
    (src / DAY.isoformat()).mkdir(parents=True)
    link = src / DAY.isoformat() / f"x.{fmt}"
    link.symlink_to(secret_file(tmp_path))
    spec = SourceSpec(str(src), format=fmt)
    with pytest.raises(SourceError, match=rf"cannot read .*x\.{fmt}: it links out of") as err:
        list(sources.read_items(spec, str(link), DAY))
    assert SECRET not in str(err.value) and "elsewhere" not in str(err.value)
    with pytest.raises(SourceError, match=rf"x\.{fmt}: it links out of"):
        sources.discover(spec, DAY)


def test_a_day_folder_linked_out_of_the_source_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    (src / DAY.isoformat()).symlink_to(secret_file(tmp_path).parent, target_is_directory=True)
    with pytest.raises(SourceError, match=r"secret\.jsonl: it links out of"):
        discover(SourceSpec(str(src)), DAY)


@pytest.mark.parametrize("fast", [True, False])
def test_normalise_refuses_a_linked_file_whoever_listed_it(tmp_path: Path, fast: bool) -> None:
    """The DAG's normalise reads the file list of an earlier task: each file is checked again
    when opened, on the Arrow fast path and the record-by-record one."""
    src = tmp_path / "raw"
    good = drop(src)
    link = src / DAY.isoformat() / "x.jsonl"
    link.symlink_to(secret_file(tmp_path))
    stage = tmp_path / "stage"
    with (
        mock.patch.object(normalise_module, "FAST_PATH", fast),
        pytest.raises(SourceError, match=r"x\.jsonl: it links out of"),
    ):
        normalise([str(good), str(link)], DAY, stage, SourceSpec(str(src)))
    assert not stage.exists()


def test_ingest_of_a_day_with_a_link_to_etc_passwd_fails_naming_the_file(
    intentflow_home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "raw"
    drop(src)
    (src / DAY.isoformat() / "x.jsonl").symlink_to("/etc/passwd")
    with pytest.raises(SourceError, match=r"x\.jsonl: it links out of the source's folder") as err:
        ingest_day(DAY, SourceSpec(str(src)))
    assert "root:" not in str(err.value)
    assert nothing_written(intentflow_home)


def test_a_link_inside_the_source_folder_is_read(intentflow_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw"
    archived = drop(src / "archive")
    (src / DAY.isoformat()).mkdir(parents=True)
    (src / DAY.isoformat() / "a.jsonl").symlink_to(archived)
    assert ingest_day(DAY, SourceSpec(str(src)))["rows_written"] == 10


# --- SQL -----------------------------------------------------------------------------------

CHATS = "CREATE TABLE chats (id text primary key, started_at timestamptz, body text, label text)"
COLUMNS = {"conversation_id": "id", "started_at": "started_at", "text": "body", "intent": "label"}


def chats_table(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(CHATS))
        conn.execute(
            text("INSERT INTO chats VALUES ('c1', '2026-11-22T10:00:00Z', 'refund', 'refund')")
        )
    engine.dispose()


def sql_source(monkeypatch: pytest.MonkeyPatch, conn_url: str, **kw: object) -> SourceSpec:
    monkeypatch.setenv("AIRFLOW_CONN_CRM", conn_url)
    return sources.parse_source(
        {"format": "sql", "conn_id": "crm", "name": "crm", "columns": COLUMNS, **kw}
    )


def test_sql_identifiers_are_quoted_never_pasted() -> None:
    spec = sources.parse_source(
        {"format": "sql", "conn_id": "crm", "table": 'chats"; DROP TABLE x; --', "schema": "s"}
    )
    sql = str(sources.sql_select(spec, DAY).compile(dialect=postgresql.dialect()))
    assert sql.startswith('SELECT * \nFROM "s"."chats""; DROP TABLE x; --"')
    assert "%(started_at_1)s" in sql  # the interval is bound, not formatted in


def test_a_table_name_holding_sql_reads_nothing(
    intentflow_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pg_read_file` in the table name (read today as a subquery) is one quoted name that
    names no table."""
    from pg import read_only_role

    chats_table(pg_url)
    injected = "(SELECT pg_read_file('/etc/passwd') AS body, now() AS started_at) AS t"
    with read_only_role(pg_url, "chats") as (role_url, schema):
        spec = sql_source(monkeypatch, role_url, table=injected, schema=schema)
        with pytest.raises(SourceError, match=r"cannot read sql:crm: .*does not exist") as err:
            list(sources.read_items(spec, "sql:crm", DAY))
        assert "root:" not in str(err.value)
        # The same source with the real name reads the row.
        spec = sql_source(monkeypatch, role_url, table="chats", schema=schema)
        [item] = sources.read_items(spec, "sql:crm", DAY)
        assert item.record["conversation_id"] == "c1"


def test_a_sql_source_reads_only_with_a_role_that_cannot_write(
    intentflow_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection's role is the second wall: SELECT only. One that could write the table,
    or is a superuser (pg_read_file), is refused before any row is read; through the
    read-only role's connection a write and pg_read_file are denied by PostgreSQL itself."""
    from pg import read_only_role, schema_of

    chats_table(pg_url)
    schema = schema_of(pg_url)
    superuser = sql_source(monkeypatch, pg_url, table="chats", schema=schema)
    with pytest.raises(SourceError, match="connection 'crm' is a superuser"):
        list(sources.read_items(superuser, "sql:crm", DAY))
    # Were the role check and the SELECT ever gone, the transaction itself is read-only.
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE SEQUENCE ids"))
    admin.dispose()
    writes = text("SELECT nextval('ids') AS id")
    with (
        mock.patch.object(sources, "_require_read_only", lambda *_: None),
        mock.patch.object(sources, "sql_select", lambda *_: writes),
        pytest.raises(SourceError, match="cannot execute nextval.. in a read-only transaction"),
    ):
        list(sources.read_items(superuser, "sql:crm", DAY))
    with read_only_role(pg_url, "chats") as (role_url, schema):
        engine = create_engine(role_url)
        for statement in (
            f"INSERT INTO \"{schema}\".chats (id) VALUES ('x')",
            f'DELETE FROM "{schema}".chats',
            "SELECT pg_read_file('/etc/passwd')",
        ):
            with engine.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text(statement))
        engine.dispose()
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        role = role_url.split("://", 1)[1].split("@", 1)[0]
        with admin.connect() as conn:
            conn.execute(text(f'GRANT INSERT ON "{schema}".chats TO "{role}"'))
        admin.dispose()
        writer = sql_source(monkeypatch, role_url, table="chats", schema=schema)
        with pytest.raises(SourceError, match="connection 'crm' may write the table"):
            list(sources.read_items(writer, "sql:crm", DAY))


def test_a_sqlite_source_reads_in_query_only_mode(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "crm.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE chats (id text, started_at text, body text, label text)"))
        conn.execute(
            text("INSERT INTO chats VALUES ('c1', '2026-11-22 10:00:00', 'refund', 'refund')")
        )
    engine.dispose()
    spec = sql_source(monkeypatch, f"sqlite:///{db}", table="chats")
    [item] = sources.read_items(spec, "sql:crm", DAY)
    assert item.record["conversation_id"] == "c1"
    # Were the statement ever another one, the connection could not write.
    with (
        mock.patch.object(sources, "sql_select", lambda *_: text("DELETE FROM chats")),
        pytest.raises(SourceError, match="readonly"),
    ):
        list(sources.read_items(spec, "sql:crm", DAY))
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chats")).scalar() == 1
    engine.dispose()


def test_a_sql_source_without_its_connection_names_the_variable(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    spec = sources.parse_source({"format": "sql", "conn_id": "nowhere", "table": "t"})
    with pytest.raises(ConfigError, match="set AIRFLOW_CONN_NOWHERE"):
        list(sources.read_items(spec, "sql:t", DAY))
    monkeypatch.setenv("AIRFLOW_CONN_NOWHERE", "mysql://u:hunter2@h/db")
    with pytest.raises(ConfigError, match="AIRFLOW_CONN_NOWHERE has connection type") as err:
        list(sources.read_items(spec, "sql:t", DAY))
    assert "hunter2" not in str(err.value)

"""Passwords never printed: the one masking function (ml.credentials) and what uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from ml.config import ConfigError, settings
from ml.credentials import has_credentials, hide_credentials, hide_credentials_in

SECRET = "s3cr3t"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "postgresql://u:s3cr3t@127.0.0.1:5432/test",
            "postgresql://u:***@127.0.0.1:5432/test",
        ),
        (
            "postgresql+psycopg2://intentflow:s3cr3t@db/reg?sslmode=require",
            "postgresql+psycopg2://intentflow:***@db/reg?sslmode=require",
        ),
        ("redis://:s3cr3t@redis:6379/0", "redis://:***@redis:6379/0"),
        ("ftp://me:s3cr3t@files.example/drops", "ftp://me:***@files.example/drops"),
        # An unescaped '@' or '/' in the password: masked to the URL's last '@'.
        ("postgresql://u:s3@cr/3t@db/x", "postgresql://u:***@db/x"),
        ("postgresql://db/x?user=u&password=s3cr3t", "postgresql://db/x?user=u&password=***"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=s3cr3t&x=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&x=1",
        ),
        # Inside a message or a JSON document, each URL on its own.
        (
            'error: cannot reach {"url": "postgresql://u:s3cr3t@h/db"} nor ftp://a:s3cr3t@f/x',
            'error: cannot reach {"url": "postgresql://u:***@h/db"} nor ftp://a:***@f/x',
        ),
    ],
)
def test_hide_credentials_masks_every_password(text: str, shown: str) -> None:
    assert hide_credentials(text) == shown
    assert SECRET not in hide_credentials(text) and has_credentials(text)


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:////home/x/registry.db",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/db",
        "redis://:@redis:6379/0",
        "s3://bucket/intentflow/lake",
        "abfs://container@account.dfs.core.windows.net/path",
        "/data/intentflow/raw",
        "intent:3 → champion",
    ],
)
def test_hide_credentials_leaves_urls_without_a_password_alone(text: str) -> None:
    assert hide_credentials(text) == text and not has_credentials(text)


def test_the_masked_sql_url_reads_as_sqlalchemys() -> None:
    from sqlalchemy.engine import make_url

    url = "postgresql+psycopg2://u:s3cr3t@127.0.0.1:5432/test"
    assert hide_credentials(url) == make_url(url).render_as_string(hide_password=True)


def test_settings_repr_masks_the_registry_password(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTFLOW_REGISTRY_URL", "postgresql://u:s3cr3t@127.0.0.1:5432/test")
    monkeypatch.setenv("INTENTFLOW_ANSWERS_SOURCE", "ftp://me:s3cr3t@files.example/pairs.csv")
    cfg = settings()
    assert cfg.registry_url.endswith(":s3cr3t@127.0.0.1:5432/test")  # the value itself works
    for shown in (repr(cfg), str(cfg), f"{cfg}", repr([cfg])):
        assert SECRET not in shown
        assert "postgresql://u:***@127.0.0.1:5432/test" in shown
        assert "ftp://me:***@files.example/pairs.csv" in shown
        assert f"home={intentflow_home!r}" in shown  # other settings as before


@pytest.mark.parametrize("name", ["INTENTFLOW_DATA_URL", "INTENTFLOW_ARTIFACTS_URL"])
def test_a_storage_url_with_a_password_is_refused_without_printing_it(
    intentflow_home: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Storage locations are named in logs, XCom, manifests and the registry: none may carry
    a password, so one in the URL is a configuration error (that does not print it)."""
    monkeypatch.setenv(name, "ftp://me:s3cr3t@files.example/intentflow")
    with pytest.raises(ConfigError, match=f"{name}=.*holds a password") as caught:
        settings()
    assert SECRET not in str(caught.value)


def test_an_unparsable_registry_url_is_reported_without_its_password() -> None:
    """A RegistryError the CLI reports (not SQLAlchemy's traceback), the URL masked."""
    from ml.registry.errors import RegistryError
    from ml.registry.store import Registry

    with pytest.raises(RegistryError, match="is not a database URL") as caught:
        Registry("postgres ql://u:s3cr3t@127.0.0.1/x")
    assert SECRET not in str(caught.value)


def test_a_snapshot_record_holds_no_source_password(tmp_path: Path) -> None:
    """The snapshot dict goes to XCom, snapshot.json, lineage and the model card."""
    from ml.snapshots.writer import SNAPSHOT_FILE, SPLITS, freeze

    source = "ftp://me:s3cr3t@files.example/pairs.csv"
    splits = {name: pa.table({"id": [name], "text": ["t"], "label": ["a"]}) for name in SPLITS}
    info = {
        "task": "answers",
        "window": None,
        "partitions": [{"file": source, "sha256": "0" * 64}],
        "source": source,
        "labels": ["a"],
        "split_rule": "r",
        "counts": {"records": 3},
    }
    record = freeze(tmp_path / "snapshots", "ab" * 32, splits, info)
    written = (Path(record["path"]) / SNAPSHOT_FILE).read_text()
    for text in (json.dumps(record), written):
        assert SECRET not in text and "ftp://me:***@files.example/pairs.csv" in text


def test_hide_credentials_in_keeps_the_shape() -> None:
    value = {"a": ["x://u:p@h", ("y://u:p@h", 3)], "n": None, "k": 1.5}
    assert hide_credentials_in(value) == {
        "a": ["x://u:***@h", ("y://u:***@h", 3)],
        "n": None,
        "k": 1.5,
    }

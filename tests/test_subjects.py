"""Subject keys: one person's identifiers hash alike in every spelling, and only with the key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ml.config import ConfigError, settings
from ml.subjects import KEY_FILE, pii_key, pseudonym, subject_key


def test_spellings_of_one_identifier_share_a_key() -> None:
    key = b"k" * 32
    assert subject_key("email", "Ann.Lee@Example.com ", key) == subject_key(
        "email", "ann.lee@example.com", key
    )
    assert subject_key("email", "ann＠example.com", key) == subject_key(
        "email", "ann@example.com", key
    )  # full-width at sign: NFKC
    assert subject_key("phone", "+44 20 7946 0958", key) == subject_key(
        "phone", "+44-20-7946-0958", key
    )
    assert subject_key("phone", "+44 20 7946 0958", key) != subject_key(
        "email", "+44 20 7946 0958", key
    )


def test_another_key_gives_other_hashes() -> None:
    assert subject_key("email", "a@b.co", b"1" * 32) != subject_key("email", "a@b.co", b"2" * 32)
    assert pseudonym("a@b.co", b"1" * 32) != pseudonym("a@b.co", b"2" * 32)
    assert "a@b.co" not in pseudonym("a@b.co", b"1" * 32)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown identifier kind"):
        subject_key("shoe_size", "42", b"k")


def test_a_local_key_is_generated_once_and_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTENTFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("INTENTFLOW_PII_KEY", raising=False)
    monkeypatch.delenv("INTENTFLOW_DATA_URL", raising=False)
    first = pii_key(settings())
    assert pii_key(settings()) == first
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    monkeypatch.setenv("INTENTFLOW_PII_KEY", "configured")
    assert pii_key(settings()) == b"configured"


def test_a_remote_data_root_needs_a_configured_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTENTFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("INTENTFLOW_DATA_URL", "s3://bucket/data")
    monkeypatch.delenv("INTENTFLOW_PII_KEY", raising=False)
    with pytest.raises(ConfigError, match="INTENTFLOW_PII_KEY"):
        pii_key(settings())

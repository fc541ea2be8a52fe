"""The service's settings (ml.config.serve_settings): tokens are required and kept out of
reprs and errors; limits and intervals are checked."""

from __future__ import annotations

import json

import pytest

from ml.config import ConfigError, serve_settings

TOKEN = "a-serving-token-0123456789"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTENTFLOW_SERVE_TOKENS", "AIRFLOW_CONN_INTENTFLOW_SERVE"):
        monkeypatch.delenv(name, raising=False)


def test_no_token_no_service(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="INTENTFLOW_SERVE_TOKENS holds no bearer token"):
        serve_settings()
    monkeypatch.setenv("INTENTFLOW_SERVE_TOKENS", " , ")
    with pytest.raises(ConfigError, match="no bearer token"):
        serve_settings()


def test_short_tokens_are_refused_without_being_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTFLOW_SERVE_TOKENS", f"{TOKEN},hunter2")
    with pytest.raises(ConfigError, match="1 token") as refused:
        serve_settings()
    assert "hunter2" not in str(refused.value)


def test_tokens_from_the_environment_or_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTFLOW_SERVE_TOKENS", f" {TOKEN} , {TOKEN}-two ")
    cfg = serve_settings()
    assert cfg.tokens == (TOKEN, f"{TOKEN}-two")
    assert TOKEN not in repr(cfg) and "<2 tokens>" in repr(cfg)
    # The connection, when defined, is used instead: its password holds the tokens.
    monkeypatch.setenv("AIRFLOW_CONN_INTENTFLOW_SERVE", f"generic://:{TOKEN}-conn%2C{TOKEN}-x@")
    assert serve_settings().tokens == (f"{TOKEN}-conn", f"{TOKEN}-x")
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_SERVE", json.dumps({"conn_type": "generic", "password": TOKEN})
    )
    assert serve_settings().tokens == (TOKEN,)
    monkeypatch.setenv("AIRFLOW_CONN_INTENTFLOW_SERVE", '{"password": ""}')
    with pytest.raises(ConfigError, match="AIRFLOW_CONN_INTENTFLOW_SERVE holds no bearer"):
        serve_settings()


def test_limits_and_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTFLOW_SERVE_TOKENS", TOKEN)
    cfg = serve_settings()
    assert (cfg.max_batch, cfg.max_texts, cfg.max_chars, cfg.poll_s) == (32, 256, 2000, 10.0)
    assert cfg.runtime == "onnx-int8" and cfg.prediction_log and cfg.models is None
    monkeypatch.setenv("INTENTFLOW_SERVE_MODELS", "intent, faq")
    monkeypatch.setenv("INTENTFLOW_SERVE_RUNTIME", "TORCH")
    monkeypatch.setenv("INTENTFLOW_SERVE_LOG", "off")
    cfg = serve_settings()
    assert (cfg.models, cfg.runtime, cfg.prediction_log) == (("intent", "faq"), "torch", False)
    for name, bad, says in (
        ("INTENTFLOW_SERVE_POLL_S", "31", "at most 30"),
        ("INTENTFLOW_SERVE_POLL_S", "0", "above 0"),
        ("INTENTFLOW_SERVE_MAX_TEXTS", "0", "at least 1"),
        ("INTENTFLOW_SERVE_MAX_BATCH", "many", "not an integer"),
        ("INTENTFLOW_SERVE_RUNTIME", "tensorrt", "expected one of torch, onnx-int8"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, bad)
            with pytest.raises(ConfigError, match=says):
                serve_settings()

"""The drift thresholds from the environment, and which models are monitored."""

from __future__ import annotations

import pytest

from ml.config import ConfigError, DriftSettings, drift_settings, monitoring_schedule
from ml.monitoring.run import monitored_models


def test_thresholds_come_from_the_environment_and_off_disables_a_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert drift_settings() == DriftSettings()
    monkeypatch.setenv("INTENTFLOW_DRIFT_LABEL_PSI", "0.25")
    monkeypatch.setenv("INTENTFLOW_DRIFT_OOS_RATE", "off")
    monkeypatch.setenv("INTENTFLOW_DRIFT_MIN_PREDICTIONS", "500")
    monkeypatch.setenv("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", "yes")
    monkeypatch.setenv("INTENTFLOW_DRIFT_COMBINED", "off")
    got = drift_settings()
    assert (got.label_psi, got.oos_rate, got.min_predictions, got.triggers_retrain) == (
        0.25,
        None,
        500,
        True,
    )
    assert got.combined is False
    for name, value, message in (
        ("INTENTFLOW_DRIFT_LABEL_JS", "big", "is not a number"),
        ("INTENTFLOW_DRIFT_CONFIDENCE", "1", "below 1"),
        ("INTENTFLOW_DRIFT_TRIGGERS_RETRAIN", "maybe", "true or false"),
        ("INTENTFLOW_DRIFT_COMBINED", "maybe", "true or false"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=message):
            drift_settings()
        monkeypatch.delenv(name)


def test_the_schedule_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert monitoring_schedule() == "30 1 * * *"
    monkeypatch.setenv("INTENTFLOW_MONITORING_SCHEDULE", "off")
    assert monitoring_schedule() is None


def test_intent_models_the_service_answers_are_monitored(
    intentflow_home: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTENTFLOW_MODELS_FILE", raising=False)
    monkeypatch.delenv("INTENTFLOW_SERVE_MODELS", raising=False)
    assert monitored_models() == ["intent"]  # entities and answers are not intent models
    monkeypatch.setenv("INTENTFLOW_SERVE_MODELS", "entities,answers")
    assert monitored_models() == []

"""ml.monitoring on a real champion (the tiny trained model), a real registry and real Delta
`predictions` days: an unshifted day is ok, a shifted one drifts, a quiet one is no_data; the
reference is computed once per version; a rerun replaces the row and the report; no message
text reaches the report or the row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from traffic import NEW_INTENT, day_texts

from ml.config import settings
from ml.monitoring.profiles import reference_location
from ml.monitoring.run import monitor_day
from ml.monitoring.store import monitoring_days

# Words only the messages hold (the labels' names are in the figures, as they should be).
PRIVATE = [w for w in NEW_INTENT if w in ("pizza", "pepperoni", "cheese", "crust", "tonight")]


def test_a_shifted_day_drifts_and_an_unshifted_one_does_not(
    champion: Any, write_day: Callable[..., int]
) -> None:
    cfg = settings()
    write_day("2026-11-20", day_texts(300, seed=1))
    write_day("2026-11-21", day_texts(300, seed=2, new_share=0.4))
    write_day("2026-11-22", day_texts(40, seed=3, new_share=0.4))

    ok = monitor_day("intent", "2026-11-20")
    assert (ok["status"], ok["drifted"], ok["predictions"]) == ("ok", [], 300)
    assert (ok["version"], ok["reference_version"]) == (1, 1)
    assert {c["name"] for c in ok["checks"]} >= {
        "label_psi", "label_js", "confidence_psi", "length_psi", "unseen_token_share"
    }  # fmt: skip

    shifted = monitor_day("intent", "2026-11-21")
    assert shifted["status"] == "drift"
    assert "unseen_token_share" in shifted["drifted"]

    quiet = monitor_day("intent", "2026-11-22")
    assert quiet["status"] == "no_data" and quiet["drifted"] == []

    rows = monitoring_days(cfg.registry_url, "intent")
    assert [(r["day"], r["status"]) for r in rows] == [
        ("2026-11-20", "ok"),
        ("2026-11-21", "drift"),
        ("2026-11-22", "no_data"),
    ]
    figures = rows[1]["figures"]
    assert figures["predictions"] == 300
    assert abs(sum(figures["label_mix"].values()) - 1) < 1e-4
    # The answers the champion is expected to give: its labels (and out-of-scope answers).
    expected = set(figures["reference_label_mix"]) - {"out_of_scope"}
    assert expected == {"lost_card", "refund_request", "password_reset"}
    assert len(figures["confidence"]["histogram"]) == 10
    assert sum(figures["confidence"]["histogram"]) == 300
    assert figures["unseen_token_share"] > figures["reference_unseen_token_share"]
    assert figures["drifted"] == [c["name"] for c in figures["checks"] if c["drift"]]

    # The report and the row hold figures only: no word of a message.
    report = rows[1]["report_url"]
    html = open(report, encoding="utf-8").read()
    stored = json.dumps(rows) + html
    assert "drift" in html and "unseen_token_share" in html
    assert not any(word in stored for word in PRIVATE)
    # The cached reference keeps the vocabulary as digests: no training word in clear.
    reference = reference_location(cfg, "intent", 1).read_text()
    assert not any(word in reference for word in [*PRIVATE, "hello", "thanks"])


def test_a_rerun_replaces_the_day_and_the_reference_is_computed_once(
    champion: Any, write_day: Callable[..., int]
) -> None:
    cfg = settings()
    write_day("2026-11-20", day_texts(150, seed=1))
    first = monitor_day("intent", "2026-11-20")
    where = reference_location(cfg, "intent", 1)
    made = where.stat().st_mtime_ns

    write_day("2026-11-20", day_texts(150, seed=5, new_share=0.5))  # more of the day arrives
    again = monitor_day("intent", "2026-11-20", predict=_never)
    assert where.stat().st_mtime_ns == made  # cached: the model was not asked again
    assert (first["predictions"], again["predictions"]) == (150, 300)
    [row] = monitoring_days(cfg.registry_url, "intent")
    assert row["predictions"] == 300 and row["report_url"] == again["report_url"]


def test_a_day_without_predictions_is_no_data_and_a_model_never_trained_is_skipped(
    champion: Any,
) -> None:
    empty = monitor_day("intent", "2026-11-25")
    assert (empty["status"], empty["predictions"], empty["version"]) == ("no_data", 0, 1)
    [row] = monitoring_days(settings().registry_url, "intent")
    assert row["figures"]["label_psi"] is None
    assert monitor_day("faq", "2026-11-25")["status"] == "no_model"


def _never(texts: list[str]) -> list:
    raise AssertionError("the reference is cached: the model is not asked again")


def test_the_report_goes_to_object_storage_as_the_rest_of_the_lake() -> None:
    """fsspec URLs (here memory://) take the report as a local folder does."""
    from ml import storage
    from ml.monitoring.report import write_report

    figures = json.loads(json.dumps(_FIGURES))
    where = write_report("memory://bucket/reports", "intent", "2026-11-20", figures, "now")
    assert where == "memory://bucket/reports/monitoring/intent/2026-11-20.html"
    html = storage.read_bytes(where).decode()
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "label_psi" in html and "2026-11-20" in html


_FIGURES: dict[str, Any] = {
    "status": "ok", "predictions": 3, "versions": {"1": 3}, "min_predictions": 100,
    "label_mix": {"a": 1.0}, "reference_label_mix": {"a": 0.5, "b": 0.5},
    "label_psi": 0.3, "label_js": 0.1, "label_psi_by_label": {"a": 0.1, "b": 0.2},
    "confidence": {"mean": 0.9, "p10": 0.8, "p50": 0.9, "p90": 1.0,
                   "histogram": [0] * 9 + [3], "reference_histogram": [1] * 10},
    "confidence_psi": 0.5, "oos_rate": None, "reference_oos_rate": None,
    "length": {"mean": 3, "p50": 3, "p90": 3, "reference_mean": 4, "edges": [2.0, 4.0],
               "histogram": [0, 3, 0], "reference_histogram": [1, 1, 1]},
    "length_psi": 0.2, "unseen_token_share": 0.0, "reference_unseen_token_share": 0.0,
    "checks": [{"name": "label_psi", "value": 0.3, "threshold": 0.4, "drift": False,
                "configured": 0.1, "noise": 0.4}],
    "drifted": [], "reference": {"version": 1, "snapshot_hash": "h", "train_rows": 3,
                                 "held_out_messages": 1, "label_effective_n": 3.0},
}  # fmt: skip

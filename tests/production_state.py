"""A week of production for the pipeline state's intent champion, made by the platform's own
code: its predictions through the serving path (ml.serving.models.load_served, the API's
fields, ml.serving.prediction_log: redacted and appended to the lake's `predictions` table),
the agents' feedback through ml.feedback.store.record_feedback, and the monitoring DAG's
function (ml.monitoring) for each day, which writes the day's row and HTML report.

Days (the last DAYS days before today, so the feedback lookup's window holds them): ordinary
traffic (the lake's own texts, resampled), one day of a new kind of request (words the model
never saw), and one quiet day (fewer predictions than the monitoring's minimum: `no_data`).

The predictions, feedback and reports are added to the pipeline state's home once per session
(the `production` fixture, tests/plugins/page_fixtures.py): new tables and folders (lake/predictions, lake/feedback,
reports/monitoring) that the pipeline's own outputs never include, so the state's other readers
see nothing new. The monitoring rows go to a registry copy the caller names (`monitor`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pipeline_state import PipelineState, pipeline_env

MODEL = "intent"
DAYS = 6
PER_DAY = 80
QUIET = 6  # predictions of the quiet day
MIN_PREDICTIONS = "30"  # INTENTFLOW_DRIFT_MIN_PREDICTIONS: the quiet day is below it
SHIFTED = 4  # index of the day of new requests
# Requests the champion never saw the like of (a new intent, new words).
NEW_REQUESTS = [
    "the drone delivery dropped my parcel in the neighbour's pond",
    "can your drone courier land on a balcony on the ninth floor",
    "drone propellers scratched my car while delivering the package",
    "why did the delivery drone hover over my garden for ten minutes",
]
AGENTS = ("agent-ana", "agent-bo")


@dataclass(frozen=True)
class Production:
    days: tuple[date, ...]  # oldest first
    shifted: date
    quiet: date
    predictions: dict[date, int]  # logged per day
    feedback_days: tuple[date, ...]  # days agents corrected
    corrections: int  # feedback rows written
    agreed: int  # of them, the agent's label = the model's


def production_days(today: date | None = None) -> tuple[date, ...]:
    end = (today or datetime.now(UTC).date()) - timedelta(days=1)
    return tuple(end - timedelta(days=DAYS - 1 - i) for i in range(DAYS))


def _lake_texts() -> list[str]:
    """The texts of every published day of the lake, as the model sees them (redacted)."""
    from ml import lake
    from ml.config import settings
    from ml.transcript import model_text

    cfg = settings()
    texts = []
    for day in lake.list_partitions(cfg.lake):
        rows = lake.read_partition(cfg.lake, day, ["turns"]).column("turns").to_pylist()
        texts += [t for t in (model_text(turns) for turns in rows) if t]
    return texts


def _requests(days: tuple[date, ...]) -> dict[date, list[str]]:
    ordinary = _lake_texts()
    out = {}
    for i, day in enumerate(days):
        rng = random.Random(f"production:{day}")
        if i == SHIFTED:
            out[day] = [f"{rng.choice(NEW_REQUESTS)} order {n}" for n in range(PER_DAY)]
        else:
            out[day] = rng.choices(ordinary, k=QUIET if i == DAYS - 1 else PER_DAY)
    return out


def _log_predictions(requests: dict[date, list[str]]) -> dict[date, list[dict]]:
    """Each day's requests answered by the champion as the service answers them, logged
    through the service's prediction log; the API items per day."""
    from ml.config import settings
    from ml.registry.store import Registry
    from ml.serving.models import load_served
    from ml.serving.prediction_log import Logged, PredictionLog, PredictionTable
    from ml.serving.responses import api_prediction, log_fields
    from ml.subjects import pii_key

    cfg = settings()
    with Registry(cfg.registry_url) as registry:
        champion = registry.get(MODEL, alias="champion")
    served = load_served(champion, cfg, "torch", 1)
    log = PredictionLog(
        PredictionTable(cfg.predictions), pii_key(cfg), flush_s=3600, max_rows=10**6
    )
    answered = {}
    for day, texts in requests.items():
        start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        items = [
            api_prediction(p, f"{day:%Y%m%d}-{i:04d}", 3)
            for i, p in enumerate(served.predict(texts, 3))
        ]
        log.add(
            [
                Logged(
                    item["prediction_id"],
                    start + timedelta(seconds=37 * i),
                    MODEL,
                    served.version,
                    served.task,
                    served.runtime,
                    text,
                    log_fields(item),
                    4.0,
                )
                for i, (text, item) in enumerate(zip(texts, items, strict=True))
            ]
        )
        assert log.flush() == len(texts)
        answered[day] = items
    return answered


def _feedback(answered: dict[date, list[dict]], days: tuple[date, ...]) -> tuple[int, int]:
    """Agents review a dozen predictions on each of the first days: they confirm some and
    correct the others to another known label; one prediction gets both agents."""
    from ml.config import settings
    from ml.feedback.store import champion_labels, record_feedback

    cfg = settings()
    labels = sorted(champion_labels(cfg, MODEL))
    items, agreed = [], 0
    for k, day in enumerate(days):
        for i, item in enumerate(answered[day][:12]):
            predicted = item["label"]
            confirm = i % 3 != k % 3  # two thirds confirmed, varying by day
            label = predicted if confirm else next(x for x in labels if x != predicted)
            agreed += label == predicted
            items.append({"prediction_id": item["prediction_id"], "label": label,
                          "agent_id": AGENTS[i % 2], "note": None})  # fmt: skip
        second = answered[day][0]  # a second agent, who disagrees with the model
        other = next(x for x in labels if x != second["label"])
        items.append({"prediction_id": second["prediction_id"], "label": other,
                      "agent_id": AGENTS[1], "note": "customer wrote again"})  # fmt: skip
    result = record_feedback(cfg, MODEL, items, new_labels=False)
    assert not result.rejected, [o.as_dict() for o in result.rejected]
    return len(items), agreed


def build(state: PipelineState, today: date | None = None) -> Production:
    days = production_days(today)
    with pipeline_env(state.home):
        requests = _requests(days)
        answered = _log_predictions(requests)
        feedback_days = days[:3]
        corrections, agreed = _feedback(answered, feedback_days)
    return Production(
        days,
        days[SHIFTED],
        days[-1],
        {d: len(t) for d, t in requests.items()},
        feedback_days,
        corrections,
        agreed,
    )


def monitor(state: PipelineState, production: Production, registry_url: str) -> list[dict]:
    """The monitoring DAG's function for each production day, its rows in `registry_url`
    (a copy of the state's registry) and its reports in the state's home; the rows."""
    from ml.monitoring.run import monitor_day
    from ml.monitoring.store import monitoring_days

    with pipeline_env(state.home), pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTENTFLOW_REGISTRY_URL", registry_url)
        mp.setenv("INTENTFLOW_DRIFT_MIN_PREDICTIONS", MIN_PREDICTIONS)
        from ml.config import settings

        for day in production.days:
            monitor_day(MODEL, day, settings())
    return monitoring_days(registry_url, MODEL)


def report_path(state: PipelineState, day: date) -> Path:
    return state.home / "reports" / "monitoring" / MODEL / f"{day}.html"

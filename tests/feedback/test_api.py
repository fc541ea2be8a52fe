"""POST /v1/models/{name}/feedback on the real application (FastAPI's test client runs its
lifespan: the champion loaded from a real registry, the prediction log, the group commit),
serving the session's tiny BERT (conftest's tiny_artifact) as intent:1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml.config import ServeSettings, settings
from ml.feedback.table import FeedbackTable

TOKEN = "feedback-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PERSONAL = "I lost my card, mail ann.lee@example.com"


def register_champion(artifact: dict[str, Any]) -> None:
    from ml.registry.store import Registry

    with Registry(settings().registry_url) as registry:
        registry.register_version(
            "intent",
            artifact_uri=str(artifact["artifact_dir"]),
            artifact_sha256=artifact["artifact_sha256"],
            base_model="tiny",
            data_snapshot_hash="0" * 64,
            params={},
            lineage={},
            metrics={"test": {"accuracy": 1.0}},
        )
        registry.set_alias("intent", "champion", 1, actor="test", reason="serve it")


@pytest.fixture
def client(intentflow_home: Path, tiny_artifact: dict[str, Any]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from ml.serving.app import create_app

    register_champion(tiny_artifact)
    serve = ServeSettings(
        tokens=(TOKEN,), models=("intent",), runtime="torch", threads=1, log_flush_s=0.2
    )
    app = create_app(settings(), serve)
    with TestClient(app) as test_client:
        deadline = time.time() + 120
        while test_client.get("/ready").json()["status"] != "ready":
            assert time.time() < deadline, test_client.get("/ready").json()
            time.sleep(0.1)
        yield test_client


def predict(client: Any, *texts: str) -> list[dict[str, Any]]:
    answer = client.post("/v1/models/intent/predict", json={"texts": list(texts)}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def feedback(client: Any, body: Any) -> Any:
    return client.post("/v1/models/intent/feedback", json=body, headers=AUTH)


def test_correct_a_prediction(client: Any) -> None:
    (p,) = predict(client, PERSONAL)  # corrected at once: still in the log's buffer
    body = {"prediction_id": p["prediction_id"], "label": "refund_request", "agent_id": "ann"}
    first = feedback(client, {**body, "note": "she wrote from ann.lee@example.com"})
    assert first.status_code == 201, first.text
    assert first.json()["results"][0]["status"] == "created"
    again = feedback(client, body)  # a retry: already recorded
    assert again.status_code == 200 and again.json()["summary"]["unchanged"] == 1
    changed = feedback(client, {**body, "label": "password_reset"})
    assert changed.status_code == 201 and changed.json()["results"][0]["status"] == "replaced"
    rows = FeedbackTable(settings().feedback).read().to_pylist()
    assert len(rows) == 1 and rows[0]["label"] == "password_reset"
    assert rows[0]["predicted_label"] == p["label"] and rows[0]["version"] == 1
    assert "ann.lee" not in str(rows)  # the note is redacted, the text never stored here


def test_refusals(client: Any) -> None:
    (p,) = predict(client, PERSONAL)
    pid = p["prediction_id"]
    unknown = feedback(client, {"prediction_id": "nope", "label": "lost_card", "agent_id": "a"})
    assert unknown.status_code == 404
    assert "no prediction 'nope' of model 'intent'" in unknown.json()["detail"]
    outside = feedback(client, {"prediction_id": pid, "label": "astrology", "agent_id": "a"})
    assert outside.status_code == 422 and "taxonomy" in outside.json()["detail"]
    missing = feedback(client, {"prediction_id": pid, "label": "lost_card"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "agent_id"
    # A batch is all or none: one bad item and nothing is written.
    batch = {
        "items": [
            {"prediction_id": pid, "label": "lost_card", "agent_id": "a"},
            {"prediction_id": pid, "label": "astrology", "agent_id": "b"},
        ]
    }
    refused = feedback(client, batch)
    assert refused.status_code == 422 and [e["index"] for e in refused.json()["errors"]] == [1]
    assert FeedbackTable(settings().feedback).read().num_rows == 0
    no_token = client.post("/v1/models/intent/feedback", json=batch["items"][0])
    assert no_token.status_code == 401
    other = client.post("/v1/models/nope/feedback", json=batch["items"][0], headers=AUTH)
    assert other.status_code == 404
    assert client.post("/v1/models/intent/feedback", content=b"{", headers=AUTH).status_code == 400
    for answer in (unknown, outside, missing, refused):
        assert "ann.lee" not in answer.text and "lost my card" not in answer.text
    ok = feedback(client, {"items": batch["items"][:1]})
    assert ok.status_code == 201
    assert "/v1/models/{name}/feedback" in client.get("/openapi.json").json()["paths"]


def concurrently(client: Any, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """The bodies posted at once (the app's own ASGI interface, one request per task)."""

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(
                *(http.post("/v1/models/intent/feedback", json=b, headers=AUTH) for b in bodies)
            )

    return asyncio.run(post_all())


def test_group_commit(client: Any) -> None:
    predictions = predict(client, *(f"my card {i} is lost" for i in range(40)))
    bodies = [
        {"prediction_id": p["prediction_id"], "label": "lost_card", "agent_id": f"agent-{i}"}
        for i, p in enumerate(predictions)
    ]
    writer = client.app.state.service.feedback
    answers = concurrently(client, bodies)
    assert [a.status_code for a in answers] == [201] * 40
    assert FeedbackTable(settings().feedback).read().num_rows == 40
    # 40 requests, far fewer commits: each carried the requests queued while the last ran.
    assert 1 <= writer.commits < 20


def test_flood_is_refused_not_crashed(client: Any) -> None:
    predictions = predict(client, *(f"refund {i} please" for i in range(30)))
    writer = client.app.state.service.feedback
    writer.limit = 4  # a small queue, so 30 requests at once overflow it
    bodies = [
        {"prediction_id": p["prediction_id"], "label": "refund_request", "agent_id": "ann"}
        for p in predictions
    ]
    answers = concurrently(client, bodies)
    codes = [a.status_code for a in answers]
    assert set(codes) <= {201, 429} and 429 in codes and 201 in codes
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 429)
    assert FeedbackTable(settings().feedback).read().num_rows == codes.count(201)
    assert client.get("/ready").json()["status"] == "ready"
    # The refused ones succeed on a retry.
    writer.limit = 10_000
    retried = [feedback(client, b) for b, code in zip(bodies, codes, strict=True) if code == 429]
    assert all(a.status_code == 201 for a in retried)
    assert FeedbackTable(settings().feedback).read().num_rows == 30

"""`intentflow serve` as a real uvicorn process on the pipeline state's registered models
(tests/pipeline_state.py: intent:1 champion and intent:2 challenger, entities:1, answers:1,
faq:1, each trained by the pipeline's own code with its ONNX form).

Each server gets a private copy of the registry and writes its prediction log under its own
data folder; requests go over HTTP from this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from pipeline_state import INTENTFLOW_ENV, PipelineState, registry_copy

REPO = Path(__file__).resolve().parents[2]
TOKEN = "service-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A message with personal data: never in the server's log, only redacted in the lake.
PERSONAL = "I lost my card, write to ann.lee@example.com please"


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    registry_url: str
    data: Path

    def post(self, model: str, payload: Any, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", AUTH)
        return httpx.post(
            f"{self.url}/v1/models/{model}/predict", json=payload, timeout=60, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=60, **kwargs)

    def predictions(self) -> list[dict[str, Any]]:
        files = sorted((self.data / "lake" / "predictions").rglob("*.parquet"))
        return [row for f in files for row in pq.read_table(f).to_pylist()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    state: PipelineState, folder: Path, env: dict[str, str] | None = None, ready: str = "ready"
) -> Server:
    """A server on a copy of the state's registry; returns once /ready says `ready`."""
    port, data = free_port(), folder / "data"
    registry = registry_copy(state, folder / "registry")
    base = {k: v for k, v in os.environ.items() if k not in INTENTFLOW_ENV}
    full_env = {
        **base,
        "PYTHONPATH": str(REPO),
        "INTENTFLOW_HOME": str(state.home),
        "INTENTFLOW_REGISTRY_URL": registry,
        "INTENTFLOW_DATA_URL": str(data),
        "INTENTFLOW_SERVE_TOKENS": TOKEN,
        "INTENTFLOW_SERVE_MODELS": "intent,entities,answers",
        "INTENTFLOW_SERVE_POLL_S": "1",
        "INTENTFLOW_SERVE_THREADS": "1",
        **(env or {}),
    }
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        f"http://127.0.0.1:{port}", proc, log, full_env["INTENTFLOW_REGISTRY_URL"], data
    )
    wait_for(server, ready)
    return server


def wait_for(server: Server, status: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.time() + timeout
    seen: Any = None
    while time.time() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(
                f"server exited {server.proc.returncode}: {server.log.read_text()}"
            )
        try:
            seen = server.get("/ready").json()
            if seen["status"] == status:
                return seen
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/ready never said {status!r}; last: {seen}\n{server.log.read_text()}")


def stop_server(server: Server) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    return server.proc.returncode


@pytest.fixture(scope="module")
def served(
    pipeline_state: PipelineState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server for the tests that do not change its registry."""
    server = start_server(pipeline_state, tmp_path_factory.mktemp("served"))
    yield server
    stop_server(server)


# --- predict, for each task type ------------------------------------------------------------


def test_predict_for_every_task_type(served: Server, pipeline_state: PipelineState) -> None:
    from ml.registry.store import Registry

    with Registry(served.registry_url) as registry:
        champions = {
            m: registry.resolve(f"{m}@champion") for m in ("intent", "entities", "answers")
        }

    intent = served.post("intent", {"texts": [PERSONAL, "refund please"], "top_k": 2})
    assert intent.status_code == 200, intent.text
    body = intent.json()
    assert (body["model"], body["version"], body["task"]) == (
        "intent",
        champions["intent"].version,
        "intent",
    )
    assert body["runtime"] == "onnx-int8"
    labels = set(champions["intent"].metrics["test"]["per_class"])
    for p in body["predictions"]:
        # An intent, or out_of_scope with the best intent beside it (ml.tasks.intent.out_of_scope).
        best = p["in_scope_intent"]
        assert len(p["prediction_id"]) == 32 and best in labels
        assert p["label"] == ("out_of_scope" if p["out_of_scope"] else best)
        assert isinstance(p["oos_score"], float) and isinstance(p["oos_threshold"], float)
        assert 0 <= p["confidence"] <= 1 and len(p["top_k"]) == 2
        assert p["top_k"][0] == {"label": best, "confidence": p["confidence"]}
        assert "text" not in p
    assert len({p["prediction_id"] for p in body["predictions"]}) == 2

    entities = served.post("entities", {"texts": ["cancel order 12345678 please"]})
    assert entities.status_code == 200, entities.text
    assert entities.json()["task"] == "entities"
    [spans] = [p["spans"] for p in entities.json()["predictions"]]
    assert all({"type", "start", "end", "score"} <= set(s) for s in spans)

    answers = served.post("answers", {"texts": ["where is my order 1001"], "top_k": 3})
    assert answers.status_code == 200, answers.text
    [ranked] = [p["answers"] for p in answers.json()["predictions"]]
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"]
    assert {"answer_id", "answer", "score"} <= set(ranked[0])

    listed = served.get("/v1/models", headers=AUTH).json()["models"]
    assert {m["name"]: m["loaded"]["version"] for m in listed} == {
        m: v.version for m, v in champions.items()
    }
    # Every task type on the artifact's optimised CPU form (ml.artifact.optimised).
    assert {m["loaded"]["runtime"] for m in listed} == {"onnx-int8"}


def test_the_optimised_runtime_answers_as_torch_does(
    pipeline_state: PipelineState, intentflow_home: Path
) -> None:
    """The ONNX int8 form the artifact carries gives the labels the torch weights give, on the
    intent model the service loads (within int8 rounding of the probabilities)."""
    from ml.config import settings
    from ml.registry.store import Registry
    from ml.serving.models import load_served

    with Registry(pipeline_state.registry_url) as registry:
        version = registry.resolve("intent@champion")
    texts = ["lost card stolen", "refund money back please", "hello", PERSONAL] * 3
    cfg = settings()
    torch_run = load_served(version, cfg, "torch", 1).predict(texts, 3)
    onnx = load_served(version, cfg, "onnx-int8", 1)
    assert onnx.runtime == "onnx-int8"
    for a, b in zip(torch_run, onnx.predict(texts, 3), strict=True):
        assert abs(a["probability"] - b["probability"]) < 0.05
        if a["top_k"][0]["probability"] - a["top_k"][1]["probability"] > 0.05:
            assert a["intent"] == b["intent"]
    # The answers model: its ONNX form encodes queries as its weights do.
    with Registry(pipeline_state.registry_url) as registry:
        answers = registry.resolve("answers@champion")
    queries = ["where is my order 1001", "i want my money back", "cannot log in"]
    by_torch = load_served(answers, cfg, "torch", 1).predict(queries, 3)
    by_onnx = load_served(answers, cfg, "onnx-int8", 1).predict(queries, 3)
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert abs(a["answers"][0]["score"] - b["answers"][0]["score"]) < 0.05


# --- auth, limits and bad input ---------------------------------------------------------------


def test_no_token_no_prediction(served: Server) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        refused = served.post("intent", {"texts": ["hi"]}, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert served.get("/v1/models", headers=headers).status_code == 401
    # Unknown models are not revealed without a token either.
    assert served.post("nope", {"texts": ["hi"]}, headers={}).status_code == 401
    for open_path in ("/live", "/ready", "/metrics", "/docs", "/openapi.json"):
        assert served.get(open_path).status_code == 200, open_path
    api = served.get("/openapi.json").json()
    assert "/v1/models/{name}/predict" in api["paths"]


def test_bad_input_gets_a_clear_4xx_and_the_service_keeps_serving(served: Server) -> None:
    url = f"{served.url}/v1/models/intent/predict"
    cases = [
        ({"json": {"texts": [""]}}, 422, "texts[0] is empty"),
        ({"json": {"texts": ["x" * 1_000_000]}}, 422, "1000000 characters; the limit is 2000"),
        ({"json": {"texts": ["hi"] * 10_000}}, 422, "holds 10000 texts; the limit is 256"),
        ({"content": b'{"texts": ["caf\xe9"]}'}, 400, "not UTF-8"),
        ({"content": b'{"texts": ["hi"'}, 400, "not JSON"),
        ({"json": {"texts": ["hi"], "version": 99}}, 404, "version 99 is not served"),
        ({"content": b"x" * (served_limit() + 1)}, 413, "larger than"),
    ]
    for kwargs, status, says in cases:
        answer = httpx.post(url, headers=AUTH, timeout=60, **kwargs)
        assert (answer.status_code, says in answer.json()["detail"]) == (status, True), answer.text
    unknown = served.post("nope", {"texts": ["hi"]})
    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["detail"]
    assert served.post("intent", {"texts": ["still serving"]}).status_code == 200


def served_limit() -> int:
    from ml.config import ServeSettings

    return ServeSettings(tokens=("x",)).max_body_bytes


def test_metrics_count_requests_batches_labels_and_versions(served: Server) -> None:
    assert served.post("intent", {"texts": ["refund please", "lost card"]}).status_code == 200
    served.post("intent", {"texts": [""]})
    text = served.get("/metrics").text
    for line in (
        'intentflow_serve_requests_total{model="intent",status="200"}',
        'intentflow_serve_requests_total{model="intent",status="422"}',
        'intentflow_serve_errors_total{model="intent",reason="invalid"}',
        'intentflow_serve_request_seconds_bucket{le="+Inf",model="intent"}',
        'intentflow_serve_batch_texts_count{model="intent"}',
        'intentflow_serve_model_version{model="intent",runtime="onnx-int8"} 1.0',
        "intentflow_serve_registry_up 1.0",
        'intentflow_serve_predictions_total{label="',
    ):
        assert line in text, line


def test_customer_text_stays_out_of_the_server_log(served: Server) -> None:
    assert served.post("intent", {"texts": [PERSONAL]}).status_code == 200
    served.post("intent", {"texts": [PERSONAL * 100]})  # refused: too long
    log = served.log.read_text()
    assert "ann.lee" not in log and "lost my card" not in log and TOKEN not in log


# --- hot swap -------------------------------------------------------------------------------------


def test_a_promotion_during_load_switches_versions_without_a_failed_request(
    pipeline_state: PipelineState, tmp_path: Path
) -> None:
    from ml.registry.store import Registry

    server = start_server(pipeline_state, tmp_path, {"INTENTFLOW_SERVE_MODELS": "intent"})
    versions: list[list[int]] = [[] for _ in range(6)]
    failures: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(timeout=60, headers=AUTH) as http:
            while not stop.is_set():
                try:
                    answer = http.post(
                        f"{server.url}/v1/models/intent/predict", json={"texts": [f"refund {k}"]}
                    )
                except httpx.TransportError as exc:
                    failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                else:
                    versions[k].append(answer.json()["version"])

    clients = [threading.Thread(target=client, args=(k,)) for k in range(len(versions))]
    try:
        for c in clients:
            c.start()
        until(lambda: all(len(v) >= 3 for v in versions), "every client served by version 1")
        with Registry(server.registry_url) as registry:
            registry.set_alias("intent", "champion", 2, actor="test", reason="promote under load")
        until(lambda: all(v[-3:] == [2, 2, 2] for v in versions), "every client on version 2")
    finally:
        stop.set()
        for c in clients:
            c.join()
        stop_server(server)
    assert failures == []
    for seen in versions:
        switch = seen.index(2)
        assert set(seen[:switch]) == {1} and set(seen[switch:]) == {2}, seen


def until(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def test_registry_down_keeps_serving_and_ready_says_degraded(
    pipeline_state: PipelineState, tmp_path: Path
) -> None:
    """The registry (SQLite, opened read-write only if it exists) disappears and comes back."""
    registry = tmp_path / "registry" / "registry.db"
    server = start_server(
        pipeline_state,
        tmp_path,
        {
            "INTENTFLOW_SERVE_MODELS": "intent",
            "INTENTFLOW_REGISTRY_URL": f"sqlite:///file:{registry}?mode=rw&uri=true",
        },
    )
    try:
        registry.rename(registry.with_suffix(".away"))
        degraded = wait_for(server, "degraded", timeout=60)
        assert degraded["problems"] == ["registry unreachable"]
        answer = server.post("intent", {"texts": ["refund please"]})
        assert answer.status_code == 200 and answer.json()["version"] == 1
        assert "intentflow_serve_registry_up 0.0" in server.get("/metrics").text
        registry.with_suffix(".away").rename(registry)
        wait_for(server, "ready", timeout=60)
    finally:
        stop_server(server)


def test_a_champion_that_fails_its_hash_is_refused_and_the_rest_serves(
    pipeline_state: PipelineState, tmp_path: Path
) -> None:
    """An artifact changed after registration: as the first champion of a model (503, nothing
    else to serve), and as a promoted version (the loaded one keeps serving)."""
    from ml.registry.store import Registry

    server = start_server(
        pipeline_state,
        tmp_path,
        {"INTENTFLOW_SERVE_MODELS": "intent,entities,tampered"},
        "degraded",
    )
    try:
        with Registry(server.registry_url) as registry:
            good = registry.resolve("entities@champion")
            tampered = tmp_path / "tampered"
            shutil.copytree(good.artifact_uri, tampered)
            with (tampered / "README.md").open("a") as card:
                card.write("\nedited after registration\n")
            fields = {
                "artifact_uri": str(tampered),
                "artifact_sha256": good.artifact_sha256,
                "base_model": good.base_model,
                "data_snapshot_hash": good.data_snapshot_hash,
                "params": {},
                "lineage": {},
                "metrics": {},
                "task_type": "entities",
            }
            for model in ("tampered", "entities"):
                new = registry.register_version(model, **fields)
                registry.set_alias(model, "champion", new.version, actor="test", reason="tamper")

        def refused() -> bool:
            problems = server.get("/ready").json()["problems"]
            return sum("integrity" in p for p in problems) == 2

        until(refused, "both tampered champions refused")
        ready = server.get("/ready").json()
        assert ready["status"] == "degraded"
        answer = server.post("tampered", {"texts": ["cancel order 12345678"]})
        assert answer.status_code == 503 and "integrity" in answer.json()["detail"]
        kept = server.post("entities", {"texts": ["cancel order 12345678"]})
        assert kept.status_code == 200 and kept.json()["version"] == good.version
        assert server.post("intent", {"texts": ["refund please"]}).status_code == 200
    finally:
        stop_server(server)


# --- the prediction log ---------------------------------------------------------------------------


def test_sigterm_writes_every_prediction_to_the_lake(
    pipeline_state: PipelineState, tmp_path: Path
) -> None:
    server = start_server(
        pipeline_state,
        tmp_path,
        {"INTENTFLOW_SERVE_MODELS": "intent,entities", "INTENTFLOW_SERVE_LOG_FLUSH_S": "3600"},
    )
    ids = []
    for i in range(5):
        answer = server.post("intent", {"texts": [PERSONAL, f"refund number {i}"]})
        ids += [p["prediction_id"] for p in answer.json()["predictions"]]
    spans = server.post("entities", {"texts": ["my name is Ann Lee, order 12345678"]})
    ids += [p["prediction_id"] for p in spans.json()["predictions"]]
    assert server.predictions() == []  # buffered: the flush interval is an hour
    # uvicorn shuts down gracefully, then re-raises the signal: killed by SIGTERM, as a
    # supervisor expects, after the application's shutdown (the log's last flush).
    assert stop_server(server) == -signal.SIGTERM
    assert "Application shutdown complete" in server.log.read_text()
    rows = {r["prediction_id"]: r for r in server.predictions()}
    assert set(rows) == set(ids)
    personal = [r for r in rows.values() if "write to" in r["text"]]
    assert len(personal) == 5
    for row in personal:
        assert "ann.lee" not in row["text"] and "[EMAIL]" in row["text"]
        assert len(row["subject_keys"]) == 1 and row["model"] == "intent" and row["version"] == 1
        assert row["label"] and 0 <= row["confidence"] <= 1 and row["top_k"]
    [tagged] = [r for r in rows.values() if r["task"] == "entities"]
    assert "Ann" not in json.dumps(tagged, default=str)
    # The erasure key of that e-mail, as `intentflow erase --email` computes it.
    from ml.config import settings
    from ml.subjects import pii_key, subject_key

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTENTFLOW_HOME", str(pipeline_state.home))
        mp.delenv("INTENTFLOW_DATA_URL", raising=False)
        key = subject_key("email", "ann.lee@example.com", pii_key(settings()))
    assert all(r["subject_keys"] == [key] for r in personal)

"""The FastAPI application: routes, and what starts and stops with it.

    POST /v1/models/{name}/predict   {"texts": [...]} -> the champion's predictions (bearer token)
    POST /v1/models/{name}/feedback  an agent's correction of a prediction (ml.serving.feedback)
    GET  /v1/models                  the served models and their loaded versions (bearer token)
    GET  /live  /ready  /metrics     liveness, readiness (ready, degraded, unavailable), Prometheus
    GET  /docs                       the OpenAPI documentation

Started: the slots of the served models and their registry poll (ml.serving.champions), one
inference thread, the prediction log's writer, the feedback's group commit (ml.feedback.writer). Stopped (uvicorn's shutdown, after requests in
flight are answered; SIGTERM included): the poll and batchers, then the log's last flush.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.requests import ClientDisconnect

from ml.config import ConfigError, ServeSettings, Settings, serve_settings, settings
from ml.serving import metrics
from ml.serving.batching import Overloaded
from ml.serving.champions import Champions, Unavailable
from ml.serving.prediction_log import Logged, PredictionLog, PredictionTable
from ml.serving.requests import ApiError, check_token, parse_predict, read_body
from ml.serving.responses import api_prediction, log_fields
from ml.serving.schemas import (
    ErrorResponse,
    FeedbackBatch,
    FeedbackItem,
    FeedbackRefusal,
    FeedbackResponse,
    PredictRequest,
    PredictResponse,
)

if TYPE_CHECKING:
    from ml.feedback.writer import FeedbackWriter

log = logging.getLogger(__name__)

# Documents the scheme at /docs ("Authorize"); the check itself is requests.check_token.
BEARER = HTTPBearer(auto_error=False, description="A token of INTENTFLOW_SERVE_TOKENS.")
Documented = Annotated[Any, Security(BEARER)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "the body is not UTF-8 JSON",
        401: "no or a wrong bearer token",
        404: "unknown model, or another version than the one asked for",
        413: "body too large",
        422: "the request breaks the contract or a limit (the message names the field)",
        503: "the model is not loaded (its champion failed to load) or is overloaded",
    }.items()
}


@dataclass
class Service:
    """What one worker process runs besides its routes."""

    cfg: Settings
    serve: ServeSettings
    champions: Champions
    executor: ThreadPoolExecutor
    log: PredictionLog | None
    feedback: FeedbackWriter | None = None


def served_names(cfg: Settings, serve: ServeSettings) -> list[str]:
    """INTENTFLOW_SERVE_MODELS (any registered model's name), else every configured model."""
    from ml.registry.names import InvalidNameError, check_name
    from ml.retrain.specs import configured_models

    if serve.models is None:
        return [m.name for m in configured_models(cfg)]
    try:
        return [check_name("model", name) for name in serve.models]
    except InvalidNameError as exc:
        raise ConfigError(f"INTENTFLOW_SERVE_MODELS: {exc}") from None


def start_service(cfg: Settings, serve: ServeSettings) -> Service:
    """Threads for inference, the champions' slots and poll, the prediction log (in the running
    event loop)."""
    from ml.serving.runtime import set_threads
    from ml.subjects import pii_key
    from ml.threads import available_cpus

    threads = serve.threads or max(available_cpus() // serve.workers, 1)
    set_threads(threads)
    serve = dataclasses.replace(serve, threads=threads)
    # One inference thread: batches of every model take turns on the cores (two at once would
    # only share them, each slower).
    executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
    champions = Champions(served_names(cfg, serve), cfg, serve, executor)
    prediction_log = None
    if serve.prediction_log:
        prediction_log = PredictionLog(
            PredictionTable(cfg.predictions),
            pii_key(cfg),
            flush_s=serve.log_flush_s,
            max_rows=serve.log_max_rows,
            on_written=metrics.LOG_ROWS.inc,
            on_failed=metrics.LOG_FAILURES.inc,
            on_dropped=metrics.LOG_DROPPED.inc,
        )
        prediction_log.start()
    champions.start()
    return Service(cfg, serve, champions, executor, prediction_log, _feedback(cfg, prediction_log))


def _feedback(cfg: Settings, prediction_log: PredictionLog | None) -> FeedbackWriter:
    """The feedback route's writer: predictions looked up in the log's buffer, then the table."""
    from ml.feedback import store
    from ml.feedback.lookup import PredictionIndex, from_logged
    from ml.feedback.writer import FeedbackWriter, max_pending

    def pending(ids: set[str]) -> dict:
        return {} if prediction_log is None else from_logged(prediction_log.pending(ids))

    writer = FeedbackWriter(
        cfg,
        PredictionIndex(cfg.predictions, store.lookup_days()),
        new_labels=store.allow_new_labels(),
        pending=pending,
        limit=max_pending(),
        on_commit=lambda requests, rows: metrics.FEEDBACK_COMMITS.inc(),
    )
    writer.start()
    return writer


async def stop_service(service: Service) -> None:
    await service.champions.stop()
    service.executor.shutdown(wait=True)
    if service.feedback is not None:
        service.feedback.close()  # the queued corrections are answered first
    if service.log is not None:
        service.log.close()  # the last rows: nothing answered is lost on shutdown
    log.info("stopped")


def create_app(cfg: Settings | None = None, serve: ServeSettings | None = None) -> FastAPI:
    """The application (uvicorn's factory: `ml.serving.app:create_app`)."""
    cfg = cfg or settings()
    serve = serve or serve_settings()
    _say_what_is_served()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = start_service(cfg, serve)
        try:
            yield
        finally:
            await stop_service(app.state.service)

    app = FastAPI(
        title="Intentflow",
        summary="The champion of every configured model: intent, entities, suggested answers.",
        version="1",
        lifespan=lifespan,
    )
    _routes(app)
    return app


def _say_what_is_served() -> None:
    """This package's INFO lines (loads, swaps, the registry's health) on stderr, in a worker
    process of `--workers N` too, where no command configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("ml.serving").setLevel(logging.INFO)


def _routes(app: FastAPI) -> None:
    def service() -> Service:
        return app.state.service

    @app.get("/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process answers (restart it if not)."""
        return {"status": "live"}

    @app.get("/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """200 `ready`, or `degraded` (serving what is loaded; `problems` say why: registry
        unreachable, a champion that failed to load); 503 `unavailable` (nothing loaded)."""
        status, problems = service().champions.readiness()
        code = 503 if status == "unavailable" else 200
        return JSONResponse({"status": status, "problems": problems}, status_code=code)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        """Prometheus text format (ml.serving.metrics)."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/v1/models", tags=["models"], responses={401: ERRORS[401]})
    async def models(request: Request, _: Documented = None) -> JSONResponse:
        """The served models: the champion in the registry and the version loaded."""
        try:
            check_token(request.headers.get("authorization"), service().serve.tokens)
        except ApiError as exc:
            return _refusal(exc, "-")
        return JSONResponse({"models": service().champions.describe()})

    @app.post(
        "/v1/models/{name}/predict",
        tags=["models"],
        response_model=PredictResponse,
        responses={code: ERRORS[code] for code in (400, 401, 404, 413, 422, 503)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(name: str, request: Request, _: Documented = None) -> Response:
        """The champion's prediction for each text; the answer names the version that gave it
        and a prediction id per text."""
        return await _predict(service(), name, request)

    @app.post(
        "/v1/models/{name}/feedback",
        tags=["feedback"],
        response_model=FeedbackResponse,
        status_code=201,
        responses={
            200: {"model": FeedbackResponse, "description": "already recorded (a retry)"},
            400: ERRORS[400],
            401: ERRORS[401],
            404: {"model": FeedbackRefusal, "description": "unknown model or prediction id"},
            413: ERRORS[413],
            422: {
                "model": FeedbackRefusal,
                "description": "a field breaks the contract, or a label outside the taxonomy",
            },
            429: {"model": ErrorResponse, "description": "too many corrections queued: retry"},
            503: {"model": ErrorResponse, "description": "the write failed: retry"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                FeedbackItem.model_json_schema(),
                                _batch_schema(),
                            ]
                        }
                    }
                },
            }
        },
    )
    async def feedback(name: str, request: Request, _: Documented = None) -> Response:
        """An agent's correction of a prediction (or a batch, all or none): stored in the
        lake's `feedback` table, once per prediction and agent; the next retrain learns it.
        docs/feedback.md."""
        from ml.serving.feedback import post_feedback

        return await post_feedback(service(), name, request)


async def _predict(service: Service, name: str, request: Request) -> Response:
    arrived, tick = datetime.now(UTC), time.perf_counter()
    slots = service.champions.slots
    label = name if name in slots else "unknown"  # bounded metric labels
    try:
        check_token(request.headers.get("authorization"), service.serve.tokens)
        if name not in slots:
            raise ApiError(404, f"unknown model {name!r}; served: {', '.join(slots)}", "not_found")
        body = await read_body(
            request.stream(), request.headers.get("content-length"), service.serve.max_body_bytes
        )
        asked = parse_predict(body, service.serve)
        slot = slots[name]
        if slot.served is None:
            raise Unavailable(name, slot.problem)
        _check_version(name, asked.version, slot.served.version)
        served, raw = await slot.batcher.submit(asked.texts, asked.top_k)
        _check_version(name, asked.version, served.version)
    except ApiError as exc:
        return _refusal(exc, label)
    except Overloaded:
        return _refusal(
            ApiError(
                503,
                f"model {name!r} is overloaded; retry shortly",
                "overloaded",
                {"Retry-After": "1"},
            ),
            label,
        )
    except Unavailable as exc:
        return _refusal(ApiError(503, str(exc), "unavailable"), label)
    except ClientDisconnect:  # the caller went away mid-body: nobody reads the answer
        return _refusal(ApiError(400, "the request body was cut short", "body"), label)
    except Exception as exc:  # a bug: say so without the texts (they are customers' messages)
        log.error(
            "prediction failed for model %s: %s\n%s",
            name,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return _refusal(ApiError(500, "the prediction failed", "failed"), label)
    items = [api_prediction(p, uuid.uuid4().hex, asked.top_k) for p in raw]
    latency_ms = (time.perf_counter() - tick) * 1000
    metrics.LATENCY.labels(name).observe(latency_ms / 1000)
    metrics.REQUESTS.labels(name, "200").inc()
    for item in items:
        metrics.PREDICTIONS.labels(name, str(item.get("label", "-"))).inc()
    if service.log is not None:
        service.log.add(
            [
                Logged(
                    item["prediction_id"],
                    arrived,
                    name,
                    served.version,
                    served.task,
                    served.runtime,
                    text,
                    log_fields(item),
                    latency_ms,
                )
                for text, item in zip(asked.texts, items, strict=True)
            ]
        )
    payload = {
        "model": name,
        "version": served.version,
        "task": served.task,
        "runtime": served.runtime,
        "predictions": items,
    }
    return JSONResponse(payload)


def _batch_schema() -> dict[str, Any]:
    """FeedbackBatch's schema with its items inline (/docs resolves no nested $defs)."""
    schema = FeedbackBatch.model_json_schema()
    schema.pop("$defs", None)
    schema["properties"]["items"]["items"] = FeedbackItem.model_json_schema()
    return schema


def _check_version(name: str, asked: int | None, serving: int) -> None:
    if asked is not None and asked != serving:
        raise ApiError(
            404,
            f"model {name!r} version {asked} is not served (serving version {serving})",
            "not_found",
        )


def _refusal(exc: ApiError, model: str) -> JSONResponse:
    metrics.REQUESTS.labels(model, str(exc.status)).inc()
    metrics.ERRORS.labels(model, exc.reason).inc()
    return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

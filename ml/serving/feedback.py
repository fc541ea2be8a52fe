"""`POST /v1/models/{name}/feedback`: agents' corrections, through the group commit
(ml.feedback.writer). docs/feedback.md.

Answers: 201 (a correction created or replaced), 200 (all of them already there: a retry),
404 (unknown model, or a prediction id this model did not answer in the lookup window), 422
(a field breaks the contract, a label outside the taxonomy, a model that takes no labels),
429 (the queue is full: Retry-After), 503 (the write failed: retry; retries are idempotent).
A batch (`{"items": [...]}`) is written all or none; the refusal lists every bad item.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from ml.feedback.writer import Busy
from ml.serving import metrics
from ml.serving.requests import ApiError, check_token, read_body

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger(__name__)

MAX_ITEMS = 1000
MAX_BODY = MAX_ITEMS * 3000 + 4096


def served_labels(served: Any) -> frozenset[str]:
    """The labels a loaded intent model answers (its config's id2label)."""
    config = getattr(getattr(getattr(served, "loaded", None), "model", None), "config", None)
    return frozenset(str(v) for v in (getattr(config, "id2label", None) or {}).values())


async def post_feedback(service: Any, name: str, request: Request) -> JSONResponse:
    """The route's work; `service` is ml.serving.app.Service (not imported: no circle)."""
    label = name if name in service.champions.slots else "unknown"
    try:
        check_token(request.headers.get("authorization"), service.serve.tokens)
        slots = service.champions.slots
        if name not in slots:
            raise ApiError(404, f"unknown model {name!r}; served: {', '.join(slots)}", "not_found")
        served = slots[name].served
        if served is not None and served.task != "intent":
            raise ApiError(
                422,
                f"model {name!r} is a {served.task} model: feedback takes intent labels",
                "body",
            )
        if service.feedback is None:
            raise ApiError(503, "feedback is off on this service", "unavailable")
        body = await read_body(request.stream(), request.headers.get("content-length"), MAX_BODY)
        items = _items(body)
        future = service.feedback.submit(name, items, served_labels(served))
        result = await asyncio.wrap_future(future)
    except ApiError as exc:
        return _refused(exc.status, exc.message, label, exc.reason, headers=exc.headers)
    except Busy as exc:
        return _refused(
            429,
            "too many corrections waiting to be written; retry shortly",
            label,
            "overloaded",
            headers={"Retry-After": str(exc.retry_after)},
        )
    except Exception as exc:  # storage down: nothing was written for this request
        log.error("feedback for model %s failed: %s", name, type(exc).__name__)
        return _refused(
            503,
            "the correction could not be stored; retry (a retry is idempotent)",
            label,
            "failed",
            headers={"Retry-After": "5"},
        )
    rejected = result.rejected
    if rejected:
        code = 404 if all(o.code == 404 for o in rejected) else 422
        errors = [
            {
                k: v
                for k, v in o.as_dict().items()
                if k in ("index", "prediction_id", "field", "reason")
            }
            for o in rejected
        ]
        first = rejected[0]
        detail = f"item {first.index}: {first.field}: {first.reason}"
        if len(items) > 1:
            detail = f"{len(rejected)} of {len(items)} corrections refused, none written; {detail}"
        return _refused(code, detail, label, "feedback", errors=errors)
    summary = result.summary()
    results = [
        {
            "index": o.index,
            "prediction_id": o.prediction_id,
            "agent_id": o.agent_id,
            "status": o.status,
        }
        for o in result.outcomes
    ]
    code = 201 if summary["created"] or summary["replaced"] else 200
    metrics.FEEDBACK.labels(label, str(code)).inc()
    return JSONResponse({"model": name, "results": results, "summary": summary}, status_code=code)


def _items(body: bytes) -> list[Any]:
    """One correction (an object) or a batch ({"items": [...]}); the store checks the fields."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the body is not UTF-8 JSON", "body") from None
    if isinstance(payload, dict) and "items" in payload:
        items = payload["items"]
        if not isinstance(items, list) or not items:
            raise ApiError(422, "items: a non-empty list of corrections", "body")
        if len(items) > MAX_ITEMS:
            raise ApiError(422, f"items: at most {MAX_ITEMS} corrections a request", "body")
        if len(payload) > 1:
            raise ApiError(422, "a batch holds `items` only", "body")
        return items
    if not isinstance(payload, dict):
        raise ApiError(422, 'expected a correction object or {"items": [...]} (see /docs)', "body")
    return [payload]


def _refused(
    status: int,
    message: str,
    model: str,
    reason: str,  # the log's word for it
    headers: dict[str, str] | None = None,
    errors: list[dict] | None = None,
) -> JSONResponse:
    metrics.FEEDBACK.labels(model, str(status)).inc()
    body: dict[str, Any] = {"detail": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)

"""What a caller must send: a bearer token, and a prediction request within the limits.

Every refusal is an `ApiError` with its HTTP status and a message that says what to change;
none echoes the caller's texts or token (they would land in logs and proxies).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ml.config import ServeSettings

# The most labels or answers a request may ask for per text.
MAX_TOP_K = 100


class ApiError(Exception):
    """A refusal: HTTP `status`, a clear `message`, the metrics' `reason` word."""

    def __init__(
        self, status: int, message: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.headers = headers or {}


def check_token(authorization: str | None, tokens: tuple[str, ...]) -> None:
    """ApiError 401 unless `authorization` is `Bearer <one of tokens>`. Every token is
    compared in constant time (hmac.compare_digest), all of them, so the time taken says
    nothing about which or how much of one matched."""
    scheme, _, given = (authorization or "").partition(" ")
    ok = False
    if scheme.lower() == "bearer" and given.strip():
        candidate = given.strip().encode("utf-8")
        for token in tokens:
            ok |= hmac.compare_digest(candidate, token.encode("utf-8"))
    if not ok:
        raise ApiError(
            401,
            "missing or invalid bearer token (Authorization: Bearer <token>)",
            "auth",
            {"WWW-Authenticate": "Bearer"},
        )


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    top_k: int
    version: int | None  # the version the caller expects, when it names one
    received_at: datetime | None = None  # a replay's arrival time (INTENTFLOW_SERVE_REPLAY)


async def read_body(chunks: AsyncIterator[bytes], length: str | None, limit: int) -> bytes:
    """The request body, refused (413) once it exceeds `limit` bytes, before or while reading."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body larger than {limit} bytes", "too_large")


def parse_predict(body: bytes, cfg: ServeSettings) -> PredictRequest:
    """`{"texts": [...], "top_k": K, "version": V}` (top_k and version optional; a replaying
    service also takes `received_at`, an ISO 8601 time with its zone), checked
    against the limits: 400 for a body that is not UTF-8 JSON, 422 for one that breaks the
    contract or a limit, naming the field."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 (byte {exc.start})", "body") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "body"
        ) from None
    if not isinstance(payload, dict):
        raise _invalid('the body must be a JSON object: {"texts": ["..."]}')
    unknown = sorted(set(payload) - {"texts", "top_k", "version", "received_at"})
    if unknown:
        raise _invalid(f"unknown field(s) {unknown}: expected texts, top_k, version")
    texts = payload.get("texts")
    if not isinstance(texts, list) or not texts:
        raise _invalid('"texts" must be a non-empty list of strings')
    if len(texts) > cfg.max_texts:
        raise _invalid(f'"texts" holds {len(texts)} texts; the limit is {cfg.max_texts}')
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise _invalid(f"texts[{i}] is not a string")
        if not t.strip():
            raise _invalid(f"texts[{i}] is empty")
        if len(t) > cfg.max_chars:
            raise _invalid(
                f"texts[{i}] has {len(t)} characters; the limit is {cfg.max_chars} per text"
            )
    top_k = _integer(payload, "top_k", cfg.top_k, 1, MAX_TOP_K)
    version = _integer(payload, "version", None, 1, None)
    return PredictRequest(texts, top_k, version, _received_at(payload, cfg))


# A replayed time may run this far ahead of the service's clock (clock skew between hosts).
REPLAY_SKEW = timedelta(minutes=5)


def _received_at(payload: dict, cfg: ServeSettings) -> datetime | None:
    """A replay's `received_at`: only where INTENTFLOW_SERVE_REPLAY is on (else any caller
    could date predictions into another day of the log), with a zone, not in the future."""
    value = payload.get("received_at")
    if value is None:
        return None
    if not cfg.replay:
        raise _invalid(
            '"received_at" is accepted only by a replaying service (INTENTFLOW_SERVE_REPLAY)'
        )
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise _invalid(
            '"received_at" must be an ISO 8601 time with its zone, e.g. 2026-11-20T09:30:00Z'
        )
    when = when.astimezone(UTC)
    if when > datetime.now(UTC) + REPLAY_SKEW:
        raise _invalid('"received_at" is in the future')
    return when


def _integer(
    payload: dict, name: str, default: int | None, low: int, high: int | None
) -> int | None:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f'"{name}" must be an integer')
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _invalid(f'"{name}" must be {bounds}')
    return value


def _invalid(message: str) -> ApiError:
    return ApiError(422, message, "invalid")

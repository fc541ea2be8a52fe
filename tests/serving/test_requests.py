"""What a caller must send (ml.serving.requests): a bearer token, a body within the limits, and
a clear 4xx for everything else, never echoing the texts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from ml.config import ServeSettings
from ml.serving.requests import ApiError, check_token, parse_predict, read_body

TOKENS = ("first-token-0123456789", "second-token-0123456789")
LIMITS = ServeSettings(tokens=TOKENS, max_texts=4, max_chars=50)


def test_a_configured_bearer_token_passes_and_nothing_else_does() -> None:
    for token in TOKENS:
        check_token(f"Bearer {token}", TOKENS)
        check_token(f"bearer  {token} ", TOKENS)
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKENS[0]}",
        f"Bearer {TOKENS[0]}x",
        f"Bearer {TOKENS[0][:-1]}",
        TOKENS[0],
    ):
        with pytest.raises(ApiError) as refused:
            check_token(header, TOKENS)
        assert refused.value.status == 401
        assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
        assert TOKENS[0] not in refused.value.message


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_a_valid_request() -> None:
    asked = parse_predict(body({"texts": ["lost my card"], "top_k": 2, "version": 3}), LIMITS)
    assert (asked.texts, asked.top_k, asked.version) == (["lost my card"], 2, 3)
    default = parse_predict(body({"texts": ["a", "b"]}), LIMITS)
    assert (default.top_k, default.version) == (LIMITS.top_k, None)


SECRET_TEXT = "my card 4111 1111 1111 1111 is lost"


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b'{"texts": ["caf\xe9"]}', 400, "not UTF-8"),
        (b'{"texts": [', 400, "not JSON"),
        (b"", 400, "not JSON"),
        (body(["a"]), 422, "JSON object"),
        (body({}), 422, "non-empty list"),
        (body({"texts": []}), 422, "non-empty list"),
        (body({"texts": "a"}), 422, "non-empty list"),
        (body({"texts": [""]}), 422, "texts[0] is empty"),
        (body({"texts": ["ok", "  \n"]}), 422, "texts[1] is empty"),
        (body({"texts": ["ok", 3]}), 422, "texts[1] is not a string"),
        (body({"texts": ["x" * 51]}), 422, "texts[0] has 51 characters; the limit is 50"),
        (body({"texts": [SECRET_TEXT + "x" * 50]}), 422, "the limit is 50"),
        (body({"texts": ["a"] * 5}), 422, "holds 5 texts; the limit is 4"),
        (body({"texts": ["a"], "top_k": 0}), 422, '"top_k" must be between 1 and 100'),
        (body({"texts": ["a"], "top_k": "2"}), 422, '"top_k" must be an integer'),
        (body({"texts": ["a"], "top_k": True}), 422, '"top_k" must be an integer'),
        (body({"texts": ["a"], "version": 0}), 422, '"version" must be at least 1'),
        (body({"texts": ["a"], "labels": ["x"]}), 422, "unknown field(s) ['labels']"),
    ],
)
def test_bad_requests_get_a_clear_4xx_without_the_text(raw: bytes, status: int, says: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_predict(raw, LIMITS)
    assert refused.value.status == status
    assert says in refused.value.message
    assert "4111" not in refused.value.message and "lost" not in refused.value.message


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_a_body_over_the_limit_is_refused_before_or_while_reading() -> None:
    assert asyncio.run(read_body(chunks([b"ab", b"cd"]), "4", 4)) == b"abcd"
    with pytest.raises(ApiError) as declared:
        asyncio.run(read_body(chunks([]), "5", 4))  # Content-Length alone is enough
    with pytest.raises(ApiError) as streamed:
        asyncio.run(read_body(chunks([b"abc", b"de", b"never read"]), None, 4))
    assert declared.value.status == streamed.value.status == 413


def test_the_body_limit_fits_the_text_limits() -> None:
    """The largest request the limits allow, every character 4 UTF-8 bytes, is read."""
    texts = ["\U0001f600" * LIMITS.max_chars] * LIMITS.max_texts
    raw = json.dumps({"texts": texts, "top_k": 100, "version": 10**9}, ensure_ascii=False)
    assert len(raw.encode()) <= LIMITS.max_body_bytes
    assert len(parse_predict(raw.encode(), LIMITS).texts) == LIMITS.max_texts


def test_received_at_only_on_a_replaying_service() -> None:
    """A replay dates its predictions (INTENTFLOW_SERVE_REPLAY); any other service refuses."""
    import dataclasses
    from datetime import UTC, datetime

    payload = {"texts": ["hi"], "received_at": "2026-11-20T09:30:00Z"}
    with pytest.raises(ApiError) as refused:
        parse_predict(body(payload), LIMITS)
    assert refused.value.status == 422 and "INTENTFLOW_SERVE_REPLAY" in refused.value.message
    replaying = dataclasses.replace(LIMITS, replay=True)
    asked = parse_predict(body(payload), replaying)
    assert asked.received_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert parse_predict(body({"texts": ["hi"]}), replaying).received_at is None
    for bad in ("2026-11-20T09:30:00", "yesterday", 5, "2999-01-01T00:00:00Z"):
        with pytest.raises(ApiError) as refused:
            parse_predict(body({"texts": ["hi"], "received_at": bad}), replaying)
        assert refused.value.status == 422 and "received_at" in refused.value.message

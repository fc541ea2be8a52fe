"""The API's request and response shapes, for the OpenAPI documentation at `/docs`.

Requests are parsed by ml.serving.requests (clear 4xx messages, limits, no echo of the texts);
responses are built by ml.serving.responses. These models describe them; a prediction carries
more fields when its task returns more (e.g. an out-of-scope score).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    texts: list[str] = Field(description="Customer messages, each non-empty.", min_length=1)
    top_k: int | None = Field(
        None, description="Labels or answers listed per text (default INTENTFLOW_SERVE_TOP_K)."
    )
    version: int | None = Field(
        None, description="The version the caller expects; another one serving answers 404."
    )


class Ranked(BaseModel):
    model_config = ConfigDict(extra="allow")
    label: str | None = None
    confidence: float | None = None


class Prediction(BaseModel):
    """intent: label, confidence, top_k; entities: spans; answers: answers."""

    model_config = ConfigDict(extra="allow")
    prediction_id: str = Field(description="Quote it to give feedback on this prediction.")
    label: str | None = None
    confidence: float | None = None
    top_k: list[Ranked] | None = None
    spans: list[dict] | None = None
    answers: list[dict] | None = None


class PredictResponse(BaseModel):
    model: str
    version: int = Field(description="The registered version that answered.")
    task: str
    runtime: str = Field(description="torch or onnx-int8 (ml.serving.runtime).")
    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    detail: str


class FeedbackItem(BaseModel):
    """An agent's correction of one prediction (docs/feedback.md)."""

    prediction_id: str = Field(description="The `prediction_id` the predict answer gave.")
    label: str = Field(
        description="The correct label: one of the model's taxonomy (a new intent only when "
        "INTENTFLOW_FEEDBACK_NEW_LABELS is on)."
    )
    agent_id: str = Field(description="Who corrects: one correction per prediction and agent.")
    note: str | None = Field(None, description="Free text, redacted before it is stored.")


class FeedbackBatch(BaseModel):
    """Several corrections, written all or none."""

    items: list[FeedbackItem] = Field(min_length=1, max_length=1000)


class FeedbackOutcome(BaseModel):
    index: int
    prediction_id: str | None = None
    agent_id: str | None = None
    status: str = Field(description="created, replaced, unchanged or duplicate")


class FeedbackResponse(BaseModel):
    model: str
    results: list[FeedbackOutcome]
    summary: dict[str, int]


class FeedbackRefusal(BaseModel):
    detail: str
    errors: list[dict] = Field(
        default_factory=list, description="index, prediction_id, field, reason of each item"
    )

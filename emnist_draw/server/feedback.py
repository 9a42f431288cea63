"""Corrections: "Wrong? Tell us what it was". `POST /api/feedback`, `GET /api/feedback/stats`.

A correction carries the same ink as a prediction (the same schema, validation and preprocessing)
plus the right label and what the model said. It is kept with the ink exactly as sent, the
28x28 input the model read and the model's name and checksum (emnist_draw.store), and answered
201 only once its transaction has committed: an acknowledged correction is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, HTTPException
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidatorFunctionWrapHandler,
                      field_validator, model_validator)
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from emnist_draw.data import BALANCED_CLASSES, MERGED_LETTERS, to_balanced
from emnist_draw.recognizer import sha256_file
from emnist_draw.server.predictor import Predictor
from emnist_draw.server.schemas import PredictRequest
from emnist_draw.store import Correction, add_correction, count_corrections

INK_FIELDS = ("strokes", "canvas", "image", "pixels")
CLASSES_HELP = (f"one of the 47 EMNIST-balanced classes: 0-9, A-Z or one of "
                f"{' '.join(c for c in BALANCED_CLASSES if c.islower())} (lower case "
                f"{' '.join(MERGED_LETTERS)} count as their capitals)")


def to_class(value: str) -> str:
    """A character as its EMNIST-balanced class: "c" -> "C" (one class for both cases)."""
    try:
        if len(value) == 1:  # to_balanced takes substrings of the class list ("AB") too
            return BALANCED_CLASSES[to_balanced(value)]
    except KeyError:
        pass
    shown = repr(value) if len(value) <= 20 else repr(value[:20]) + "..."
    raise ValueError(f"{shown} is not {CLASSES_HELP}")


class FeedbackRequest(PredictRequest):
    """The ink of `/api/predict` (one of strokes, image or pixels, same limits), plus the answer."""

    # Merged with PredictRequest's config (extra="forbid", no NaN): only the example changes.
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"strokes": [[[10, 10], [90, 10], [45, 95]]], "canvas": {"width": 100, "height": 100},
         "label": "7", "predicted": "1"}]})
    label: str = Field(description="The right character (lower case of a merged letter is fine: "
                                   "'c' is stored as class 'C').", examples=["7"])
    predicted: str = Field(description="What the model said (top-1 `prediction`).",
                           examples=["1"])
    _ink_as_sent: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("label", "predicted")
    @classmethod
    def _one_of_the_classes(cls, value: str) -> str:
        return to_class(value)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_ink_as_sent(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> FeedbackRequest:
        # Validation turns 10 into 10.0; the store keeps the JSON values the client sent.
        request = handler(data)
        if isinstance(data, dict):
            request._ink_as_sent = {k: data[k] for k in INK_FIELDS if data.get(k) is not None}
        else:  # already a model (tests, other Python callers): its fields are all there is
            request._ink_as_sent = request.model_dump(include=set(INK_FIELDS), exclude_none=True)
        return request

    @property
    def ink(self) -> dict[str, Any]:
        return self._ink_as_sent


class FeedbackSaved(BaseModel):
    id: int = Field(description="The stored correction's id.")
    label: str = Field(description="The class it was stored as.")


class FeedbackStats(BaseModel):
    count: int = Field(description="Corrections stored, in all.")
    labels: dict[str, int] = Field(description="Corrections per right label.")


def feedback_router(predictor: Predictor, engine: Engine,
                    read: Callable[[PredictRequest], np.ndarray]) -> APIRouter:
    """The routes, storing through `engine`; `read` is the app's ink -> 28x28 input function."""
    router = APIRouter(prefix="/api/feedback", tags=["corrections"])
    meta = predictor.recognizer.metadata
    model_sha256 = meta.get("onnx_sha256") or sha256_file(predictor.recognizer.path)

    @router.post("", status_code=201, response_model=FeedbackSaved,
                 summary="Store a correction: what a drawing really was",
                 responses={422: {"description": "Unknown label, unreadable or empty ink"},
                            503: {"description": "The store is unavailable; nothing was saved"}})
    def add(body: Annotated[FeedbackRequest, Body()]) -> FeedbackSaved:
        """The body of `/api/predict` (`strokes`, `image` or `pixels`) plus `label` (the right
        character) and `predicted` (what the model said). Answers 201 once it is committed."""
        image = read(body)  # the same refusals as /api/predict: empty ink, bad image, ...
        correction = Correction(label=body.label, predicted=body.predicted, charset=body.charset,
                                ink=body.ink, input=image, model_name=predictor.name,
                                model_sha256=model_sha256)
        try:
            new_id = add_correction(engine, correction)
        except SQLAlchemyError as e:
            raise HTTPException(503, "the corrections store is unavailable right now "
                                     f"({type(e).__name__}); nothing was saved, try again") from e
        return FeedbackSaved(id=new_id, label=correction.label)

    @router.get("/stats", response_model=FeedbackStats, summary="How many corrections, per label")
    def stats() -> FeedbackStats:
        try:
            return FeedbackStats(**count_corrections(engine))
        except SQLAlchemyError as e:
            raise HTTPException(503, "the corrections store is unavailable right now "
                                     f"({type(e).__name__})") from e

    return router


__all__ = ["FeedbackRequest", "feedback_router", "to_class"]

"""Corrections: "Wrong? Tell us what it was". `POST /api/feedback`, `POST /api/feedback/read`,
`GET /api/feedback/stats`.

A correction carries the same ink as a prediction (the same schema, validation and preprocessing)
plus the right label and what the model said. It is kept with the ink as sent (an image over
KEPT_IMAGE_CHARS reduced to fit, see kept_ink), the 28x28 input the model read and the model's
name and checksum (emnist_draw.store), and answered 201 only once its transaction has committed
into the database file at the store's path: an acknowledged correction is never lost.

A string correction (`POST /api/feedback/read`) carries the strokes of a string that
`/api/read` read, what it read, what it really is and, optionally, the strokes of each
character: each such character is a training example (`emnist-draw feedback export`).

When it cannot be kept the answer says why, and predictions go on regardless: 507 when the disk
is full or the store at its quota (logged once, until a correction is stored again), 503 when the
database is unreachable or its file was deleted under the server, 413 when the ink is too large.
"""

from __future__ import annotations

import base64
import io
import logging
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, HTTPException
from PIL import Image
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidatorFunctionWrapHandler,
                      field_validator, model_validator)
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from emnist_draw.data import BALANCED_CLASSES, MERGED_LETTERS, to_balanced
from emnist_draw.preprocess import parse_strokes
from emnist_draw.recognizer import sha256_file
from emnist_draw.server.inputs import InputError, decode_base64_image, open_image
from emnist_draw.server.predictor import Predictor
from emnist_draw.server.schemas import (MAX_STROKES, Canvas, Charset, PredictRequest, Stroke,
                                        _check_points)
from emnist_draw.store import (MAX_TEXT_CHARS, AlreadyReplaced, CannotReplace, Correction,
                               CorrectionTooLarge, StoreFull, StoreMoved, StringCorrection, Unusable,
                               add_correction, add_string_correction, count_corrections,
                               free_bytes, quota_bytes)

log = logging.getLogger("uvicorn.error")  # uvicorn's console, as the app's own messages
# An image longer than this (base64 text, ~72 KB of file) is kept reduced: the input is made from
# the image as sent, and what is kept of it is enough to make the input again with other
# preprocessing (the input is 28x28; the ink is cropped to its box first). A 2 MB noise PNG was
# kept whole before: 60 of them grew the database by 171 MB.
KEPT_IMAGE_CHARS = 96 * 1024
REDUCED_SIDES = (256, 128, 64)  # the longer side of a reduced image: the first that fits
# At start-up, less free space than this beside a SQLite store is worth a warning.
LOW_DISK_BYTES = 64 * 1024 * 1024
FULL_DETAIL = ("the server's storage is full: the correction was not saved (predictions still "
               "work); try again later")

# The largest id a store holds (a signed 64-bit integer): a larger `replaces` is a 422 here, not
# an overflow in the database driver.
MAX_ID = 2**63 - 1
INK_FIELDS = ("strokes", "canvas", "image", "pixels")
# NFKC may turn a few characters into one ("\u2167" is "VIII"); a label is never longer than this.
MAX_LABEL_CHARS = 8
CLASSES_HELP = (f"one of the 47 EMNIST-balanced classes: 0-9, A-Z or one of "
                f"{' '.join(c for c in BALANCED_CLASSES if c.islower())} (lower case "
                f"{' '.join(MERGED_LETTERS)} count as their capitals)")


def to_class(value: str) -> str:
    """A character as its EMNIST-balanced class: "c" -> "C" (one class for both cases).

    NFKC first, so compatibility forms of the same letter are that letter (the Kelvin sign
    "\u212a" is "K", full-width "\uff17" is "7"); then only ASCII: the classes are ASCII, and
    case mapping outside it is not one to one (the Kelvin sign's lower case is "k", whose upper
    case is not the Kelvin sign), which is how "\u212a" reached str.index ("substring not found").
    """
    char = unicodedata.normalize("NFKC", value[:MAX_LABEL_CHARS])
    # len 1: to_balanced takes substrings of the class list ("AB") too
    if len(char) == 1 and char.isascii() and len(value) <= MAX_LABEL_CHARS:
        try:
            return BALANCED_CLASSES[to_balanced(char)]
        except KeyError:
            pass
    shown = repr(value) if len(value) <= 20 else repr(value[:20]) + "..."
    raise ValueError(f"{shown} is not {CLASSES_HELP}")


class _KeepsInkAsSent(BaseModel):
    """A request whose ink fields are also kept exactly as the client sent them (`ink`)."""

    _ink_as_sent: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_ink_as_sent(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
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


class FeedbackRequest(PredictRequest, _KeepsInkAsSent):
    """The ink of `/api/predict` (one of strokes, image or pixels, same limits), plus the answer."""

    # Merged with PredictRequest's config (extra="forbid", no NaN): only the example changes.
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"strokes": [[[10, 10], [90, 10], [45, 95]]], "canvas": {"width": 100, "height": 100},
         "label": "7", "predicted": "1"}]})
    label: str = Field(description="The right character (lower case of a merged letter is fine: "
                                   "'c' is stored as class 'C').", examples=["7"])
    predicted: str = Field(description="What the model said (top-1 `prediction`).",
                           examples=["1"])

    @field_validator("label", "predicted")
    @classmethod
    def _one_of_the_classes(cls, value: str) -> str:
        return to_class(value)


def plain_spaces(text: str) -> str:
    """Every Unicode space as " " (a no-break space pasted from a page, an ideographic space):
    NFKC makes most of them " " as it makes the letters their classes; all of them here."""
    return "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)


# What `read` (the text /api/read answered) can never hold: controls (NUL, newline, escape...),
# format characters (bidi overrides, zero widths), lone surrogates, private-use and unassigned
# code points.
UNPRINTABLE = {"Cc": "a control character", "Cf": "an invisible format character",
               "Cs": "a lone surrogate", "Co": "a private-use character",
               "Cn": "not a Unicode character"}


LINE_BREAK = "\n"  # between the lines of writing on several lines, as /api/read joins them


def check_printable(value: str) -> str:
    for i, char in enumerate(value):
        kind = None if char == LINE_BREAK else UNPRINTABLE.get(unicodedata.category(char))
        if kind:
            raise ValueError(f"the character at position {i} (counting from 0), U+{ord(char):04X}, "
                             f"is {kind}: send the text /api/read answered, as it was shown")
    return value


def text_classes(text: str) -> str:
    """The class of each non-space character of `text`, in order ("c" -> "C"); a ValueError
    names the first one that is not a class, with its position."""
    classes = []
    for i, char in enumerate(plain_spaces(text)):
        if char in (" ", LINE_BREAK):
            continue  # the reader puts these at wide gaps and between lines: no character
        try:
            classes.append(to_class(char))
        except ValueError as e:
            raise ValueError(f"the character at position {i} (counting from 0) is wrong: "
                             f"{e}") from None
    if not classes:
        raise ValueError("holds only spaces: give the characters the ink really is")
    return "".join(classes)


class StringFeedbackRequest(_KeepsInkAsSent):
    """The strokes of `/api/read` (same limits), what it read, what it really is and, when the
    page knows them, the strokes of each of its characters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra={
        "examples": [{"strokes": [[[10, 10], [10, 90]], [[40, 10], [70, 10], [40, 90], [75, 90]],
                                  [[110, 10], [90, 50], [110, 90]]],
                      "canvas": {"width": 150, "height": 100}, "charset": "all",
                      "read": "1ZL", "text": "12C", "segments": [[0], [1], [2]]}]})

    strokes: list[Stroke] = Field(
        max_length=MAX_STROKES,
        description="The strokes `/api/read` read, in writing order (as sent to it).")
    canvas: Canvas | None = Field(None, description="Size of the area the strokes were drawn in.")
    charset: Charset = Field("all", description="The character set the page was set to.")
    read: str = Field(max_length=MAX_TEXT_CHARS,
                      description="What the app read (its `text`, lines joined by '\\n'); "
                                  "may be empty; no other control or invisible characters.")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                      description="What it really is: digits, letters, spaces and, between "
                                  "lines, '\\n' ('c' is class 'C'; any Unicode space, such as "
                                  "a no-break space, is a space).")
    segments: list[Annotated[list[int], Field(max_length=MAX_STROKES)]] | None = Field(
        None, max_length=MAX_TEXT_CHARS,
        description="The strokes of each non-space character of `text`, left to right: one list "
                    "of stroke indices per character (as `/api/read` gives each character's "
                    "`strokes`). Strokes in no list are fine. Without it the correction is kept, "
                    "but yields no per-character examples.")
    replaces: int | None = Field(
        None, ge=1, le=MAX_ID,
        description="The id (from an earlier 201 answer) of a string correction of the same ink "
                    "that this one supersedes: a second character corrected in the same reading. "
                    "Both are kept; only the latest counts as training examples.")
    _labels: str = PrivateAttr("")

    @field_validator("text")
    @classmethod
    def _digits_letters_and_spaces(cls, value: str) -> str:
        text_classes(value)
        return plain_spaces(value)  # kept with plain spaces, as labels counts them

    @field_validator("read")
    @classmethod
    def _printable(cls, value: str) -> str:
        return check_printable(value)

    @model_validator(mode="after")
    def _segments_fit(self) -> StringFeedbackRequest:
        _check_points(self.strokes)
        parse_strokes(self.strokes)  # InkError when there is no ink at all
        self._labels = text_classes(self.text)
        if self.segments is None:
            return self
        if len(self.segments) != len(self._labels):
            raise ValueError(f"segments: found {len(self.segments)} segments and "
                             f"{len(self._labels)} characters in text (spaces not counted): give "
                             "one list of stroke indices per character, or leave segments out")
        # What segments[n] is the strokes of, for messages.
        chars = self.text.replace(" ", "").replace(LINE_BREAK, "")
        owner: dict[int, int] = {}
        for n, segment in enumerate(self.segments):
            if not segment:
                raise ValueError(f"segments[{n}] is empty: list the strokes of character "
                                 f"{n} of text, {chars[n]!r}")
            for i in segment:
                if not 0 <= i < len(self.strokes):
                    raise ValueError(f"segments[{n}] names stroke {i}, but the strokes are "
                                     f"numbered 0 to {len(self.strokes) - 1}")
                if i in owner:
                    raise ValueError(f"stroke {i} is in segments[{owner[i]}] and segments[{n}]: "
                                     "a stroke belongs to one character")
                owner[i] = n
            if not any(self.strokes[i] for i in segment):
                raise ValueError(f"segments[{n}] ({chars[n]!r}): its strokes have no points: "
                                 "a character needs ink")
        return self

    @property
    def labels(self) -> str:
        """The class of each non-space character of text."""
        return self._labels


class FeedbackSaved(BaseModel):
    id: int = Field(description="The stored correction's id.")
    label: str = Field(description="The class it was stored as.")


class StringFeedbackSaved(BaseModel):
    id: int = Field(description="The stored string correction's id.")
    characters: int = Field(description="The per-character training examples it yields: one per "
                                        "segment, 0 without segments.")


class FeedbackStats(BaseModel):
    count: int = Field(description="Corrections stored, in all.")
    labels: dict[str, int] = Field(description="Corrections per right label.")
    strings: int = Field(description="String corrections stored (`POST /api/feedback/read`).")
    strings_replaced: int = Field(description="Of them, those a later correction of the same ink "
                                              "replaced (kept, but no training examples).")
    string_characters: int = Field(description="The per-character training examples of those "
                                               "nothing replaced.")


def kept_ink(ink: dict[str, Any]) -> dict[str, Any]:
    """The ink as it is stored: as sent, but an image over KEPT_IMAGE_CHARS reduced to a PNG
    whose longer side is at most 256 pixels, grey (with its transparency, which preprocessing
    reads), its original size under "reduced_from"."""
    text = ink.get("image")
    if text is None or len(text) <= KEPT_IMAGE_CHARS:
        return ink
    data = decode_base64_image(text)
    image = open_image(data)  # the request's limits; it was read once already, for the input
    width, height = image.size
    try:
        image.draft(image.mode, (REDUCED_SIDES[0],) * 2)  # JPEG: decode at 1/2, 1/4 or 1/8
        keeps_alpha = (image.mode in ("RGBA", "LA", "PA", "RGBa", "La")
                       or "transparency" in image.info)
        image = image.convert("RGBA").convert("LA") if keeps_alpha else image.convert("L")
        for side in REDUCED_SIDES:
            small = image.copy()
            small.thumbnail((side, side), Image.Resampling.BOX)
            buf = io.BytesIO()
            small.save(buf, "PNG")
            url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            if len(url) <= KEPT_IMAGE_CHARS:
                break
    except (OSError, ValueError) as e:  # read once already, so unlikely: still never a 500
        raise InputError(f"the {image.format} image cannot be kept with the correction "
                         f"({e})") from e
    return {**ink, "image": url,
            "reduced_from": {"bytes": len(data), "width": width, "height": height}}


class _Condition:
    """A store condition an operator must hear of once, not at every request: logged when it
    starts, and when it ends."""

    def __init__(self, started: str, ended: str):
        self.started, self.ended, self.on = started, ended, False

    def report(self, on: bool, *args: object) -> None:
        if on != self.on:
            self.on = on
            (log.error if on else log.warning)(self.started if on else self.ended, *args)


def feedback_router(predictor: Predictor, engine: Engine,
                    read: Callable[[PredictRequest], np.ndarray],
                    quota_mb: float | None = None) -> APIRouter:
    """The routes, storing through `engine`; `read` is the app's ink -> 28x28 input function.
    quota_mb: what the store may take (default: $EMNIST_DRAW_FEEDBACK_QUOTA_MB, else
    store.DEFAULT_QUOTA_MB; 0: no quota)."""
    router = APIRouter(prefix="/api/feedback", tags=["corrections"])
    meta = predictor.recognizer.metadata
    model_sha256 = meta.get("onnx_sha256") or sha256_file(predictor.recognizer.path)
    quota = quota_bytes(quota_mb)
    full = _Condition("corrections refused with 507: %s; predictions go on, and corrections are "
                      "stored again once there is room", "corrections are stored again: %s")
    moved = _Condition("corrections refused with 503: %s", "%s")
    free = free_bytes(engine)
    if free is not None and free < LOW_DISK_BYTES:
        log.warning("only %.1f MB free on the disk of the corrections database %s: corrections "
                    "will be refused with 507 once it is full", free / 2**20, engine.url.database)

    def saved(insert: Callable[[], int]) -> int:
        """The id `insert` stored, or the 413, 507 or 503 that says why nothing was."""
        try:
            new_id = insert()
        except CorrectionTooLarge as e:
            raise HTTPException(413, str(e)) from e
        except AlreadyReplaced as e:  # a conflict with what is stored, not a malformed request
            raise HTTPException(409, str(e)) from e
        except Unusable as e:  # the request's own checks come first: another writer's rules
            raise HTTPException(422, f"{e}: nothing was saved") from e
        except CannotReplace as e:
            # 422, not 404, for an id that does not exist: the path is there; what the body
            # names is not (a 404 would read as "no such endpoint" to an older client).
            raise HTTPException(422, str(e)) from e
        except StoreFull as e:
            full.report(True, e)
            detail = (f"{e}: the correction was not saved (predictions still work)" if e.quota
                      else FULL_DETAIL)
            raise HTTPException(507, detail) from e
        except StoreMoved as e:
            moved.report(True, e)
            raise HTTPException(503, "the corrections database was deleted or replaced while "
                                     "the server ran: nothing was saved; the server must be "
                                     "restarted") from e
        except SQLAlchemyError as e:
            raise HTTPException(503, "the corrections store is unavailable right now "
                                     f"({type(e).__name__}); nothing was saved, try again") from e
        full.report(False, f"correction {new_id} saved")
        return new_id

    def responses(invalid: str) -> dict[int | str, dict[str, Any]]:
        return {413: {"description": "The ink is too large to keep"},
                422: {"description": invalid},
                503: {"description": "The store is unavailable; nothing was saved"},
                507: {"description": "The server's storage is full, or the store at its quota; "
                                     "nothing was saved"}}

    @router.post("", status_code=201, response_model=FeedbackSaved,
                 summary="Store a correction: what a drawing really was",
                 responses=responses("Unknown label, unreadable or empty ink"))
    def add(body: Annotated[FeedbackRequest, Body()]) -> FeedbackSaved:
        """The body of `/api/predict` (`strokes`, `image` or `pixels`) plus `label` (the right
        character) and `predicted` (what the model said). Answers 201 once it is committed."""
        image = read(body)  # the same refusals as /api/predict: empty ink, bad image, ...
        correction = Correction(label=body.label, predicted=body.predicted, charset=body.charset,
                                ink=kept_ink(body.ink), input=image, model_name=predictor.name,
                                model_sha256=model_sha256)
        new_id = saved(lambda: add_correction(engine, correction, quota))
        return FeedbackSaved(id=new_id, label=correction.label)

    @router.post("/read", status_code=201, response_model=StringFeedbackSaved,
                 summary="Store a string correction: what a string read by /api/read really was",
                 responses={**responses("A character of text that is not one of the 47 "
                                        "classes, segments that do not fit text or the strokes, "
                                        "bad or empty ink; replaces naming no string correction "
                                        "or one of other ink"),
                            409: {"description": "replaces names a correction already replaced "
                                                 "(the message says by which)"}})
    def add_string(body: Annotated[StringFeedbackRequest, Body()]) -> StringFeedbackSaved:
        """The `strokes` (and `canvas`) sent to `/api/read`, `read` (its `text`), `text` (what
        it really is) and, optionally, `segments`: the strokes of each non-space character of
        `text`, left to right (`/api/read` gives each character's `strokes`; where it split the
        string wrong, the page's own). Each segmented character becomes a training example for
        `emnist-draw feedback export`; without `segments` (a text retyped to another length) the
        correction is kept and yields none. With `replaces`, the id of an earlier string
        correction of the same ink (a second character corrected), that one is kept but no longer
        counts. Answers 201 with that number once it is committed; 422 when `replaces` names no
        correction or one of other ink, 409 when it was replaced already."""
        correction = StringCorrection(read=body.read, text=body.text, labels=body.labels,
                                      charset=body.charset, ink=body.ink, segments=body.segments,
                                      model_name=predictor.name, model_sha256=model_sha256,
                                      replaces=body.replaces)
        new_id = saved(lambda: add_string_correction(engine, correction, quota))
        return StringFeedbackSaved(id=new_id, characters=correction.characters)

    @router.get("/stats", response_model=FeedbackStats,
                summary="How many corrections, per label, and how many string corrections")
    def stats() -> FeedbackStats:
        try:
            return FeedbackStats(**count_corrections(engine))
        except StoreMoved as e:
            moved.report(True, e)
            raise HTTPException(503, "the corrections database was deleted or replaced while "
                                     "the server ran; the server must be restarted") from e
        except SQLAlchemyError as e:
            raise HTTPException(503, "the corrections store is unavailable right now "
                                     f"({type(e).__name__})") from e

    return router


__all__ = ["FeedbackRequest", "StringFeedbackRequest", "feedback_router", "kept_ink",
           "text_classes", "to_class"]

"""The API's request and response bodies, with the limits that keep one request cheap.

Every limit is here, so `GET /api/model` and the docs can state them and the tests can aim at them.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator,
                      Field, Tag, model_validator)

from emnist_draw.data import BALANCED_CLASSES, to_balanced
from emnist_draw.preprocess import parse_strokes

MAX_STROKES = 100
MAX_POINTS_PER_STROKE = 2_000
MAX_POINTS = 10_000
MAX_COORDINATE = 1e6  # any unit is fine, but a coordinate this large is a bug, not a drawing
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # decoded file size
MAX_IMAGE_PIXELS = 4096 * 4096  # width x height, checked from the header before decoding
# Each side too: a 1 x 16-million-pixel PNG is 16 million rows, seconds of decoding for no image.
MAX_IMAGE_SIDE = 8192
MAX_BATCH = 64
# A batch of strokes is the largest body we mean to accept; anything beyond is refused unread.
MAX_BODY_BYTES = 8 * 1024 * 1024
# JSON arrays, objects and list items in one body, counted before parsing (server.security): the
# largest valid request holds about 30,000 (10,000 points); a batch may hold 64 x 784 pixels or
# about 80,000 points in all. Far more is a request built to be slow, not a drawing.
MAX_JSON_VALUES = 250_000
N_PIXELS = 28 * 28

Charset = Literal["all", "digits", "letters"]
Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2, description="[x, y], y down")]
Stroke = Annotated[list[Point], Field(max_length=MAX_POINTS_PER_STROKE)]
Pixel = Annotated[float, Field(ge=0, le=255)]


class Canvas(BaseModel):
    """The drawing area the stroke coordinates refer to (the page sends its CSS size)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    width: float = Field(gt=0, le=MAX_COORDINATE)
    height: float = Field(gt=0, le=MAX_COORDINATE)


def _check_points(strokes: list | None) -> None:
    total = sum(len(s) for s in strokes or ())
    if total > MAX_POINTS:
        raise ValueError(f"too many points: {total} in all, the limit is {MAX_POINTS}")


class PredictRequest(BaseModel):
    """One character, given as exactly one of strokes, image or pixels."""

    # NaN and Infinity are valid to Python's JSON parser; they are never valid ink. Strict: the
    # JSON types the schema states, no more (lax mode took `true` for 1.0 and "5" for 5; the
    # fuzzing found the first).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra={
        "examples": [{"strokes": [[[50, 10], [50, 90]]], "canvas": {"width": 100, "height": 100},
                      "top_k": 5, "charset": "all", "return_input": True}]})

    strokes: list[Stroke] | None = Field(
        None, max_length=MAX_STROKES,
        description="Strokes, each a list of [x, y] points (any units, y down).")
    canvas: Canvas | None = Field(None, description="Size of the area the strokes were drawn in.")
    image: str | None = Field(
        None, max_length=MAX_IMAGE_BYTES * 4 // 3 + 1024,
        description="A PNG, JPEG or WebP image, as a data URL or plain base64.")
    pixels: list[Pixel] | None = Field(
        None, max_length=N_PIXELS,
        description="784 grey levels 0-255, row by row, white ink on black.")
    top_k: int = Field(5, ge=1, le=47, description="How many of the most likely classes to return.")
    charset: Charset = Field("all", description="Restrict the answer to digits or letters.")
    return_input: bool = Field(False, description="Also return the 28x28 image the model saw.")

    @functools.cached_property
    def points(self) -> list[np.ndarray]:
        """The strokes parsed once (preprocess.parse_strokes: InkError if there is no ink), for
        the status facts, the string reader and preprocessing alike."""
        return parse_strokes(self.strokes)

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        given = [name for name in ("strokes", "image", "pixels") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'strokes', 'image' or 'pixels'"
                             + (f" (got {', '.join(given)})" if given else ""))
        _check_points(self.strokes)
        if self.pixels is not None and len(self.pixels) != N_PIXELS:
            raise ValueError(f"'pixels' needs {N_PIXELS} values (28x28), got {len(self.pixels)}")
        return self


def _plain_integer(value: object) -> object:
    """A form field's integer as people write it: ASCII digits only (lax parsing also took
    "5.0", " 5" and "+5")."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,6}", value, re.ASCII):
        raise ValueError(f"{value[:20]!r} is not a whole number: write it with the digits 0-9, "
                         "e.g. 5")
    return value


FormInt = Annotated[int, BeforeValidator(_plain_integer)]


def _body_kind(body: object) -> str:
    return "demo" if isinstance(body, str) else "request"


# The demo's integers in ASCII digits only: int() alone reads "٢٥٥", "２５５" and "2_5_5" as 255.
_DEMO_STRING = re.compile(r"\s*\[?\s*[0-9]+(?:\s*,\s*[0-9]+)*\s*\]?\s*", re.ASCII)
_DEMO_ITEM = re.compile(r"\s*[0-9]+\s*", re.ASCII)


def _ascii_integers(body: str) -> str:
    """One regular expression for the whole string (the common case, ~20 µs); item by item only
    to name the first bad one. The count and the 0-255 range are checked where it is read."""
    if _DEMO_STRING.fullmatch(body):
        return body
    items = body.strip().removeprefix("[").removesuffix("]").split(",")
    for i, item in enumerate(items):
        if not _DEMO_ITEM.fullmatch(item):
            raise ValueError(f"item {i} of the string is {item.strip()[:20]!r}, not an integer "
                             "0-255 written with the digits 0-9")
    return body


# The original demo posted a JSON *string* of 784 comma-separated integers; both forms share a path.
PredictBody = Annotated[
    Annotated[PredictRequest, Tag("request")]
    | Annotated[str, Field(max_length=64 * 1024,
                           description="The original demo's body: \"[0,0,...]\""),
                AfterValidator(_ascii_integers), Tag("demo")],  # the tag last: it names the whole
    Discriminator(_body_kind),
]
BatchBody = Annotated[list[PredictRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Guess(BaseModel):
    label: str = Field(description="The model's class, one character.")
    display: str = Field(description="How to show it: merged classes as both cases, 'C / c'.")
    probability: float


Status = Literal["ok", "ambiguous", "unsure", "not_a_character", "several_characters"]
STATUS_HELP = ("How sure the reading is: ok; ambiguous (the leading candidates are EMNIST "
               "look-alikes such as 0/O or 1/I/L, see ambiguous_with: a character set settles "
               "it); unsure (low confidence, no look-alike to blame); not_a_character (a tap, a "
               "dot, a scribble); several_characters (send it to /api/read). Probabilities are "
               "calibrated (expected calibration error 1.6% on the validation part).")
AMBIGUOUS_HELP = "With status ambiguous: the look-alikes it could be, the prediction first."


class Prediction(BaseModel):
    prediction: str = Field(description="The most likely class, one character.")
    top_k: list[Guess] = Field(description="Most likely first.")
    status: Status = Field(description=STATUS_HELP)
    ambiguous_with: list[str] | None = Field(None, description=AMBIGUOUS_HELP)
    model: str
    charset: Charset
    input: list[int] | None = Field(
        None, description="With return_input: the 28x28 input, 784 values row by row.")


class BatchPrediction(BaseModel):
    model: str
    predictions: list[Prediction]


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where in the request: 'body', field names, indices.")
    msg: str


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx the app answers: one sentence that says what to fix."""

    detail: str = Field(description="What is wrong and how to fix it, for a person to read.")
    errors: list[ErrorItem] | None = Field(
        None, description="With 422 for a body that breaks the schema: the first few errors.")


def _error(description: str) -> dict:
    return {"model": ErrorResponse, "description": description}


# What the middleware may answer to any request (FastAPI(responses=...) declares them everywhere).
ERROR_RESPONSES: dict[int | str, dict] = {
    413: _error("The body is over the size limit, or holds too many JSON values"),
    415: _error("The body is not sent as JSON (Content-Type: application/json), where the "
                "operation takes a JSON body"),
    429: _error("Over the rate limit (only when the server runs with --rate-limit); "
                "see Retry-After"),
    503: _error("The request took longer than the server's time limit"),
}
# For the operations that read input: the app's own error body replaces FastAPI's default 422
# schema (a list), which is not what the app answers.
INPUT_ERRORS: dict[int | str, dict] = {
    422: _error("The input is unreadable, empty, too large or breaks the schema")}


def limits() -> dict[str, int]:
    return {"max_strokes": MAX_STROKES, "max_points_per_stroke": MAX_POINTS_PER_STROKE,
            "max_points": MAX_POINTS, "max_image_bytes": MAX_IMAGE_BYTES,
            "max_image_pixels": MAX_IMAGE_PIXELS, "max_image_side": MAX_IMAGE_SIDE,
            "max_batch": MAX_BATCH, "max_body_bytes": MAX_BODY_BYTES,
            "max_json_values": MAX_JSON_VALUES}


# ---------------------------------------------------------------- strings: POST /api/read

MAX_WORDS = 5_000  # a caller's word list; longer lists belong in a lexicon, not in each request
MAX_WORD_LENGTH = 64
MAX_LINES = 5  # emnist_draw.lines: more rows of writing than this are refused
KNOWN_HELP = (
    "Characters the writer confirmed (e.g. picked from a box's alternatives): each keeps its label "
    "and its strokes stay one character, never merged with others, while the rest is re-read; "
    "without a label only the grouping is kept (Split a box: one entry per group of its strokes; "
    "Join two boxes: one entry with both boxes' strokes), its class read as usual. "
    "Send them with every read of the same ink (after a new stroke, Undo or Predict), with "
    "indices into this request's strokes. Each stroke in at most one; at most one per stroke; "
    "only with strokes; a label of the charset's kind.")


class KnownCharacter(BaseModel):
    """A character the writer confirmed: its strokes and its label."""

    model_config = ConfigDict(extra="forbid", strict=True)
    strokes: list[Annotated[int, Field(ge=0, lt=MAX_STROKES)]] = Field(
        min_length=1, max_length=MAX_STROKES,
        description="Indices into the request's strokes (0-based) that make the character.")
    label: str | None = Field(
        None, min_length=1, max_length=1,
        description="One of the 47 classes (0-9, A-Z, a b d e f g h n q r t), or a merged letter "
                    "(c i j k l m o p s u v w x y z) in either case: 'm' is the class 'M'. The "
                    "text shows a merged letter in the case the string decides, as for any other. "
                    "Omitted (or null): only the grouping is kept, these strokes are one "
                    "character whose class is read: to split a box into its strokes' groups, "
                    "or join two boxes into one.")


# Real pen strokes (UNIPEN writers, coordinates rounded) for the docs' examples: each reads as its
# summary says (tests/test_known.py checks them against a real server).
_NUMBER = [
    [[23,5],[30,1],[57,3],[48,25],[11,49],[1,45],[24,33],[38,41]],
    [[101,6],[94,7],[79,23],[71,45],[90,47],[118,20],[116,1],[98,5]],
    [[156,5],[163,1],[190,3],[181,25],[144,49],[134,45],[157,33],[170,41]],
    [[217,0],[207,18],[206,31],[219,30],[231,21],[237,1],[231,17],[221,50]],
]
_CODE = [
    [[18,12],[16,16],[9,33],[3,45],[0,49],[4,38],[11,24],[21,6],[28,0],[30,11],[26,33],[23,50]],
    [[3,30],[4,31],[6,31],[8,31],[12,31],[22,29],[25,28],[28,28]],
    [[49,12],[48,22],[45,37],[46,28],[57,4],[64,2],[57,16],[44,28],[53,25],[67,30],[61,44],[46,50]],
    [[84,0],[84,1],[84,8],[84,14],[84,20],[83,27],[82,36],[81,42],[80,46],[80,49],[80,50],[80,49]],
    [[120,5],[125,2],[142,0],[151,2],[153,12],[138,31],[115,47],[99,49],[100,41],[110,34],[126,34],[135,41]],
    [[194,6],[194,3],[192,0],[190,0],[181,5],[177,9],[170,22],[168,29],[169,41],[172,45],[184,50],[192,48]],
]
_CODE_WITH_I = [
    [[25,0],[22,1],[20,3],[11,15],[5,26],[0,39],[1,47],[7,50],[20,48],[30,41],[34,32],[30,27],
    [22,29],[13,35],[12,42],[14,45]],
    [[57,5],[56,7],[54,13],[50,29],[48,39],[47,47],[47,48],[48,44],[50,32],[52,16],[55,3],[57,0],
    [57,4],[57,13],[57,23],[60,31],[64,32],[70,29],[76,22],[79,11],[81,3],[81,2],[81,7],[80,19],
    [78,34],[75,45],[74,50]],
    [[107,11],[106,14],[103,18],[100,33],[98,44],[96,49],[94,47],[96,38],[103,24],[113,10],[123,1],
    [131,0],[132,5],[126,12],[114,22],[105,28],[108,28],[115,28],[124,28],[133,29],[135,34],
    [129,40],[119,46],[107,49],[102,50]],
    [[160,0],[155,12],[152,22],[150,41],[147,50]],
]
_TWO_LINES = [
    [[19,2],[20,1],[17,16],[11,25],[2,42],[0,50]],
    [[56,5],[79,0],[87,18],[39,50],[46,34],[71,41]],
    [[12,74],[44,71],[29,87],[36,96],[45,113],[5,119]],
    [[78,70],[65,95],[76,100],[92,88],[95,75],[82,120]],
]
READ_EXAMPLES = {
    "number": {"summary": "A number: reads 2024", "value": {
        "strokes": _NUMBER, "charset": "all", "top_k": 3, "alternatives": 3}},
    "correction": {"summary": "A correction kept: 6MB1, with its I confirmed 6MBI",
                    "description": "Stroke 3, a bare bar, was read 1 and the writer picked I: "
                                   "sent in `known` with every later read, it stays an I.",
                    "value": {"strokes": _CODE_WITH_I, "known": [{"strokes": [3], "label": "I"}]}},
    "pattern": {"summary": "A code with its shape: pattern LLDDL reads AB12C",
                 "value": {"strokes": _CODE, "pattern": "LLDDL"}},
    "lines": {"summary": "Two lines: 12 above 34 reads \"12\\n34\"",
               "value": {"strokes": _TWO_LINES}},
}


class ReadRequest(BaseModel):
    """A string of characters written in one go, as strokes or as an image of one line."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra={
        "examples": [READ_EXAMPLES["number"]["value"], READ_EXAMPLES["correction"]["value"]]})

    strokes: list[Stroke] | None = Field(
        None, max_length=MAX_STROKES,
        description="Strokes in writing order, each a list of [x, y] points (any units, y down).")
    canvas: Canvas | None = Field(None, description="Size of the area the strokes were drawn in.")
    image: str | None = Field(
        None, max_length=MAX_IMAGE_BYTES * 4 // 3 + 1024,
        description="An image of one line of characters (PNG, JPEG or WebP), as a data URL or "
                    "plain base64; characters that touch are cut apart where they meet.")
    top_k: int = Field(3, ge=1, le=47, description="How many classes to return per character.")
    charset: Charset = Field("all", description="Restrict every character to digits or letters.")
    pattern: str | None = Field(
        None, min_length=1, max_length=MAX_STROKES + MAX_LINES, pattern=r"^[DLdl?]+(\n[DLdl?]+)*$",
        description="The string's shape, one letter per character: D a digit, L a letter, "
                    "? either; e.g. 'LLDDD' for a code. The reading has exactly that length. "
                    "For writing on several lines, one pattern per line separated by newlines "
                    "('DDD\\nDDD'); a 422 says when the count of lines differs.")
    words: list[Annotated[str, Field(min_length=1, max_length=MAX_WORD_LENGTH)]] | None = Field(
        None, max_length=MAX_WORDS,
        description="Words the string is likely to be; a reading that is one of them is preferred.")
    alternatives: int = Field(5, ge=1, le=20, description="How many whole-string readings to return.")
    known: list[KnownCharacter] | None = Field(None, max_length=MAX_STROKES, description=KNOWN_HELP)
    scratch_out: bool = Field(
        True, description="Scratch-out: a zigzag drawn over earlier strokes erases itself and the "
                          "strokes under it before reading (answered in 'erased'); a confirmed "
                          "character under it is erased too. false reads every stroke as ink.")

    @model_validator(mode="after")
    def _one_input(self) -> ReadRequest:
        given = [name for name in ("strokes", "image") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'strokes' or 'image'"
                             + (f" (got {', '.join(given)})" if given else ""))
        _check_points(self.strokes)
        if self.known:
            _check_known(self.known, self.strokes, self.charset)
        return self


def _check_known(known: list[KnownCharacter], strokes: list | None, charset: str) -> None:
    if strokes is None:
        raise ValueError("'known' needs 'strokes': its characters are indices into them")
    if len(known) > len(strokes):
        raise ValueError(f"{len(known)} known characters for {len(strokes)} strokes: at most one "
                         "per stroke")
    owner: dict[int, int] = {}
    for n, character in enumerate(known):
        _check_known_strokes(n, character, strokes, owner)
        if character.label is None:
            continue
        try:
            kind = BALANCED_CLASSES[to_balanced(character.label)]
        except KeyError:
            raise ValueError(f"known[{n}].label {character.label!r} is not one of the 47 classes: "
                             f"use one of {BALANCED_CLASSES}, merged letters in either case") from None
        if charset != "all" and kind.isdigit() != (charset == "digits"):
            raise ValueError(f"known[{n}].label {character.label!r} is not in charset {charset!r}: "
                             "drop the charset or that known character")


def _check_known_strokes(n: int, character: KnownCharacter, strokes: list,
                         owner: dict[int, int]) -> None:
    for index in character.strokes:
        if index >= len(strokes):
            raise ValueError(f"known[{n}].strokes: {index} is not a stroke index (the request "
                             f"has {len(strokes)} strokes, 0 to {len(strokes) - 1})")
        if not strokes[index]:
            raise ValueError(f"known[{n}].strokes: stroke {index} is empty")
        if index in owner:
            where = "twice in it" if owner[index] == n else f"also in known[{owner[index]}]"
            raise ValueError(f"known[{n}].strokes: stroke {index} is {where}; a stroke belongs "
                             "to one character")
        owner[index] = n


class ReadCharacter(BaseModel):
    prediction: str = Field(description="The model's class, one character.")
    display: str = Field(description="The character as the text shows it (merged letters' case "
                                     "decided from the string).")
    top_k: list[Guess] = Field(description="Most likely first.")
    status: Status = Field(description="As in /api/predict, for this character of the string.")
    ambiguous_with: list[str] | None = Field(None, description=AMBIGUOUS_HELP)
    strokes: list[int] | None = Field(
        None, description="Indices into the request's strokes that make this character.")
    box: list[float] = Field(description="[x0, y0, x1, y1] in the request's units (pixels for images).")
    known: bool = Field(False, description="True for a character sent in the request's 'known' "
                                           "with a label: kept as the writer confirmed it "
                                           "(probability 1). A grouping sent without a label is "
                                           "read as usual and is not marked.")


class Alternative(BaseModel):
    text: str
    score: float = Field(description="Log score of the whole reading; higher is better.")


class ReadLine(BaseModel):
    text: str = Field(description="This line's text.")
    characters: list[int] = Field(description="Indices into 'characters' of this line's, left "
                                              "to right.")
    strokes: list[int] | None = Field(
        None, description="Indices into the request's strokes on this line (strokes only).")
    box: list[float] = Field(description="[x0, y0, x1, y1] of the line's ink.")


class Reading(BaseModel):
    text: str = Field(description="The text read, lines joined by a newline ('\\n'); a space "
                                  "where a gap in the ink reads as one (its width, and the "
                                  "words on either side).")
    characters: list[ReadCharacter] = Field(description="Every line's characters, the top line "
                                                        "first, each line left to right.")
    lines: list[ReadLine] = Field(description=(
        "The lines, top to bottom: strokes written one line under another are read line by "
        f"line (at most {MAX_LINES}; an image is one line). One line for writing on one line."))
    alternatives: list[Alternative] = Field(description="Whole-text readings, best first (lines "
                                                        "joined by '\\n').")
    erased: list[int] | None = Field(
        None, description="With strokes: indices of the strokes erased by scratch-out (each "
                          "zigzag and the strokes under it), in no character; [] when none. When "
                          "every stroke is erased, the text is empty and there are no lines.")
    model: str
    charset: Charset

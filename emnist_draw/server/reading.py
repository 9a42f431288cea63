"""`POST /api/read` and `/api/read/upload`: strings of characters, read by emnist_draw.reader.

The same ink fields, limits and 4xx answers as `/api/predict`; the engine does the reading.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, File, Form, UploadFile
from PIL import Image

from emnist_draw.gestures import scratched
from emnist_draw.lines import Line, LinesReading, read_lines
from emnist_draw.preprocess import InkError
from emnist_draw.reader import Reading as EngineReading
from emnist_draw.server.inputs import InputError, decode_base64_image, load_image, open_image
from emnist_draw.server.predictor import Predictor
from emnist_draw.server.schemas import (INPUT_ERRORS, MAX_IMAGE_BYTES, READ_EXAMPLES, Alternative,
                                        Charset, FormInt, Guess, ReadCharacter, Reading, ReadLine,
                                        ReadRequest)


def read_router(predictor: Predictor) -> APIRouter:
    router = APIRouter()
    reader = predictor.reader

    def answer(reading: EngineReading, charset: str, from_strokes: bool,
               known: list[list[int]] = (), lines: list[Line] | None = None) -> Reading:
        confirmed = {tuple(sorted(strokes)) for strokes in known}
        if lines is None:  # an image: one line
            boxes = np.array([c.box for c in reading.characters]).reshape(-1, 4)
            box = tuple(np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)].tolist())
            lines = [Line(reading.text, list(range(len(reading.characters))), None, box)]
        return Reading(
            text=reading.text,
            lines=[ReadLine(text=line.text, characters=line.characters, strokes=line.strokes,
                            box=list(line.box)) for line in lines],
            characters=[ReadCharacter(
                prediction=c.prediction, display=c.display,
                top_k=[Guess(label=label, display=shown, probability=p) for label, shown, p in c.top_k],
                status=c.status, ambiguous_with=c.ambiguous_with or None,
                strokes=c.parts if from_strokes else None, box=list(c.box),
                known=tuple(c.parts) in confirmed)
                for c in reading.characters],
            alternatives=[Alternative(text=t, score=s) for t, s in reading.alternatives],
            model=predictor.name, charset=charset)

    def read_strokes(body: ReadRequest, options: dict) -> Reading:
        known = [(k.strokes, k.label) for k in body.known or ()]
        confirmed = {i for k, _ in known for i in k}  # never a scratch
        erased = scratched(body.strokes, keep=confirmed) if body.scratch_out else []
        if erased:  # gone: read as if never written; a confirmed character under it goes too
            gone = set(erased)
            known = [(k, label) for k, label in known if gone.isdisjoint(k)]
            strokes = [[] if i in gone else s for i, s in enumerate(body.strokes)]
            if all(not s for s in strokes):
                return Reading(text="", characters=[], lines=[], alternatives=[], erased=erased,
                               model=predictor.name, charset=body.charset)
        else:
            strokes = body.strokes
        read: LinesReading = read_lines(reader, strokes, known=known, **options)
        labelled = [k for k, label in known if label is not None]
        reading = answer(read.reading, body.charset, True, labelled, read.lines)
        reading.erased = erased
        return reading

    def read_image(image: Image.Image, **options) -> EngineReading:
        try:
            return reader.read_image(load_image(image), **options)
        except (InkError, InputError):
            raise
        except (ValueError, OSError) as e:  # a mode Pillow cannot convert: still the file's fault
            raise InputError(f"the {image.format} image cannot be read ({e})") from e

    @router.post("/api/read", response_model=Reading, response_model_exclude_none=True,
                 summary="Read a string: a number, a word or a code", responses=INPUT_ERRORS)
    def read(body: Annotated[ReadRequest, Body(openapi_examples=READ_EXAMPLES)]) -> Reading:
        """Strokes in writing order (or an image of one line): the text, each character with its
        alternatives, status, box and the strokes that make it, and whole-text alternatives.

        Before reading, a zigzag drawn over earlier strokes erases them (`erased`; `scratch_out:
        false` turns it off). Strokes written one line under another are read line by line
        (`lines`; `text` joins them with a newline). Characters the writer confirmed (`known`:
        their strokes and label) are kept while the rest is re-read: send them with every read
        of the same drawing. Hints: `charset`, `pattern` ("LLDDD"; one per line, joined by
        newlines), `words`. A 422 says what to fix."""
        options = dict(charset=body.charset, top_k=body.top_k, pattern=body.pattern,
                       words=body.words, n_best=body.alternatives)
        try:
            if body.strokes is not None:
                return read_strokes(body, options)
            image = open_image(decode_base64_image(body.image))
            return answer(read_image(image, **options), body.charset, False)
        except (InkError, InputError):
            raise
        except ValueError as e:  # e.g. a pattern no reading fits
            raise InputError(str(e)) from e

    @router.post("/api/read/upload", response_model=Reading, response_model_exclude_none=True,
                 summary="Read a string from an uploaded image of one line (multipart)",
                 responses=INPUT_ERRORS)
    def read_upload(
        file: Annotated[UploadFile, File(description="A PNG, JPEG or WebP image of one line")],
        top_k: Annotated[FormInt, Form(ge=1, le=47)] = 3,
        charset: Annotated[Charset, Form()] = "all",
        pattern: Annotated[str | None, Form(min_length=1, max_length=100,
                                            pattern=r"^[DLdl?]+$")] = None,
    ) -> Reading:
        image = open_image(file.file.read(MAX_IMAGE_BYTES + 1))  # one byte over is enough to refuse
        return answer(read_image(image, charset=charset, top_k=top_k, pattern=pattern),
                      charset, False)

    return router

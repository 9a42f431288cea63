"""The web app: the drawing page and the JSON API (OpenAPI at /docs).

Run it with `emnist-draw serve`, which calls `create_app` (with --workers, uvicorn calls it in each
worker, the model named by $EMNIST_DRAW_MODEL). Inference is ONNX Runtime: nothing here imports
torch.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emnist_draw import preprocess, store
from emnist_draw.data import MERGED_LETTERS
from emnist_draw.recognizer import CHARSETS, display_label
from emnist_draw.server import security
from emnist_draw.server.apidocs import add_api_docs
from emnist_draw.server.feedback import feedback_router
from emnist_draw.server.inputs import (InkError, InputError, batch_to_inputs,
                                       decode_base64_image, decode_ink, demo_string_to_input,
                                       open_image, request_to_input)
from emnist_draw.server.predictor import Predictor
from emnist_draw.server.reading import read_router
from emnist_draw.deadline import check_time
from emnist_draw.reader import column_runs
from emnist_draw.status import Ink, image_ink, strokes_ink
from emnist_draw.server.schemas import (ERROR_RESPONSES, INPUT_ERRORS, MAX_BATCH,
                                        MAX_BODY_BYTES, MAX_IMAGE_BYTES, BatchBody,
                                        BatchPrediction, Charset, FormInt, PredictBody, Prediction,
                                        PredictRequest, limits)

MODEL_ENV = "EMNIST_DRAW_MODEL"
# uvicorn sets up its own loggers only; this one reaches its console.
log = logging.getLogger("uvicorn.error")
STATIC_DIR = Path(__file__).parent / "static"
MAX_ERRORS_SHOWN = 5
HEAVY_WORK_THREADS = 2
# Images up to this many pixels (a canvas snapshot is ~0.1 M) decode on the event loop: under ~8 ms,
# the order of a long strokes request, and a thread hop costs more than the work (0.6 ms of
# ~1.8 ms per request, bench/profile_request.py). Larger ones go to the decoding threads.
INLINE_IMAGE_PIXELS = 512 * 512
MAX_LOC_CHARS = 40  # a field name echoed in an error: a client's 8 MB key is not sent back
API_DESCRIPTION = f"""Write a digit, a Latin letter, or a whole number, word or code; a CNN trained
on EMNIST-balanced (47 classes) reads it, with calibrated probabilities and a status for each
answer. Inference runs on ONNX Runtime.

* `POST /api/predict`: JSON with one of `strokes` (point lists, any units, y down; optional
  `canvas`), `image` (data URL or base64 of a PNG, JPEG or WebP) or `pixels` (784 values 0-255,
  white ink on black); options `top_k`, `charset` (all, digits, letters), `return_input`.
  The original demo's body, a JSON string of 784 comma-separated integers, works too
  (also at `POST /predict`).
* `POST /api/predict/upload`: an image file as multipart form data (field `file`), with the same
  options as form fields.
* `POST /api/predict/batch`: a JSON list of up to {MAX_BATCH} `/api/predict` objects.
* `POST /api/read`: a string (a number, a word, a code): `strokes` in writing order, or an `image`
  of one line; options `charset`, `pattern` ("LLDDD": D a digit, L a letter, ? either), `words`,
  `known` (characters the writer confirmed, kept while the rest is re-read), `top_k`,
  `alternatives`. Answers the `text`, each character with its alternatives, status, box and the
  strokes that make it, and whole-string alternatives. `POST /api/read/upload` takes a file.
* `POST /api/feedback`: a correction, the `/api/predict` ink plus `label` (the right character)
  and `predicted`; answered 201 with its `id` once stored. `POST /api/feedback/read`: a string's
  correction (its strokes, what was read, the right `text`, per character its strokes).
  `GET /api/feedback/stats`: counts.

Classes EMNIST-balanced merges (c i j k l m o p s u v w x y z) are one class, named by the upper
case; `display` says "C / c". Bad input is answered with 413 or 422 and a `detail` that says what
to fix; `GET /api/model` lists the limits.
"""
WARM_REQUEST = {"strokes": [[[10, 10], [10, 90]]], "return_input": True}


def create_app(model: str | Path | None = None, data_dir: str | Path | None = None, *,
               cors_origins: Iterable[str] | None = None, rate_limit: int | None = None,
               request_timeout: float | None = None) -> FastAPI:
    """The app, serving `model` (a shipped name or an .onnx path; default: $EMNIST_DRAW_MODEL),
    keeping corrections in `data_dir` (default: $EMNIST_DRAW_DATA or ./data) or $DATABASE_URL.

    cors_origins, rate_limit (requests a minute per client IP) and request_timeout (seconds): see
    emnist_draw.server.security; None reads them from the environment (how --workers passes them).
    """
    protection = security.SecurityOptions.resolve(cors_origins, rate_limit, request_timeout)
    predictor = Predictor(model or os.environ.get(MODEL_ENV) or None)
    corrections = store.open_store(data_dir)  # migrates the schema first (see emnist_draw.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The model is warm already; one request through the app warms the rest (the threadpool,
        # validation, serialisation), so the first client waits no longer than the next.
        status = await _request(app, "/api/predict", json.dumps(WARM_REQUEST).encode())
        log.info("model %s from %s: loaded and warmed in %.0f ms (warm-up request: %d)",
                 predictor.name, predictor.recognizer.path, predictor.load_ms, status)
        yield

    app = FastAPI(title="emnist-draw", version=_package_version(), lifespan=lifespan,
                  description=API_DESCRIPTION, responses=ERROR_RESPONSES,
                  docs_url=None, redoc_url=None)  # served offline by add_api_docs below
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    security.install(app, protection)  # headers, CORS, rate limit, timeout, the JSON 500
    _install_error_handlers(app)

    @functools.cache
    def heavy_work() -> anyio.CapacityLimiter:  # made on first use, inside the event loop
        return anyio.CapacityLimiter(HEAVY_WORK_THREADS)

    def read(req: PredictRequest) -> np.ndarray:
        try:
            return request_to_input(req)
        except (InkError, InputError):
            raise
        except ValueError as e:  # anything else preprocessing refuses is still the input's fault
            raise InputError(str(e)) from e

    def read_image(image_file: Image.Image) -> tuple[np.ndarray, Ink]:
        """An opened image -> the 28x28 input and its ink's shape facts (several characters?)."""
        ink = decode_ink(image_file)
        return preprocess.normalize(ink), predictor.image_ink(ink)

    def ink_of(req: PredictRequest) -> Ink | None:
        """The strokes' shape facts, for the answer's status; pixels have none."""
        if req.strokes is None:
            return None
        return predictor.ink(req.points, _canvas(req))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.post("/api/predict", response_model=Prediction, response_model_exclude_none=True,
              summary="Read one character", responses=INPUT_ERRORS)
    # async: strokes or pixels are about a millisecond of CPU (at most ~50 ms at the schema's
    # limits), so they run on the event loop. A plain `def` would cost two threadpool hops per
    # request (the endpoint, then FastAPI's check of the answer), which bench/profile_request.py
    # found to be the largest share of a request after preprocessing and inference; with the GIL,
    # the threadpool gave no parallelism for this work anyway. Batches and uploads stay in the pool.
    async def predict(body: Annotated[PredictBody, Body()]) -> Prediction:
        """A JSON object with one of `strokes`, `image` or `pixels` (see the schema), or the original
        demo's body: a JSON string of 784 comma-separated integers, `"[0,0,...]"`."""
        if isinstance(body, str):
            return predictor.predict(demo_string_to_input(body)[None], [(5, "all", False)])[0]
        options = (body.top_k, body.charset, body.return_input)

        def answer(image: np.ndarray, ink: Ink | None) -> Prediction:
            return predictor.predict(image[None], [options], [ink])[0]

        # Heavy work goes to a thread, so it neither stalls the other requests nor escapes the
        # request timeout: decoding a large image (~0.4 s at the limits), and the string read
        # that tells whether wide ink is several characters (up to ~30 ms). Two threads at most:
        # with the GIL, more only thrash (the whole threadpool cost 2.5x the CPU per image at 64
        # clients).
        async def in_thread(work: Callable[[], Prediction]) -> Prediction:
            return await anyio.to_thread.run_sync(work, limiter=heavy_work())

        async def settled(facts: Ink, parts: int, work: Callable[[], Prediction]) -> Prediction:
            """work() inline, or in a thread where it will read the ink as a string."""
            if predictor.needs_reading(facts, parts):
                return await in_thread(work)
            return work()

        if body.image is not None:
            image_file = open_image(decode_base64_image(body.image))
            width, height = image_file.size
            if width * height > INLINE_IMAGE_PIXELS:
                return await in_thread(lambda: answer(*read_image(image_file)))
            ink = decode_ink(image_file)
            facts = image_ink(ink)

            return await settled(facts, column_runs(ink), lambda: answer(
                preprocess.normalize(ink), predictor.image_ink(ink, facts)))
        if body.strokes is None:  # pixels: no shape facts
            return answer(read(body), None)
        facts = strokes_ink(body.points, _canvas(body))
        return await settled(facts, len(body.points), lambda: answer(
            read(body), predictor.ink(body.points, facts=facts)))

    # The original demo's path, for clients written against it.
    app.post("/predict", response_model=Prediction, response_model_exclude_none=True,
             summary="Read one character (the original demo's path)",
             responses=INPUT_ERRORS)(predict)

    @app.post("/api/predict/upload", response_model=Prediction, response_model_exclude_none=True,
              summary="Read one character from an uploaded image file (multipart)",
              responses=INPUT_ERRORS)
    def predict_upload(
        file: Annotated[UploadFile, File(description="A PNG, JPEG or WebP image")],
        top_k: Annotated[FormInt, Form(ge=1, le=47)] = 5,
        charset: Annotated[Charset, Form()] = "all",
        return_input: Annotated[bool, Form()] = False,
    ) -> Prediction:
        data = file.file.read(MAX_IMAGE_BYTES + 1)  # one byte over is enough to refuse it
        image, ink = read_image(open_image(data))
        return predictor.predict(image[None], [(top_k, charset, return_input)], [ink])[0]

    @app.post("/api/predict/batch", response_model=BatchPrediction,
              response_model_exclude_none=True,
              summary=f"Read up to {MAX_BATCH} characters in one call",
              responses=INPUT_ERRORS)
    def predict_batch(body: Annotated[BatchBody, Body()]) -> BatchPrediction:
        """A JSON list of the objects `/api/predict` takes; answers in the same order. One bad item
        refuses the whole batch, naming the item."""
        images = batch_to_inputs(body)  # bounded: pixels per batch, the request's deadline
        inks = []
        for r in body:  # each item's shape facts may read it as a string: bounded, deadline too
            check_time()
            inks.append(ink_of(r))
        options = [(r.top_k, r.charset, r.return_input) for r in body]
        return BatchPrediction(model=predictor.name, predictions=predictor.predict(
            np.stack(images), options, inks))

    @app.get("/api/model", summary="The model: classes, figures, preprocessing, limits")
    def model_info() -> dict[str, Any]:
        meta = predictor.recognizer.metadata
        classes = predictor.recognizer.classes
        return {
            "name": predictor.name,
            "version": app.version,
            "classes": classes,
            "display": {c: display_label(c) for c in classes},
            "merged_letters": MERGED_LETTERS,
            "charsets": list(CHARSETS),
            "metrics": meta.get("validation"),
            "parameters": meta.get("parameters"),
            "onnx_sha256": meta.get("onnx_sha256"),
            "input": meta.get("input"),
            "preprocessing": _preprocessing_constants(),
            "limits": limits(),
        }

    @app.get("/healthz", summary="Liveness; says which model is served")
    def healthz() -> dict[str, Any]:
        # torch_imported is how the tests check that serving stays torch-free.
        return {"status": "ok", "model": predictor.name, "torch_imported": "torch" in sys.modules}

    app.include_router(feedback_router(predictor, corrections, read))
    app.include_router(read_router(predictor))
    add_api_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _canvas(req: PredictRequest) -> tuple[float, float] | None:
    return (req.canvas.width, req.canvas.height) if req.canvas else None


async def _request(app: ASGIApp, path: str, body: bytes) -> int:
    """POST body to path inside the process, as a client would; returns the status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
             security.INTERNAL: True,  # spends no client's rate-limit token
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def _package_version() -> str:
    try:
        return version("emnist-draw")
    except PackageNotFoundError:
        return "unknown"


def _preprocessing_constants() -> dict[str, Any]:
    """The preprocessing module's upper-case constants (sizes, margins...), as it defines them."""
    return {name: value for name, value in vars(preprocess).items()
            if name.isupper() and isinstance(value, (int, float, str, tuple))}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InkError)
    @app.exception_handler(InputError)
    async def unreadable(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if isinstance(exc.body, bytes):  # FastAPI hands over raw bytes when it is not sent as JSON
            got = request.headers.get("content-type", "")[:60]
            return JSONResponse({"detail": "send the body as JSON, with the header "
                                           f"Content-Type: application/json (got {got!r})"},
                                status_code=415)
        errors = exc.errors()
        return JSONResponse({"detail": validation_message(errors),
                             "errors": [{"loc": [x if isinstance(x, int) else _short(x)
                                                 for x in e.get("loc", ())],
                                         "msg": e.get("msg")}
                                        for e in errors[:MAX_ERRORS_SHOWN]]},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # A body that cannot be parsed gets a bare 400 from FastAPI ("There was an error parsing
        # the body": JSON nested too deeply, not UTF-8, a number of thousands of digits) or from
        # Starlette (broken multipart). Like any other unreadable input it is a 422 that says why.
        form = "form" in request.headers.get("content-type", "")
        if exc.status_code == 400 and (exc.detail == PARSE_ERROR or form):
            return JSONResponse({"detail": unparsable_body_message(exc, form)}, status_code=422)
        return await http_exception_handler(request, exc)


PARSE_ERROR = "There was an error parsing the body"  # FastAPI's words (fastapi.routing)


def unparsable_body_message(exc: HTTPException, form: bool) -> str:
    """Why a body could not be parsed, from the 400 that FastAPI or Starlette raised."""
    cause = exc.__cause__
    if exc.detail != PARSE_ERROR:  # Starlette's multipart messages say it well already
        reason = str(exc.detail)
    elif isinstance(cause, RecursionError):
        reason = "nested too deeply"
    elif isinstance(cause, UnicodeError):
        reason = "not UTF-8 text"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        reason = "a number has too many digits"
    else:
        reason = type(cause).__name__
    if form:
        return f"the form data could not be read ({reason})"
    return f"the body is not valid JSON ({reason})"


def _short(part: object) -> str:
    text = str(part)
    return text if len(text) <= MAX_LOC_CHARS else text[:MAX_LOC_CHARS] + "..."


def validation_message(errors: list[dict]) -> str:
    """Pydantic's error list as one sentence a person can act on."""
    parts = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        loc = [_short(x) for x in e.get("loc", ())]
        if loc[:1] in (["body"], ["form"], ["query"]):
            loc = loc[1:]
        if loc[:1] in (["request"], ["demo"]):  # the tags of the predict body's two forms
            loc = loc[1:]
        kind, msg = e.get("type", ""), str(e.get("msg", "")).removeprefix("Value error, ")
        if kind == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({reason})" if reason else
                         "the body is not valid JSON")
            continue
        if kind == "missing" and not loc:
            parts.append("a JSON body is required")
            continue
        if kind in ("model_attributes_type", "dict_type") and not loc:
            parts.append("the body must be a JSON object with one of 'strokes', 'image' or "
                         "'pixels' (or the original demo's string of 784 integers)")
            continue
        if kind == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "; ".join(parts)


class BodyLimit:
    """Refuse a request body over max_bytes with 413, without reading more of it than that."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self._message(int(declared))}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def limited() -> Message:
            # A chunked body declares no length: count it as it arrives.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message(received))
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return f"the body is over the {self.max_bytes:,}-byte limit ({size:,} bytes or more)"


__all__ = ["create_app", "MODEL_ENV", "validation_message"]

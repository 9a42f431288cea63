"""What keeps the app safe to expose: security headers, CORS, a rate limit, time and size limits,
and a last-resort handler that answers an unexpected error without a traceback.

All of it is plain ASGI middleware (no BaseHTTPMiddleware: it would buffer responses and mishandle
cancellation). `install` adds it to an app in the order the comments there explain. With several
workers, each process keeps its own rate-limit counts: the limit is per worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emnist_draw.deadline import DEADLINE, check_time
from emnist_draw.server.schemas import MAX_BODY_BYTES, MAX_JSON_VALUES

# How `emnist-draw serve --workers N` hands the options to each worker's create_app().
CORS_ENV = "EMNIST_DRAW_CORS_ORIGINS"  # space-separated origins
RATE_LIMIT_ENV = "EMNIST_DRAW_RATE_LIMIT"  # requests per minute per client IP; 0: off
TIMEOUT_ENV = "EMNIST_DRAW_REQUEST_TIMEOUT"  # seconds; 0: off

DEFAULT_REQUEST_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 5  # uvicorn's timeout_keep_alive: how long an idle connection is kept open

# The page and the API: only this server's own scripts, styles and fetches. img-src allows data:
# for the page's favicon (`data:,`). Nothing may frame the page (clickjacking).
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
# /docs (Swagger UI) and /redoc: their code, styles and favicon come from this server too
# (apidocs.py). Both libraries render with inline styles, and ReDoc runs its search in a blob:
# worker, which 'self' alone would block.
DOCS_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# Only these are rate-limited: the page, its files and /healthz cost nothing and must stay up.
RATE_LIMITED_PREFIXES = ("/api/", "/predict")
# A scope key no client can set: the app's own warm-up request, which spends no client's token.
INTERNAL = "emnist_draw.internal"
# Object keys (counted as ':' bytes) a JSON body may hold: the largest valid request, a batch of
# 64 objects, has ~600; a 5,000-word list with a colon in each word still fits. Unknown keys cost
# ~2 us each to refuse (pydantic builds an error for every one): 249,000 took 1-1.7 s; 10,000 take
# ~15 ms.
MAX_JSON_KEYS = 10_000
# The bodies FastAPI parses as forms (Starlette's parser, which has its own limits), not as JSON.
FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")
# API requests (POST) one worker works on at once, and how many more may wait for a turn. CPU
# work holds Python's GIL: past a few at once, more only slow each other down and starve the event
# loop that answers /healthz (45 batches at once kept it waiting 7-8 s). Past both, 503.
MAX_ACTIVE = 2
MAX_WAITING = 64

log = logging.getLogger("uvicorn.error")


@dataclass
class SecurityOptions:
    """What `emnist-draw serve` can change; None in create_app means: read the environment."""

    cors_origins: list[str] = field(default_factory=list)
    rate_limit: int = 0  # requests per minute per client IP; 0: no limit
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S  # seconds; 0: no limit

    @classmethod
    def resolve(cls, cors_origins: Iterable[str] | None = None, rate_limit: int | None = None,
                request_timeout: float | None = None) -> SecurityOptions:
        """The arguments given, the environment for those that are None, else the defaults."""
        if cors_origins is None:
            cors_origins = os.environ.get(CORS_ENV, "").split()
        if rate_limit is None:
            rate_limit = int(os.environ.get(RATE_LIMIT_ENV) or 0)
        if request_timeout is None:
            request_timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_REQUEST_TIMEOUT_S)
        options = cls(list(cors_origins), rate_limit, request_timeout)
        options.check()
        return options

    def check(self) -> None:
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"CORS origin {origin!r}: give scheme://host[:port], "
                                 "e.g. https://example.org")
            if origin.endswith("/"):
                raise ValueError(f"CORS origin {origin!r}: an origin has no path; drop the '/'")
        if self.rate_limit < 0:
            raise ValueError("the rate limit is requests per minute: 0 (off) or more")
        if not math.isfinite(self.request_timeout) or self.request_timeout < 0:
            raise ValueError("the request timeout is seconds: 0 (off) or more")

    def environ(self) -> dict[str, str]:
        """These options as the environment variables `resolve` reads (for worker processes)."""
        return {CORS_ENV: " ".join(self.cors_origins), RATE_LIMIT_ENV: str(self.rate_limit),
                TIMEOUT_ENV: str(self.request_timeout)}


def install(app: Starlette, options: SecurityOptions) -> None:
    """Add the middleware to a Starlette/FastAPI app; call it after the app's own middleware.

    add_middleware puts each new one outside the others, so the order here is inside-out:
    JSON budget, work limit, timeout, rate limit, CORS, error handler, headers. The headers go on
    every answer, errors included; CORS headers go on 413, 429 and 503 too, so a browser client
    can read them; the rate limit refuses before any body is read; waiting for a turn counts
    towards the request timeout.
    """
    # Uploads are capped at MAX_BODY_BYTES, so Starlette can keep them in memory instead of a
    # temporary file: nothing a client sends is ever written to disk.
    MultiPartParser.spool_max_size = MAX_BODY_BYTES
    # No trailing-slash redirects: Starlette builds their Location from the client's Host header
    # (`GET /api/predict/` with `Host: evil.example` was sent to http://evil.example/api/predict).
    app.router.redirect_slashes = False
    app.add_middleware(JsonBudget, max_values=MAX_JSON_VALUES, max_keys=MAX_JSON_KEYS)
    app.add_middleware(WorkLimit, active=MAX_ACTIVE, waiting=MAX_WAITING)
    if options.request_timeout:
        app.add_middleware(RequestTimeout, seconds=options.request_timeout)
    if options.rate_limit:
        app.add_middleware(RateLimit, per_minute=options.rate_limit)
    if options.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=options.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type"],
                           max_age=600)
    app.add_middleware(ServerErrors)
    app.add_middleware(SecurityHeaders)


def _json_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class SecurityHeaders:
    """Add the security headers (and the CSP for the path) to every response that lacks them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else PAGE_CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {"content-security-policy": csp, **SECURITY_HEADERS}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class StartTracking:
    """A `send` that notes whether the response has begun: after that, an error answer is too
    late (its status line would land inside the response already sent)."""

    def __init__(self, send: Send):
        self.send, self.started = send, False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class ServerErrors:
    """An exception nobody handled: log it with its traceback, answer a JSON 500 without one.

    Starlette's own handler would answer plain text, outside the other middleware (no security
    headers); inputs are meant never to get here, this is the net under the net.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracking = StartTracking(send)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope["path"])
            if tracking.started:  # too late for another status line: the connection is dropped
                return
            response = _json_response(500, "internal error: the server could not answer this "
                                           "request (it has been logged)")
            await response(scope, receive, send)


class RequestTimeout:
    """Answer 503 when one request takes longer than `seconds` (reading its body included).

    A slow client's body, or any await that stalls, is cut off. Work already running in a thread
    (preprocessing, inference) cannot be interrupted; it sees the deadline through `check_time`
    (threads inherit the context) and stops at its next check, since its answer would be dropped.
    """

    def __init__(self, app: ASGIApp, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracking = StartTracking(send)
        DEADLINE.set(time.monotonic() + self.seconds)  # this request's task's own context

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking)
        except TimeoutError:
            log.warning("%s %s: stopped after %g s", scope.get("method"), scope["path"],
                        self.seconds)
            if not tracking.started:
                response = _json_response(
                    503, f"the request took longer than {self.seconds:g} s and was stopped; "
                         "send it again (and all of its body at once)", {"retry-after": "1"})
                await response(scope, receive, send)


class WorkLimit:
    """At most `active` API requests (POST) at work at once, `waiting` more queued, else 503.

    A request takes its turn once its whole body has arrived (so a slow client holds no turn),
    just before the app parses it; it waits in order, and the request timeout bounds the wait.
    One over active + waiting is refused at once, before its body is read.
    """

    def __init__(self, app: ASGIApp, active: int, waiting: int):
        self.app, self.active, self.waiting = app, active, waiting
        self.admitted = 0  # requests past the door: at work or waiting for a turn
        self.turns: asyncio.Semaphore | None = None  # made in the event loop, on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if self.admitted >= self.active + self.waiting:
            response = _json_response(503, "the server is busy: too many requests at once; try "
                                           "again in a second", {"retry-after": "1"})
            return await response(scope, receive, send)
        self.turns = self.turns or asyncio.Semaphore(self.active)
        turns, holding = self.turns, False

        async def in_turn() -> Message:
            nonlocal holding
            message = await receive()
            if not holding and message["type"] == "http.request" and not message.get("more_body"):
                await turns.acquire()
                holding = True
            return message

        self.admitted += 1
        try:
            await self.app(scope, in_turn, send)
        finally:
            self.admitted -= 1
            if holding:
                turns.release()


class RateLimit:
    """At most `per_minute` API requests per client IP per minute (a token bucket), else 429.

    The bucket holds `per_minute` tokens and refills at per_minute/60 a second, so a burst of
    that many is allowed, then one every 60/per_minute seconds. Counts live in this process, in a
    table kept in order of last use: O(1) per request, at most `max_clients` entries.
    """

    def __init__(self, app: ASGIApp, per_minute: int, max_clients: int = 10_000):
        self.app, self.capacity = app, float(per_minute)
        self.per_second = per_minute / 60
        self.max_clients = max_clients
        # client -> (tokens, when), least recently seen first
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not scope["path"].startswith(RATE_LIMITED_PREFIXES)
                or scope.get(INTERNAL)):
            return await self.app(scope, receive, send)
        wait = self.take(scope["client"][0] if scope.get("client") else "unknown")
        if wait:
            retry = math.ceil(wait)
            response = _json_response(
                429, f"too many requests: the limit is {self.capacity:g} a minute per client; "
                     f"try again in {retry} s", {"retry-after": str(retry)})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def take(self, client: str, now: float | None = None) -> float:
        """Take a token for client: 0 if it had one, else the seconds until it will."""
        now = time.monotonic() if now is None else now
        tokens, when = self.buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
        self.buckets[client] = (tokens - 1 if tokens >= 1 else tokens, now)  # now the newest
        self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        # A bucket idle long enough to be full again is the same as no bucket: the oldest ones
        # go while they are that idle, and past max_clients the least recently seen go anyway
        # (it can only give them a fresh burst), so the table never grows without bound.
        full_after = self.capacity / self.per_second
        while self.buckets:
            oldest, (_, when) = next(iter(self.buckets.items()))
            if len(self.buckets) <= self.max_clients and now - when < full_after:
                break
            del self.buckets[oldest]


class JsonBudget:
    """Refuse (413) a JSON body with more than `max_values` arrays, objects and list items, or
    more than `max_keys` object keys.

    Parsing happens in the event loop, before any validation: eight megabytes of `[0],[0],...`
    would hold every other request up for a second or more, then produce a million validation
    errors. Counting the bytes that open a value or separate two (`[`, `{`, `,`), and the colons
    that follow keys, bounds that cost cheaply; the largest valid request stays well inside both.

    The budget applies to every body but a form's (whatever the media type says, a body no
    route parses as JSON is refused anyway), and a request with two Content-Type headers is
    refused: FastAPI reads the first and this middleware once read the last, so
    `application/json` then `text/plain` had 8 MB parsed unchecked.
    """

    def __init__(self, app: ASGIApp, max_values: int, max_keys: int):
        self.app, self.max_values, self.max_keys = app, max_values, max_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        types = [v for k, v in scope["headers"] if k == b"content-type"]
        if len(types) > 1:
            response = _json_response(400, f"the request has {len(types)} Content-Type headers; "
                                           "send one (application/json)")
            return await response(scope, receive, send)
        if types and types[0].split(b";")[0].strip().lower() in FORM_TYPES:
            return await self.app(scope, receive, send)
        values = keys = 0

        async def counting() -> Message:
            nonlocal values, keys
            message = await receive()
            body = message.get("body", b"")
            values += body.count(b",") + body.count(b"[") + body.count(b"{")
            keys += body.count(b":")
            if values > self.max_values:
                raise HTTPException(413, f"the JSON body holds more than {self.max_values:,} "
                                         "values (list items, arrays and objects); send less, "
                                         "or split a batch")
            if keys > self.max_keys:
                raise HTTPException(413, f"the JSON body holds more than {self.max_keys:,} "
                                         "object keys (or colons); send only the documented "
                                         "fields")
            return message

        await self.app(scope, counting, send)


__all__ = ["CORS_ENV", "DEFAULT_REQUEST_TIMEOUT_S", "DOCS_CSP", "INTERNAL", "KEEP_ALIVE_S",
           "MAX_JSON_KEYS", "PAGE_CSP", "RATE_LIMIT_ENV", "RateLimit", "SecurityOptions",
           "TIMEOUT_ENV", "WorkLimit", "check_time", "install"]

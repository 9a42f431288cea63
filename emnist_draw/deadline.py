"""A request's deadline, seen by long work in any layer (the string reader, a batch).

The server sets it per request (server.security.RequestTimeout); threads inherit the context, so
work running in the threadpool stops at its next `check_time()` once nobody would receive its
answer. Outside a request there is no deadline.
"""

from __future__ import annotations

import contextvars
import math
import time

DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)


def check_time() -> None:
    """Raise TimeoutError once this request is past its deadline."""
    if time.monotonic() > DEADLINE.get():
        raise TimeoutError("past the request's deadline")

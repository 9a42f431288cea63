"""Where a request's time goes: JSON parsing, validation, preprocessing, inference, answer,
serialisation, the framework and the HTTP server, per request kind.

    .venv/bin/python bench/profile_request.py [--requests 2000] [--json out.json]   # about 1 minute
    .venv/bin/python bench/profile_request.py --pyinstrument strokes   # + a profiler's call tree

Each step is timed on its own, in this process, doing what FastAPI does for POST /api/predict
(fastapi/routing.py: json.loads of the body, the body type's pydantic validate_python, the
endpoint, then the response model's validate_python + dump_json), median over --requests calls.
"framework" is the rest of a request through the app in-process (ASGI: middleware, routing,
FastAPI's dependency solving). The server's total is the CPU time of a live `emnist-draw serve`
per request over sequential keep-alive requests on loopback; "HTTP server" (uvicorn's parsing,
sockets, access log) is taken from the no-work endpoint (its live CPU minus its in-process CPU),
and "the rest" is what remains: the same steps running slower than in the tight in-process loops,
with caches made colder by the client and the server taking turns on the CPUs.

All figures are CPU time (they equal the wall time on a quiet machine, and unlike it they still
hold on a busy one); the no-work endpoint's CPU per request is given for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import time
from typing import Any, Callable

import benchlib

from pydantic import TypeAdapter  # noqa: E402

from emnist_draw.recognizer import to_input  # noqa: E402
from emnist_draw.server.app import create_app  # noqa: E402
from emnist_draw.server.inputs import demo_string_to_input, request_to_input  # noqa: E402
from emnist_draw.server.predictor import Predictor  # noqa: E402
from reference_apps import noop_app  # noqa: E402
from emnist_draw.server.schemas import PredictBody, Prediction  # noqa: E402

OPTIONS = (5, "all", False)  # the server's defaults for all three request kinds


def cpu_us(fn: Callable[[], Any], n: int) -> float:
    """Median CPU microseconds of fn() (the whole process's CPU time: threads included)."""
    for _ in range(min(50, n // 10 + 1)):
        fn()
    times = []
    for _ in range(n):
        c = time.process_time()
        fn()
        times.append(time.process_time() - c)
    return 1e6 * benchlib.median(times)


class InProcess:
    """POST bodies straight into the ASGI app, as uvicorn would, without sockets."""

    def __init__(self, app: Any):
        self.app, self.loop = app, asyncio.new_event_loop()

    def post(self, body: bytes) -> int:
        return self.loop.run_until_complete(self._post(body))

    async def _post(self, body: bytes) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/api/predict",
                 "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
                 "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 8000),
                 "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())]}
        sent = False
        status = []

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # a client that stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await self.app(scope, receive, send)
        return status[0]


def live_cpu_us(command: list[str], port: int, body: bytes, n: int,
                ready: bytes) -> tuple[float, float]:
    """(server CPU us per request, client-observed median wall us) over n sequential requests."""
    with benchlib.server(command, port, ready) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(50):
            benchlib.post(port, body, conn=conn)
        pids = srv.pids()
        before = sum(benchlib.cpu_seconds(p) for p in pids)
        walls = []
        for _ in range(n):
            t = time.perf_counter()
            status, _ = benchlib.post(port, body, conn=conn)
            walls.append(time.perf_counter() - t)
            assert status == 200, status
        used = sum(benchlib.cpu_seconds(p) for p in pids) - before
        conn.close()
    return 1e6 * used / n, 1e6 * benchlib.median(walls)


def breakdown(kind: str, body: bytes, app: Any, predictor: Predictor, n: int,
              live_n: int, http_us: float) -> dict[str, Any]:
    adapter = TypeAdapter(PredictBody)
    answer_adapter = TypeAdapter(Prediction)
    obj = json.loads(body)
    req = adapter.validate_python(obj, from_attributes=True)
    pre = (lambda: demo_string_to_input(req)) if isinstance(req, str) else (lambda: request_to_input(req))
    image = pre()
    session, name = predictor.recognizer.session, predictor.recognizer.input_name
    answer = predictor.predict(image[None], [OPTIONS])[0]
    steps = {
        "JSON parsing": cpu_us(lambda: json.loads(body), n),
        "request validation": cpu_us(lambda: adapter.validate_python(obj, from_attributes=True), n),
        "preprocessing": cpu_us(pre, n),
        "inference (ONNX Runtime)": cpu_us(lambda: session.run(None, {name: to_input(image[None])}), n),
    }
    steps["top-k + answer objects"] = max(
        0.0, cpu_us(lambda: predictor.predict(image[None], [OPTIONS]), n) - steps["inference (ONNX Runtime)"])
    steps["response validation + JSON"] = cpu_us(
        lambda: answer_adapter.dump_json(answer_adapter.validate_python(answer, from_attributes=True),
                                         exclude_none=True), n)
    client = InProcess(app)
    assert client.post(body) == 200
    in_process = cpu_us(lambda: client.post(body), n)
    steps["framework (middleware, routing, FastAPI)"] = in_process - sum(steps.values())
    port = benchlib.free_port()
    live, wall = live_cpu_us(benchlib.product_command(port, 1), port, body, live_n, body)
    steps["HTTP server (uvicorn, sockets, access log)"] = http_us
    steps["the rest (colder caches, process switches)"] = live - in_process - http_us
    return {"request": kind, "body_bytes": len(body), "steps_us": steps, "total_us": live,
            "in_process_us": in_process, "client_wall_us": wall}


def pyinstrument_tree(app: Any, body: bytes, n: int) -> str:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "pyinstrument is not installed (.venv/bin/pip install pyinstrument)"
    import fastapi.routing

    # pyinstrument sees this thread only, and FastAPI runs a sync endpoint (and the validation of
    # its answer) in its threadpool: run those inline here, so the tree shows the whole request.
    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    saved = fastapi.routing.run_in_threadpool
    fastapi.routing.run_in_threadpool = inline
    try:
        client = InProcess(app)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(n):
            client.post(body)
        profiler.stop()
    finally:
        fastapi.routing.run_in_threadpool = saved
    return profiler.output_text(unicode=False, color=False, show_all=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="calls per step (median)")
    parser.add_argument("--live-requests", type=int, default=2000,
                        help="sequential requests to the live server, for its CPU per request")
    parser.add_argument("--pyinstrument", default=None, metavar="KIND",
                        help="also print pyinstrument's tree for requests of this kind, in-process")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    bodies = benchlib.bodies()
    # The HTTP server's own share, from the no-work endpoint: live CPU minus in-process CPU.
    port = benchlib.free_port()
    noop_us, noop_wall = live_cpu_us(benchlib.reference_command("noop", port), port,
                                     bodies["strokes"], args.live_requests, None)
    noop_inproc = InProcess(noop_app())
    noop_inproc.post(bodies["strokes"])
    noop_in_process_us = cpu_us(lambda: noop_inproc.post(bodies["strokes"]), args.requests)
    http_us = noop_us - noop_in_process_us
    app = create_app(data_dir=benchlib.data_dir())
    predictor = Predictor()  # the same model as the app's, for timing its steps one by one
    results = [breakdown(kind, body, app, predictor, args.requests, args.live_requests, http_us)
               for kind, body in bodies.items()]
    print(benchlib.machine_line(m))
    names = list(results[0]["steps_us"])
    rows = []
    for name in names:
        row: list[Any] = [name]
        for r in results:
            us = r["steps_us"][name]
            row += [us, f"{100 * us / r['total_us']:.0f}%"]
        rows.append(row)
    total: list[Any] = ["total: server CPU per request"]
    for r in results:
        total += [r["total_us"], "100%"]
    rows.append(total)
    columns = ["step"] + [c for r in results for c in (f"{r['request']} us", "share")]
    print(benchlib.table("Where a request's CPU time goes (microseconds, median; POST /api/predict, "
                         "1 worker)", columns, rows))
    print(f"\nfor scale: the no-work endpoint costs the server {noop_us:.0f} us of CPU per request "
          f"(strokes body; {noop_in_process_us:.0f} us of it in the app, the rest is the HTTP "
          f"server's share above); the client saw a median round trip of "
          + ", ".join(f"{r['request']} {r['client_wall_us'] / 1000:.2f} ms" for r in results)
          + f" (no-work endpoint {noop_wall / 1000:.2f} ms)")
    if args.pyinstrument:
        print(f"\npyinstrument, {args.requests} {args.pyinstrument} requests in-process:")
        print(pyinstrument_tree(app, bodies[args.pyinstrument], args.requests))
    benchlib.write_json(args.json, {"machine": m, "results": results,
                                    "noop_server_cpu_us": noop_us, "noop_client_wall_us": noop_wall,
                                    "noop_in_process_us": noop_in_process_us,
                                    "http_server_us": http_us})


if __name__ == "__main__":
    main()

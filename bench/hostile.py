"""Hostile requests, each alone against one worker: what it costs the server, and its neighbours.

    .venv/bin/python bench/hostile.py [--before ba6edba] [--json out.json]   # 1-3 minutes

Each case is a small body built to cost as much as the limits allow (combs of 1-pixel ink columns,
100 one-point strokes, the longest pattern, a batch of 64). For each: the answer's status, the
worker's CPU seconds from the request until its CPU stops moving (so work done after the answer,
or after a 503, counts too; the probes' own, about a millisecond each, too), the longest a `GET /healthz` probed every 20 ms meanwhile waited, and
the worker's RSS once it settles. Goals (issue 21): every case <= 0.5 s of CPU, /healthz never
waits over 0.25 s, RSS <= 300 MB after all.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import benchlib
import versus

GOAL_CPU_S = 0.5
GOAL_HEALTHZ_S = 0.25
GOAL_RSS_MB = 300
PROBE_EVERY_S = 0.02
PROBE_AFTER_S = 0.5


def comb_png(width: int, height: int, step: int = 2) -> bytes:
    """Black 1-pixel columns every `step` pixels on white: one column run per `step` pixels."""
    pixels = np.full((height, width), 255, np.uint8)
    pixels[:, ::step] = 0
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", optimize=True)
    return out.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


DOTS = [[[i, (i * 37) % 100]] for i in range(100)]  # 100 one-point strokes, wide and scattered


def zigzags(n: int = 100, points: int = 100) -> list:
    """n touching strokes of `points` points each, side by side: every run of 1-4 of them is a
    candidate character, and each is as long as the limits allow (10,000 points in all)."""
    t = np.linspace(0, 1, points)
    return [np.c_[i * 10 + 12 * t, 50 + 40 * np.sin(6 * np.pi * t)].round(1).tolist()
            for i in range(n)]


def multipart(png: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "hostile-bench-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="comb.png"\r\nContent-Type: image/png\r\n\r\n'.encode() + png + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def cases() -> list[tuple[str, str, bytes, str]]:
    """(name, path, body, content type)."""
    as_json = "application/json"
    comb = data_url(comb_png(1024, 64))
    upload, form_type = multipart(comb_png(408, 64), {"pattern": "?" * 100})
    return [
        ("predict: 1024x64 comb image", "/api/predict", json.dumps({"image": comb}).encode(), as_json),
        ("read: 1024x64 comb image", "/api/read", json.dumps({"image": comb}).encode(), as_json),
        ("read: 1024x1024 comb image", "/api/read",
         json.dumps({"image": data_url(comb_png(1024, 1024))}).encode(), as_json),
        ("read: 200x64 comb (100 runs), pattern of 100", "/api/read",
         json.dumps({"image": data_url(comb_png(200, 64)), "pattern": "?" * 100}).encode(), as_json),
        ("read/upload: 408x64 comb, pattern of 100", "/api/read/upload", upload, form_type),
        ("predict: 100 one-point strokes", "/api/predict", json.dumps({"strokes": DOTS}).encode(), as_json),
        ("predict/batch: 64 x 100 one-point strokes", "/api/predict/batch",
         json.dumps([{"strokes": DOTS}] * 64).encode(), as_json),
        ("read: 100 one-point strokes, pattern of 100", "/api/read",
         json.dumps({"strokes": DOTS, "pattern": "?" * 100}).encode(), as_json),
        # (scratch_out off: the zigzags would otherwise be erased as scratch-outs, unread)
        ("read: 100 strokes x 100 points", "/api/read",
         json.dumps({"strokes": zigzags(), "scratch_out": False}).encode(), as_json),
        ("read: 100 strokes x 100 points, pattern of 100", "/api/read",
         json.dumps({"strokes": zigzags(), "pattern": "?" * 100, "scratch_out": False}).encode(),
         as_json),
    ]


def settle(pid: int, quiet_s: float = 0.5, limit_s: float = 60) -> float:
    """Wait until the process's CPU time stops moving for quiet_s; its CPU time then."""
    deadline, last = time.monotonic() + limit_s, benchlib.cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = benchlib.cpu_seconds(pid)
        if now - last < 0.01:
            return now
        last = now
    return last


def probe(port: int, stop: threading.Event, waits: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        waits.append(time.perf_counter() - started)
        time.sleep(PROBE_EVERY_S)
    conn.close()


def run_case(port: int, pid: int, path: str, body: bytes, content_type: str) -> dict[str, Any]:
    before = settle(pid)
    waits: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(port, stop, waits))
    prober.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": content_type})
    response = conn.getresponse()
    detail = response.read()
    answered_s = time.perf_counter() - started
    conn.close()
    # Probes go on a little past the answer (work left running would still stall them), then
    # stop: their own CPU (about a millisecond each) would keep the worker from ever settling.
    time.sleep(PROBE_AFTER_S)
    stop.set()
    prober.join()
    after = settle(pid)
    status = response.status
    if status == 200 and path.endswith("predict"):
        status = f"200 {json.loads(detail)['status']}"
    return {"bytes": len(body), "status": status, "answer_s": answered_s,
            "cpu_s": after - before, "healthz_max_s": max(waits, default=float("nan")),
            "rss_mb": benchlib.memory_kb(pid)["rss"] / 1024}


def run_all(command: list[str], port: int, cwd: Path) -> dict[str, Any]:
    ready = benchlib.bodies()["strokes"]
    results = []
    with benchlib.server(command, port, ready, cwd=cwd) as srv:
        pid = srv.workers()[0]
        rss_start = benchlib.memory_kb(pid)["rss"] / 1024
        for name, path, body, content_type in cases():
            results.append({"case": name, **run_case(port, pid, path, body, content_type)})
        rss_end = benchlib.memory_kb(pid)["rss"] / 1024
    return {"cases": results, "rss_mb_start": rss_start, "rss_mb_end": rss_end,
            "worst_cpu_s": max(r["cpu_s"] for r in results),
            "worst_healthz_s": max(r["healthz_max_s"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, metavar="COMMIT",
                        help="also run the cases against this commit's code (bench/versus.py's "
                             "worktree), first, for a before/after in one run")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    runs = {}
    if args.before:
        code, port = versus.checkout(args.before), benchlib.free_port()
        runs[args.before] = run_all(versus.command(code, port), port, code)
    port = benchlib.free_port()
    runs["this checkout"] = run_all(benchlib.product_command(port, 1), port, benchlib.ROOT)
    print(benchlib.machine_line(m))
    for name, run in runs.items():
        rows = [[r["case"], r["bytes"], r["status"], f"{r['cpu_s']:.2f}",
                 f"{r['healthz_max_s'] * 1000:.0f}", f"{r['rss_mb']:.0f}"] for r in run["cases"]]
        print(benchlib.table(f"hostile requests, one worker: {name}",
                             ["case", "bytes", "status", "server CPU s", "worst /healthz ms",
                              "RSS MB"], rows))
        print(f"RSS: {run['rss_mb_start']:.0f} MB at start, {run['rss_mb_end']:.0f} MB after all "
              f"(goal <= {GOAL_RSS_MB}); worst CPU {run['worst_cpu_s']:.2f} s (goal <= "
              f"{GOAL_CPU_S}); worst /healthz wait {run['worst_healthz_s'] * 1000:.0f} ms (goal "
              f"<= {GOAL_HEALTHZ_S * 1000:.0f})")
    benchlib.write_json(args.json, {"machine": m, "runs": runs})


if __name__ == "__main__":
    main()

"""Mixed load on a live server: many clients reading drawings and sending corrections at once.

    .venv/bin/python bench/load_test.py [--duration 30] [--clients 16] [--workers 2]
                                        [--corrections 0.5] [--data-dir DIR] [--json]

Starts `emnist-draw serve --workers N` on a fresh data folder (or on $DATABASE_URL's PostgreSQL
database), runs the clients (threads, one HTTP connection each) for the given time, stops the
server, then reads the database itself: every correction the server acknowledged (201) must be
there with what was sent. Prints requests sent, errors, corrections acknowledged vs found,
p50/p95 latency, and the RSS of the server processes at start and end. `--json` adds one JSON
line with the same figures (tests/test_feedback_durability.py runs it so).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from emnist_draw import store  # noqa: E402
from emnist_draw.data import BALANCED_CLASSES, MERGED_LETTERS  # noqa: E402
from emnist_draw.server.feedback import to_class  # noqa: E402

START_TIMEOUT_S = 300  # a busy 2-core machine can take a minute to start two workers
READY = "Application startup complete."  # what uvicorn logs once a worker's start-up is done
# What people may type as the right answer: every class, and the lower case of merged letters.
LABELS = BALANCED_CLASSES + MERGED_LETTERS


def random_strokes(rng: random.Random) -> list[list[list[float]]]:
    """1-3 pen strokes on a 280x280 pad, as the page sends them: ints and 1-decimal floats."""
    strokes = []
    for _ in range(rng.randint(1, 3)):
        x, y = rng.uniform(40, 240), rng.uniform(40, 240)
        points = []
        for _ in range(rng.randint(5, 60)):
            x = min(270, max(10, x + rng.uniform(-12, 12)))
            y = min(270, max(10, y + rng.uniform(-12, 12)))
            points.append([round(x) if rng.random() < 0.3 else round(x, 1), round(y, 1)])
        strokes.append(points)
    return strokes


@dataclass
class Tally:
    """What the clients saw; one per thread, merged at the end (no locks while running)."""

    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"predict": [], "feedback": []})
    errors: list[str] = field(default_factory=list)
    acknowledged: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> what was sent


def client(url: str, seed: int, share: float, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            body: dict[str, Any] = {"strokes": random_strokes(rng),
                                    "canvas": {"width": 280, "height": 280}}
            kind = "feedback" if rng.random() < share else "predict"
            if kind == "feedback":
                body |= {"label": rng.choice(LABELS), "predicted": rng.choice(BALANCED_CLASSES)}
            started = time.perf_counter()
            try:
                r = http.post(f"/api/{kind}", json=body)
            except httpx.HTTPError as e:
                tally.errors.append(f"{kind}: {type(e).__name__}: {e}")
                continue
            tally.latencies[kind].append(time.perf_counter() - started)
            if r.status_code != (201 if kind == "feedback" else 200):
                tally.errors.append(f"{kind}: {r.status_code} {r.text[:200]}")
            elif kind == "feedback":
                tally.acknowledged[r.json()["id"]] = body


def server_processes(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mb(pid: int) -> list[float]:
    """RSS of the server and each of its child processes (uvicorn's workers), in MB."""
    out = []
    for p in server_processes(pid):
        try:
            out.append(round(p.memory_info().rss / 2**20, 1))
        except psutil.NoSuchProcess:
            pass
    return out


def start_server(workers: int, data_dir: Path) -> tuple[subprocess.Popen, str, Path]:
    """The server, once every worker is ready: (process, base URL, its log file)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).with_name("emnist-draw")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "emnist_draw.cli"]
    # Appended to by the server, read here through a handle of our own (no shared offset).
    log_path = Path(tempfile.mkstemp(prefix="emnist-draw-load-", suffix=".log")[1])
    # Log level info: uvicorn then says when each worker is ready (and logs every request).
    with log_path.open("a") as log:
        proc = subprocess.Popen([*base, "serve", "--port", str(port), "--workers", str(workers),
                                 "--data-dir", str(data_dir), "--log-level", "info"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            log = log_path.read_text()[-2000:]
            log_path.unlink()
            raise SystemExit(f"the server exited ({proc.returncode}): {log}")
        # Every worker warm (one alone would take all the load at first and skew the figures).
        if log_path.read_text().count(READY) >= workers:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return proc, url, log_path
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            log_path.unlink()
            raise SystemExit(f"the server did not answer in {START_TIMEOUT_S} s")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()  # uvicorn's supervisor stops its workers on SIGTERM
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def verify(url: Any, acknowledged: dict[int, dict[str, Any]]) -> dict[str, int]:
    """Read the database: is every acknowledged correction there, as sent?"""
    engine = store.make_engine(url)
    try:
        stored = {c.id: c for c in store.iter_corrections(engine)}
    finally:
        engine.dispose()
    found = mismatched = 0
    for cid, body in acknowledged.items():
        row = stored.get(cid)
        if row is None:
            continue
        sent_ink = {k: body[k] for k in ("strokes", "canvas")}
        if (row.label == to_class(body["label"]) and row.predicted == body["predicted"]
                and store.ink_json(row.ink) == store.ink_json(sent_ink)
                and row.input.shape == (28, 28) and row.input.any()):
            found += 1
        else:
            mismatched += 1
    return {"stored": len(stored), "found": found, "mismatched": mismatched,
            "missing": len(acknowledged) - found - mismatched}


def percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (threads)")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--corrections", type=float, default=0.5,
                        help="share of requests that are corrections (the rest: predictions)")
    parser.add_argument("--data-dir", default=None,
                        help="the server's data folder (default: a fresh temp folder)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="emnist-draw-load-") as scratch:
        run(args, Path(args.data_dir or scratch))


def run(args: argparse.Namespace, data_dir: Path) -> None:
    url = store.database_url(data_dir)  # $DATABASE_URL when set, as the server sees it
    proc, base, log_path = start_server(args.workers, data_dir)
    try:
        rss_start = rss_mb(proc.pid)
        deadline = time.monotonic() + args.duration
        tallies = [Tally() for _ in range(args.clients)]
        threads = [threading.Thread(target=client, args=(base, i, args.corrections, deadline, t))
                   for i, t in enumerate(tallies)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_end = rss_mb(proc.pid)
    finally:
        stop_server(proc)
        log_path.unlink(missing_ok=True)

    latencies = {k: [x for t in tallies for x in t.latencies[k]] for k in ("predict", "feedback")}
    every = latencies["predict"] + latencies["feedback"]
    errors = [e for t in tallies for e in t.errors]
    acknowledged = {k: v for t in tallies for k, v in t.acknowledged.items()}
    check = verify(url, acknowledged)
    result = {
        "backend": url.get_backend_name(), "workers": args.workers, "clients": args.clients,
        "seconds": round(elapsed, 1), "requests": len(every) + len(errors),
        "requests_per_second": round((len(every) + len(errors)) / elapsed, 1),
        "predictions": len(latencies["predict"]), "errors": len(errors),
        "first_errors": errors[:5], "corrections_acknowledged": len(acknowledged),
        "corrections_found": check["found"], "corrections_mismatched": check["mismatched"],
        "corrections_missing": check["missing"], "rows_stored": check["stored"],
        "p50_ms": percentile_ms(every, 50), "p95_ms": percentile_ms(every, 95),
        "predict_p50_ms": percentile_ms(latencies["predict"], 50),
        "predict_p95_ms": percentile_ms(latencies["predict"], 95),
        "feedback_p50_ms": percentile_ms(latencies["feedback"], 50),
        "feedback_p95_ms": percentile_ms(latencies["feedback"], 95),
        "rss_mb_start": rss_start, "rss_mb_end": rss_end,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(f"{result['backend']}, {args.workers} workers, {args.clients} clients, "
          f"{result['seconds']} s: {result['requests']} requests "
          f"({result['requests_per_second']}/s), {result['errors']} errors")
    print(f"corrections acknowledged {len(acknowledged)}, found {check['found']}, "
          f"mismatched {check['mismatched']}, missing {check['missing']} "
          f"(rows stored: {check['stored']})")
    print(f"latency p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms "
          f"(predict {result['predict_p50_ms']}/{result['predict_p95_ms']}, "
          f"feedback {result['feedback_p50_ms']}/{result['feedback_p95_ms']})")
    print(f"server RSS MB (supervisor, workers...): start {rss_start}, end {rss_end}")
    for e in errors[:5]:
        print(f"error: {e}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

"""This checkout against an earlier commit, side by side in one run: start-up and the cost of
`POST /api/predict` on real drawn characters.

    .venv/bin/python bench/versus.py [--commit 084e302] [--repeat 7] [--requests 2000] [--json PATH]
                                                                          # about 2 minutes

The commit is checked out (git worktree, under build/) and served by this venv's Python with its
own code and model files first on the path; both servers run with the same options, one at a time,
alternating, so that a busy or throttled machine slows both alike. Figures:
- start-up: from starting `serve` to its first 200 on /api/predict (median of --repeat starts);
- overhead: p50 of /api/predict minus p50 of GET /healthz at one client, over UNIPEN characters
  of the measure writers as the page sends them (strokes on a 280-pixel pad, a canvas), so
  that the characters wider than tall, a quarter of real ones, are in the mix.
Issue 21's goals: both no worse than at 084e302, and on the project's machine <= 0.8 ms and
<= 0.5 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import benchlib

PAD = 280


def checkout(commit: str) -> Path:
    """A worktree of commit under build/versus/ (made once, reused)."""
    folder = benchlib.ROOT / "build" / "versus" / commit
    if not (folder / "emnist_draw").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(benchlib.ROOT), "worktree", "add", "--force", "--detach",
                        str(folder), commit], check=True, capture_output=True)
    return folder


def command(code: Path, port: int) -> list[str]:
    # -m from the code's folder: it comes before the venv's editable install of this checkout.
    data = Path(benchlib.data_dir()) / code.name  # each its own database: their migrations differ
    data.mkdir(exist_ok=True)
    return [sys.executable, "-m", "emnist_draw.cli", "serve", "--port", str(port),
            "--workers", "1", "--data-dir", str(data)]


def bodies(n: int) -> list[bytes]:
    """n UNIPEN characters of the measure writers, scaled onto the pad as the page sends them."""
    sys.path.insert(0, str(benchlib.ROOT))
    from emnist_draw.unipen import load_samples

    out = []
    for sample in load_samples("measure", "OK")[:n]:
        points = np.concatenate([np.asarray(s, float) for s in sample.strokes])
        low, high = points.min(0), points.max(0)
        scale = 0.7 * PAD / max(float((high - low).max()), 1e-9)
        strokes = [((np.asarray(s, float) - (low + high) / 2) * scale + PAD / 2).round(1).tolist()
                   for s in sample.strokes]
        out.append(json.dumps({"strokes": strokes,
                               "canvas": {"width": PAD, "height": PAD}}).encode())
    return out


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> float:
    started = time.perf_counter()
    conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    response.read()
    assert response.status == 200, (path, response.status)
    return time.perf_counter() - started


def overhead(code: Path, requests: list[bytes]) -> dict[str, float]:
    port = benchlib.free_port()
    with benchlib.server(command(code, port), port, requests[0], cwd=code):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in requests[:50]:  # warm both paths
            timed(conn, "POST", "/api/predict", body)
            timed(conn, "GET", "/healthz", None)
        predict, healthz = [], []
        for body in requests:  # interleaved: the same moments of the machine for both
            predict.append(timed(conn, "POST", "/api/predict", body))
            healthz.append(timed(conn, "GET", "/healthz", None))
        conn.close()
    p50, h50 = benchlib.median(predict) * 1000, benchlib.median(healthz) * 1000
    return {"predict_p50_ms": p50, "healthz_p50_ms": h50, "overhead_ms": p50 - h50}


def startup(code: Path, body: bytes) -> tuple[float, float]:
    port = benchlib.free_port()
    with benchlib.server(command(code, port), port, body, cwd=code) as srv:
        return srv.ready_s, srv.extra["ready_cpu_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="084e302")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    codes = {"this checkout": benchlib.ROOT, args.commit: checkout(args.commit)}
    requests = bodies(args.requests)
    for code in codes.values():  # a first start each, untimed: bytecode, the database
        startup(code, requests[0])
    starts: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
    for _ in range(args.repeat):
        for name, code in codes.items():
            starts[name].append(startup(code, requests[0]))
    costs = {name: overhead(code, requests) for name, code in codes.items()}
    rows, results = [], {}
    for name in codes:
        wall = benchlib.median([w for w, _ in starts[name]])
        cpu = benchlib.median([c for _, c in starts[name]])
        results[name] = {"startup_s": wall, "startup_cpu_s": cpu, **costs[name]}
        rows.append([name, f"{wall:.2f}", f"{cpu:.2f}", f"{costs[name]['predict_p50_ms']:.2f}",
                     f"{costs[name]['healthz_p50_ms']:.2f}", f"{costs[name]['overhead_ms']:.2f}"])
    print(benchlib.machine_line(m))
    print(benchlib.table(f"side by side, {len(requests)} real characters, one client",
                         ["code", "start-up s", "start-up CPU s", "predict p50 ms",
                          "healthz p50 ms", "predict - healthz ms"], rows))
    new, old = results["this checkout"], results[args.commit]
    print(f"\nratios (this checkout / {args.commit}): overhead "
          f"{new['overhead_ms'] / old['overhead_ms']:.2f}x, start-up "
          f"{new['startup_s'] / old['startup_s']:.2f}x")
    benchlib.write_json(args.json, {"machine": m, "commit": args.commit, "results": results})


if __name__ == "__main__":
    main()

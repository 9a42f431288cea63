"""Resident memory of each server process over 10,000 requests, sampled every 1,000.

    .venv/bin/python bench/memory.py [--requests 10000] [--workers 1,2] [--json out.json]
                                                                   # about 1 minute

For each worker count: starts `emnist-draw serve --workers N`, sends --requests requests (the
strokes, image and 784-pixel requests in turn, from --connections keep-alive connections, so
that every worker gets its share), and reads each process's RSS (and PSS, which splits the pages
that processes share) from /proc before the first request and after every --every requests.
"Growth" is the RSS after the last request minus the RSS after the first --every requests (the
first requests still allocate caches and buffers once).
"""

from __future__ import annotations

import argparse
import http.client
import threading
from typing import Any

import benchlib

GOAL_MB = 150


def send(port: int, bodies: list[bytes], n: int, connections: int, errors: list[int]) -> None:
    """n requests over `connections` threads, one keep-alive connection each."""
    def client(count: int, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(count):
            status, _ = benchlib.post(port, bodies[(offset + i) % len(bodies)], conn=conn)
            if status != 200:
                errors.append(status)
        conn.close()
    per = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=client, args=(c, i)) for i, c in enumerate(per)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(workers: int, requests: int, every: int, connections: int) -> dict[str, Any]:
    bodies = list(benchlib.bodies().values())
    port = benchlib.free_port()
    with benchlib.server(benchlib.product_command(port, workers), port, bodies[0]) as srv:
        pids = srv.workers()
        supervisor = srv.proc.pid if workers > 1 else None
        samples = [{"requests": 0, **{str(p): benchlib.memory_kb(p) for p in pids}}]
        errors: list[int] = []
        done = 0
        while done < requests:
            n = min(every, requests - done)
            send(port, bodies, n, connections, errors)
            done += n
            samples.append({"requests": done, **{str(p): benchlib.memory_kb(p) for p in pids}})
        sup = benchlib.memory_kb(supervisor) if supervisor else None
    per_worker = []
    for p in pids:
        rss = [s[str(p)]["rss"] / 1024 for s in samples]
        pss = [s[str(p)]["pss"] / 1024 for s in samples]
        base = rss[1] if len(rss) > 1 else rss[0]
        per_worker.append({"pid": p, "rss_mb_start": rss[0], "rss_mb_end": rss[-1],
                           "pss_mb_end": pss[-1], "rss_mb_max": max(rss),
                           "growth_mb": rss[-1] - base, "rss_mb_series": rss})
    return {"workers": workers, "requests": requests, "errors": len(errors),
            "supervisor_rss_mb": sup["rss"] / 1024 if sup else None, "per_worker": per_worker}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="sample RSS every this many")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    results = [run(int(w), args.requests, args.every, args.connections)
               for w in args.workers.split(",")]
    print(benchlib.machine_line(m))
    rows = []
    for r in results:
        for i, w in enumerate(r["per_worker"]):
            rows.append([r["workers"], i + 1, r["requests"], w["rss_mb_start"], w["rss_mb_end"],
                         w["pss_mb_end"], w["rss_mb_max"], w["growth_mb"], r["errors"],
                         f"< {GOAL_MB}", "yes" if w["rss_mb_max"] < GOAL_MB else "NO"])
    print(benchlib.table(
        f"Resident memory per worker process (MB), {args.requests:,} requests "
        f"(strokes, image, pixels in turn), sampled every {args.every:,}",
        ["workers", "worker", "requests", "RSS at start", "RSS at end", "PSS at end", "RSS max",
         f"growth after the first {args.every:,}", "errors", "goal", "met"], rows))
    for r in results:
        if r["supervisor_rss_mb"]:
            print(f"with {r['workers']} workers, uvicorn's supervisor process: "
                  f"{r['supervisor_rss_mb']:.1f} MB RSS (serves no requests)")
    print("\nRSS every {:,} requests, per worker:".format(args.every))
    for r in results:
        for i, w in enumerate(r["per_worker"]):
            print(f"  {r['workers']} workers, worker {i + 1}: "
                  + " ".join(f"{v:.1f}" for v in w["rss_mb_series"]))
    benchlib.write_json(args.json, {"machine": m, "goal_mb": GOAL_MB, "results": results})


if __name__ == "__main__":
    main()

"""Start-up: from `emnist-draw serve` being started to its first 200 on POST /api/predict.

    .venv/bin/python bench/startup.py [--repeat 7] [--json out.json]      # about 15 s

Each repetition starts a fresh process (the page's strokes request is posted every 5 ms until one
is answered 200), then stops it; the median over the repetitions is the figure. The first start,
untimed, creates the corrections database (SQLite, in a scratch folder) and the bytecode of
changed files, as the first start of an install does; the timed ones are ordinary restarts.
"CPU s" is the CPU time the server process used until then (with --workers 1): close to the wall
time on a quiet machine, and still meaningful on a busy one, where the wall time is not.
"""

from __future__ import annotations

import argparse
import time

import benchlib

GOAL_S = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    body = benchlib.bodies()["strokes"]
    # One start first, untimed: it creates the corrections database and compiles bytecode after
    # a change, as the first start of a new install does; the timed ones are ordinary restarts.
    port = benchlib.free_port()
    with benchlib.server(benchlib.product_command(port, args.workers), port, body):
        pass
    times, cpu = [], []
    for _ in range(args.repeat):
        port = benchlib.free_port()
        with benchlib.server(benchlib.product_command(port, args.workers), port, body) as srv:
            times.append(srv.ready_s)
            cpu.append(srv.extra["ready_cpu_s"])
        time.sleep(0.2)
    med = benchlib.median(times)
    rows = [["emnist-draw serve", args.workers, args.repeat, med, min(times), max(times),
             benchlib.median(cpu), f"< {GOAL_S}", "yes" if med < GOAL_S else "NO"]]
    print(benchlib.machine_line(m))
    print(benchlib.table("Start-up: process start to the first 200 on POST /api/predict (seconds)",
                         ["server", "workers", "runs", "median s", "min s", "max s", "CPU s (median)",
                          "goal", "met"],
                         rows))
    benchlib.write_json(args.json, {"machine": m, "workers": args.workers, "seconds": times,
                                    "cpu_seconds": cpu,
                                    "median_s": med, "goal_s": GOAL_S})


if __name__ == "__main__":
    main()

"""What reading a string costs over HTTP, in single-character reads: POST /api/read of a real
5-8 character string against POST /api/predict of one real character, on a live server.

    .venv/bin/python bench/read_http.py [--requests 200] [--json out.json]   # about 1 minute

`emnist-draw serve` (one worker) on loopback; one keep-alive client sends the two kinds in turns,
so both see the same machine at the same moment. The strings are printed words and numbers of
the UNIPEN tune writers, each sent once: the server keeps the candidates of recent reads, and a
string sent again would cost less than a new one (the page sends a string again with one more
stroke; that is the "one more stroke" figure of `read_strings.py --speed`). The characters are
their isolated characters. Medians of the client's wall time per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path

import benchlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from emnist_draw.reader import balanced_form  # noqa: E402
from emnist_draw.unipen import load_samples, load_written  # noqa: E402

LENGTHS = range(5, 9)  # the "a 5-8 character /api/read"


def bodies(count: int) -> tuple[list[bytes], list[bytes]]:
    """`count` /api/predict bodies of one character and `count` + 1 /api/read bodies of a
    string (the first one warms the server up, and is not timed)."""
    strings = [s for s in load_written("tune") if s.printed and s.kind in ("word", "number")
               and len(balanced_form(s.text)) in LENGTHS]
    characters = load_samples("tune", "OK")
    pick = lambda items, n: [items[round(i * (len(items) - 1) / max(n - 1, 1))]  # noqa: E731
                             for i in range(n)]
    return ([json.dumps({"strokes": s.strokes}).encode() for s in pick(characters, count)],
            [json.dumps({"strokes": s.strokes}).encode() for s in pick(strings, count + 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="of each kind")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    single, strings = bodies(args.requests)
    port = benchlib.free_port()
    times: dict[str, list[float]] = {"/api/predict": [], "/api/read": []}
    with benchlib.server(benchlib.product_command(port), port, single[0]) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        # The word list loads on the first read; a string read again would hit the server's
        # recent candidates, so the warm-up string is not among the timed ones.
        benchlib.post(port, strings[0], "/api/read", conn=conn)
        for one, string in zip(single, strings[1:]):
            for path, body in (("/api/predict", one), ("/api/read", string)):
                start = time.perf_counter()
                status, answer = benchlib.post(port, body, path, conn=conn)
                times[path].append(1000 * (time.perf_counter() - start))
                if status != 200:
                    sys.exit(f"{path} answered {status}: {answer[:300]!r}\n{srv.log_tail()}")
        conn.close()
    p50 = {path: benchlib.median(t) for path, t in times.items()}
    result = {"machine": benchlib.machine(), "requests": args.requests,
              "p50_ms": {path: round(v, 2) for path, v in p50.items()},
              "read_in_predicts": round(p50["/api/read"] / p50["/api/predict"], 2)}
    print(benchlib.machine_line(result["machine"]))
    print(benchlib.table("one worker, loopback, p50 of the client's wall time",
                         ["request", "ms"], [[k, f"{v:.2f}"] for k, v in p50.items()]))
    print(f"a 5-8 character /api/read costs {result['read_in_predicts']} /api/predict calls")
    benchlib.write_json(args.json, result)


if __name__ == "__main__":
    main()

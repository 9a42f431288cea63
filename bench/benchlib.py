"""What the benchmarks in bench/ share: machine facts, servers in child processes, request bodies,
process memory, and the printed table / --json output.

Not a benchmark itself; the scripts beside it import it (`python bench/X.py` puts bench/ on the path).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
sys.path.insert(0, str(ROOT))  # run from a checkout without install

# The drawing every HTTP benchmark sends: a "7" with a crossbar, as the page sends it (points in
# CSS pixels of a 280x280 pad, one point every few pixels of pen travel): 3 strokes, 120 points.
CANVAS = 280


def _line(p: tuple[float, float], q: tuple[float, float], n: int) -> list[list[float]]:
    return [[round(p[0] + (q[0] - p[0]) * t / (n - 1), 1), round(p[1] + (q[1] - p[1]) * t / (n - 1), 1)]
            for t in range(n)]


STROKES = [_line((60, 50), (215, 45), 40) + _line((215, 45), (110, 240), 50)[1:],
           _line((95, 140), (190, 140), 31)]


def machine() -> dict[str, Any]:
    """nproc, CPU model, and how busy the machine was just before the run (0 = quiet)."""
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "busy_before": cpu_busy(1.0)}


def cpu_busy(seconds: float) -> float:
    """Fraction of all CPUs busy over the next `seconds` (anything running: ourselves included)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)
    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except OSError:
        return float("nan")
    return round((busy1 - busy0) / max(total1 - total0, 1), 3)


def machine_line(m: dict[str, Any]) -> str:
    quiet = "quiet" if m["busy_before"] < 0.05 else f"BUSY: {m['busy_before']:.0%} of the CPUs in use before the run"
    return (f"machine: {m['cpu']}, nproc {m['nproc']}, Python {m['python']}, "
            f"load average {m['loadavg_1m']} ({quiet})")


# --- request bodies -------------------------------------------------------------------------------

def png_of_strokes(strokes: list = STROKES, size: int = CANVAS) -> bytes:
    """The drawing as the page's canvas would export it: black ink on white, PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=0, width=14, joint="curve")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def pixels_of_strokes(strokes: list = STROKES) -> list[int]:
    from emnist_draw.preprocess import strokes_to_input

    return strokes_to_input(strokes, canvas_size=(CANVAS, CANVAS)).reshape(-1).tolist()


def bodies() -> dict[str, bytes]:
    """The three request kinds of the HTTP benchmarks, as raw JSON bodies for POST /api/predict.

    strokes: the page's request; image: a PNG data URL (what a client with a picture sends);
    pixels: the original demo's body, a JSON *string* of 784 comma-separated integers.
    """
    demo = json.dumps(pixels_of_strokes(), separators=(",", ":"))
    return {
        "strokes": json.dumps({"strokes": STROKES, "canvas": {"width": CANVAS, "height": CANVAS}}).encode(),
        "image": json.dumps({"image": "data:image/png;base64,"
                                      + base64.b64encode(png_of_strokes()).decode()}).encode(),
        "pixels": json.dumps(demo).encode(),
    }


# --- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DATA_DIR: tempfile.TemporaryDirectory | None = None


def data_dir() -> str:
    """One scratch data folder (the corrections database) per benchmark run, removed at exit."""
    global _DATA_DIR
    if _DATA_DIR is None:
        _DATA_DIR = tempfile.TemporaryDirectory(prefix="bench-data-")
    return _DATA_DIR.name


def product_command(port: int, workers: int = 1, *extra: str) -> list[str]:
    """`emnist-draw serve` as users run it (the console script of this venv), its corrections
    database (SQLite) in a scratch folder."""
    script = Path(sys.executable).with_name("emnist-draw")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "emnist_draw.cli"]
    return [*base, "serve", "--port", str(port), "--workers", str(workers),
            "--data-dir", data_dir(), *extra]


# Every server runs with the defaults, except: no rate limit (all load comes from one address) and
# the corrections in SQLite even where $DATABASE_URL is set in the shell.
SERVER_ENV = {"EMNIST_DRAW_RATE_LIMIT": "0"}
UNSET_ENV = ("DATABASE_URL",)


def reference_command(app: str, port: int, workers: int = 1) -> list[str]:
    """A reference app of bench/reference_apps.py ("noop" or "seed"), served as the product is."""
    return [sys.executable, str(BENCH_DIR / "reference_apps.py"), app, "--port", str(port),
            "--workers", str(workers)]


def post(port: int, body: bytes, path: str = "/api/predict", timeout: float = 30,
         conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if conn is None:
            c.close()


@dataclass
class Server:
    command: list[str]
    port: int
    proc: subprocess.Popen
    log_path: Path
    started: float
    ready_s: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The server's processes: the one started, then its children (uvicorn's workers)."""
        return [self.proc.pid, *children(self.proc.pid)]

    def workers(self) -> list[int]:
        """The processes that answer requests: the children with --workers N > 1, else the one."""
        return children(self.proc.pid) or [self.proc.pid]

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def children(pid: int) -> list[int]:
    """Direct children of pid, from /proc (uvicorn's workers of its supervisor)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    # multiprocessing's resource tracker / semaphore helper are not workers: keep the servers only.
    return [p for p in out if "resource_tracker" not in cmdline(p)]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: unlike wall time, barely changed by
    other work on the machine, so a busy machine still gives a usable figure."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return math.nan


def memory_kb(pid: int) -> dict[str, int]:
    """Resident memory of one process: rss (what top shows) and pss (shared pages split)."""
    out = {"rss": 0, "pss": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def _pin(cpus: Sequence[int] | None, nice: int) -> Any:
    def preexec() -> None:
        os.setsid()  # its own process group: stopping it stops its workers, nothing else
        if cpus is not None:
            os.sched_setaffinity(0, set(cpus))
        if nice:
            os.nice(nice)
    return preexec


@contextmanager
def server(command: list[str], port: int, ready_body: bytes | None = None,
           cpus: Sequence[int] | None = None, nice: int = 0, timeout: float = 180,
           poll_s: float = 0.005, env: dict[str, str] | None = None,
           cwd: Path = ROOT) -> Iterator[Server]:
    """Start command (which must listen on port), wait until POST /api/predict with ready_body
    answers 200 (or, without a body, until the port accepts), yield, then stop it and its workers.

    cpus: pin it (and so its workers) to these CPUs; nice: lower its priority; cwd: where it
    runs (bench/versus.py serves another commit's code from its worktree).
    """
    log = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    environ = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    with open(log, "wb") as log_file:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**environ, **SERVER_ENV, **(env or {})},
                                preexec_fn=_pin(cpus, nice), cwd=cwd)
    srv = Server(command, port, proc, log, started)
    try:
        deadline = started + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited ({proc.returncode}):\n{srv.log_tail()}")
            try:
                if ready_body is None:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                status, _ = post(port, ready_body, timeout=60)
                if status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{' '.join(command)} not ready in {timeout} s:\n{srv.log_tail()}")
            time.sleep(poll_s)
        srv.ready_s = time.perf_counter() - started
        srv.extra["ready_cpu_s"] = cpu_seconds(proc.pid)
        if len(command) > 1 and "--workers" in command:
            wanted = int(command[command.index("--workers") + 1])
            # uvicorn starts its workers one after the other: wait until all of them answer.
            if wanted > 1:
                wait_workers(srv, wanted, ready_body, deadline)
        yield srv
    finally:
        stop(proc)
        log.unlink(missing_ok=True)


def wait_workers(srv: Server, wanted: int, ready_body: bytes | None, deadline: float) -> None:
    while len(srv.workers()) < wanted and time.perf_counter() < deadline:
        time.sleep(0.05)
    # Each worker must have loaded its model: new connections land on any of them, so a few
    # rounds of fresh connections that all succeed (and the log's "Application startup
    # complete" count) say they are all up.
    while time.perf_counter() < deadline:
        if srv.log_tail(10**7).count("Application startup complete") >= wanted:
            break
        time.sleep(0.05)
    if ready_body is not None:
        for _ in range(4 * wanted):
            post(srv.port, ready_body)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we created (the server and its workers), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- output ---------------------------------------------------------------------------------------

def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"\nwritten: {path}")


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float("nan") if not n else s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

"""Nothing acknowledged is lost: corrections under mixed concurrent load with two workers, and
corrections streaming in while the server is killed with SIGKILL. On SQLite and PostgreSQL.

The figures are printed (pytest -s shows them); README's "Corrections" section quotes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from emnist_draw import store
from emnist_draw.server.feedback import to_class

from app_helpers import START_TIMEOUT_S, free_port, serve_command
from store_backends import Backend, backend, postgres, wait_until  # noqa: F401 (fixtures)

LOAD_TEST = Path(__file__).resolve().parents[1] / "bench" / "load_test.py"
LOAD_SECONDS = 10
KILL_AFTER = 100  # acknowledged corrections before the kill
STREAMS = 4  # clients sending corrections one after another
# The restarted server must store corrections again within this: a few seconds on a quiet
# machine; generous, because a busy one (a training run beside the tests) takes far longer to
# import and load anything.
BACK_WITHIN_S = 90


def test_mixed_load_with_two_workers_loses_nothing(backend: Backend):
    done = subprocess.run(
        [sys.executable, str(LOAD_TEST), "--duration", str(LOAD_SECONDS), "--clients", "8",
         "--workers", "2", "--data-dir", str(backend.data_dir), "--json"],
        env={**os.environ, **backend.env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    print(f"\n[{backend.name}] " + "\n".join(done.stdout.splitlines()[:-1]))
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["backend"] == backend.name
    assert result["errors"] == 0, result["first_errors"]
    assert result["predictions"] > 0 and result["corrections_acknowledged"] > 0
    # Every acknowledged correction is in the database, as sent (count and content).
    assert result["corrections_found"] == result["corrections_acknowledged"]
    assert result["corrections_mismatched"] == result["corrections_missing"] == 0
    assert result["rows_stored"] == result["corrections_acknowledged"]


class Server:
    """`emnist-draw serve` in its own process group, so SIGKILL takes all of it at once."""

    def __init__(self, backend: Backend, port: int):
        self.command = serve_command("--port", str(port), "--log-level", "warning",
                                     *backend.serve_args)
        self.env = {**os.environ, **backend.env}
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile("w+")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise RuntimeError(f"the server exited ({self.proc.returncode}): "
                               f"{self.log.read()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def correction_body(stream: int, n: int) -> dict:
    """A different drawing every time, so a stored row can only match its own request."""
    x = 10 + (7 * n + 13 * stream) % 80
    return {"strokes": [[[x, 10], [x + 1, 50], [x - 3, 90.5]], [[5, 40 + n % 9], [95, 44]]],
            "canvas": {"width": 100, "height": 100}, "label": "ac7Xt"[n % 5],
            "predicted": "1"}


def test_sigkill_mid_stream_loses_no_acknowledged_correction(backend: Backend):
    server = Server(backend, free_port())
    acknowledged: dict[int, dict] = {}
    failures_before_kill: list[str] = []
    attempted = [0] * STREAMS
    killed = threading.Event()

    def stream(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            n = 0
            while not killed.is_set():
                body = correction_body(i, n)
                attempted[i] += 1
                n += 1
                try:
                    r = client.post("/api/feedback", json=body)
                except httpx.HTTPError as e:  # the kill: this request's fate is unknown
                    if not killed.wait(2):
                        failures_before_kill.append(f"{type(e).__name__}: {e}")
                    return
                if r.status_code == 201:
                    acknowledged[r.json()["id"]] = body
                elif not killed.is_set():
                    failures_before_kill.append(f"{r.status_code} {r.text[:200]}")

    try:
        server.start()
        first_start = wait_until(server.answers, START_TIMEOUT_S, "the server answering")
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(STREAMS)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acknowledged) >= KILL_AFTER or failures_before_kill, 120,
                   f"{KILL_AFTER} corrections acknowledged")
        server.kill()  # SIGKILL, mid-stream: requests are in flight
        killed.set()
        for t in threads:
            t.join(60)
        assert not failures_before_kill, failures_before_kill[:3]
        acked_at_kill = dict(acknowledged)

        # Restart on the same data: it answers, and stores, again within seconds.
        restarted = time.monotonic()
        server.start()
        wait_until(server.answers, BACK_WITHIN_S, "the restarted server answering")
        r = httpx.post(f"{server.url}/api/feedback", json=correction_body(99, 0), timeout=30)
        back_after = time.monotonic() - restarted
        assert r.status_code == 201, r.text
        assert r.json()["id"] > max(acked_at_kill)  # ids go on, never reused
    finally:
        server.stop()

    rows = {c.id: c for c in store.iter_corrections(backend.engine())}
    missing = [i for i in acked_at_kill if i not in rows]
    wrong = [i for i, body in acked_at_kill.items() if i in rows and (
        rows[i].label != to_class(body["label"]) or rows[i].predicted != body["predicted"]
        or store.ink_json(rows[i].ink) != store.ink_json(
            {"strokes": body["strokes"], "canvas": body["canvas"]}))]
    print(f"\n[{backend.name}] SIGKILL after {len(acked_at_kill)} acknowledged corrections "
          f"({sum(attempted)} sent, {sum(attempted) - len(acked_at_kill)} in flight at the kill); "
          f"after restart: {len(rows) - 1} stored before the kill, {len(missing)} acknowledged "
          f"missing, {len(wrong)} different; storing again {back_after:.1f} s after the restart "
          f"(the first start took {first_start:.1f} s)")
    assert not missing and not wrong
    # In-flight requests may or may not have been committed; nothing else can be there.
    assert len(acked_at_kill) <= len(rows) - 1 <= sum(attempted)
    assert back_after < BACK_WITHIN_S

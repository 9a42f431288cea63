"""For the API and browser tests: the real server in a child process, characters it reads clearly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from emnist_draw.preprocess import strokes_to_input
from emnist_draw.recognizer import Recognizer
from emnist_draw.unipen import Sample, load_samples

START_TIMEOUT_S = 60
# The tests rely on samples the model reads at least this surely (label smoothing keeps its
# probabilities under about 0.9, so "sure" starts lower than one might think).
CLEAR = 0.6  # top-1 right and far ahead of the runner-up; the best "3" of the measure writers is at 0.73


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    # The installed console script is what users run; -m is the same code when it is missing.
    script = Path(sys.executable).with_name("emnist-draw")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "emnist_draw.cli"]
    return [*base, "serve", *args]


@contextmanager
def live_server(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """The base URL of a server started with `emnist-draw serve <args>`, up and answering."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: nobody reads the log while the tests run, and a full pipe would block.
    log = tempfile.TemporaryFile("w+")
    # Corrections go to a scratch folder unless the test names one: never into the checkout.
    scratch = tempfile.TemporaryDirectory(prefix="emnist-draw-data-")
    env = {"EMNIST_DRAW_DATA": scratch.name, **(env or {})}
    proc = subprocess.Popen(serve_command("--port", str(port), "--log-level", "warning", *args),
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the server exited ({proc.returncode}): {log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz in {START_TIMEOUT_S} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        scratch.cleanup()


def clearly_read_unipen(recognizer: Recognizer, chars: str) -> list[Sample]:
    """One UNIPEN sample (real writers' pen strokes) of each char, read right and surely."""
    chosen: dict[str, Sample] = {}
    for sample in load_samples("measure", "OK"):
        if sample.char in chars and sample.char not in chosen:
            probs = recognizer.probabilities(strokes_to_input(sample.strokes)[None])[0]
            if recognizer.classes[int(np.argmax(probs))] == sample.char and probs.max() > CLEAR:
                chosen[sample.char] = sample
                if len(chosen) == len(chars):
                    break
    assert len(chosen) == len(chars), f"UNIPEN characters read clearly: only {sorted(chosen)}"
    return [chosen[c] for c in chars]

"""The Docker image, built from the real Dockerfile and run for real.

`make docker-test` runs this (tests/docker/run.sh: it starts dockerd if needed, builds the
stand-in base image, and removes everything labelled LABEL afterwards). Host networking only, on
127.0.0.1: the daemon here has no bridge. Timings and the image size go to build/docker/image.json.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("EMNIST_DRAW_DOCKER_TEST") != "1",
                                reason="needs root and a Docker engine: `make docker-test`")

ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("EMNIST_DRAW_BASE", "emnist-draw-base:bookworm")  # make_base.sh
IMAGE = "emnist-draw:test"
LABEL = "emnist-draw-test"  # run.sh removes every container and volume carrying it
PORT = 8000  # the image's port (EXPOSE, ENTRYPOINT, HEALTHCHECK)
REPORT = ROOT / "build" / "docker" / "image.json"
SEVEN = [[[60, 50], [240, 50], [200, 110], [150, 190], [120, 260]]]  # tests/test_api.py's "7"
CANVAS = {"width": 300, "height": 300}
report: dict[str, float | int | str] = {}


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"docker {shlex.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return done


def free_port(avoid: set[int] = frozenset()) -> int:
    """PORT unless something here holds it (host networking: the container shares the ports),
    else any free one (the kernel never hands out a port a running container holds)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PORT))
            if PORT not in avoid:
                return PORT
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, raw, kind = r.status, r.read().decode(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, kind = e.code, e.read().decode(), e.headers.get("content-type", "")
    return status, json.loads(raw) if kind.startswith("application/json") else raw


class Container:
    """The image running with host networking on 127.0.0.1:port, its /data in a named volume."""

    def __init__(self, name: str, volume: str, port: int):
        self.name, self.volume, self.port = name, volume, port
        self.url = f"http://127.0.0.1:{port}"
        args = ["run", "-d", "--name", name, "--label", LABEL, "--network", "host",
                "-v", f"{volume}:/data",
                # The image's HEALTHCHECK, polled every 2 s instead of 30 s: the test waits less.
                "--health-interval", "2s"]
        if port != PORT:  # the same check, on the port this container serves
            test = json.loads(docker("image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}",
                                     IMAGE).stdout)
            assert test[0] == "CMD"
            command = [t.replace(f":{PORT}/", f":{port}/") for t in test[1:]]
            args += ["--health-cmd", shlex.join(command)]
        # Arguments after the image go to `emnist-draw serve`; the last --host/--port wins.
        # 127.0.0.1, not the image's 0.0.0.0: with host networking that would be every interface.
        args += [IMAGE, "--host", "127.0.0.1", "--port", str(port)]
        started = time.monotonic()
        docker(*args)
        self.wait_ready(started)

    def wait_ready(self, since: float, limit: float = 120) -> float:
        """Seconds from `since` until /healthz answers 200; fails at once if the server exits."""
        while time.monotonic() - since < limit:
            if docker("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() != "true":
                pytest.fail(f"{self.name} exited:\n{self.logs()}")
            try:
                if http("GET", f"{self.url}/healthz")[0] == 200:
                    self.ready_s = time.monotonic() - since
                    return self.ready_s
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        pytest.fail(f"{self.name}: no answer on {self.url}/healthz in {limit:.0f} s\n{self.logs()}")

    def health(self) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.name).stdout.strip()

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return docker("exec", self.name, *command, check=False)

    def logs(self) -> str:
        done = docker("logs", "--tail", "40", self.name, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def volume(name: str) -> str:
    docker("volume", "create", "--label", LABEL, name)
    return name


@pytest.fixture(scope="module")
def image():
    """The real Dockerfile built on the stand-in base, the way the issue's `docker build` does."""
    assert docker("image", "inspect", BASE, check=False).returncode == 0, \
        f"no {BASE}: run tests/docker/make_base.sh (make docker-test does)"
    started = time.monotonic()
    # DOCKER_BUILDKIT=0: the classic builder ships with the engine; BuildKit needs the buildx
    # plugin, which Debian's docker.io lacks. --network host: the daemon here has no bridge.
    # --label: run.sh prunes the images of earlier builds by it; --force-rm: no build containers
    # left behind by a failed step.
    done = subprocess.run(["docker", "build", "--network", "host", "--build-arg", f"BASE={BASE}",
                           "--label", LABEL, "--force-rm", "-t", IMAGE, str(ROOT)],
                          capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert done.returncode == 0, f"docker build failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    report["build_s"] = round(time.monotonic() - started, 1)
    config = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    report["image_bytes"] = config["Size"]
    report["base_bytes"] = json.loads(docker("image", "inspect", BASE).stdout)[0]["Size"]
    yield config
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1) + "\n")


@pytest.fixture(scope="module")
def server(image):
    tag = f"{LABEL}-{os.getpid()}"
    container = Container(tag, volume(f"{tag}-data"), free_port())
    report["port"] = container.port
    report["ready_s"] = round(container.ready_s, 1)
    yield container
    container.remove()
    docker("volume", "rm", "-f", container.volume, check=False)


def test_the_image_serves_only_what_serving_needs(image):
    run = ["run", "--rm", "--label", LABEL, "--network", "none", "--entrypoint", "python", IMAGE]
    # No torch (the serving install is base + postgres extra); the PostgreSQL driver is there.
    found = docker(*run, "-c", "import importlib.util as u; "
                   "print(u.find_spec('torch') is None, u.find_spec('psycopg') is not None)")
    assert found.stdout.split() == ["True", "True"]
    assert image["Config"]["User"] == "app"
    assert f"{PORT}/tcp" in image["Config"]["ExposedPorts"] and "/data" in image["Config"]["Volumes"]


def test_health_and_a_prediction(server):
    status, health = http("GET", f"{server.url}/healthz")
    assert status == 200 and health["status"] == "ok" and health["torch_imported"] is False
    status, answer = http("POST", f"{server.url}/api/predict",
                          {"strokes": SEVEN, "canvas": CANVAS, "top_k": 3})
    assert status == 200, answer
    assert answer["prediction"] == "7" and len(answer["top_k"]) == 3
    status, page = http("GET", f"{server.url}/")
    assert status == 200 and "<canvas" in page


def test_the_healthcheck_turns_healthy(server):
    started = time.monotonic()
    while server.health() == "starting" and time.monotonic() - started < 60:
        time.sleep(0.5)
    assert server.health() == "healthy", server.logs()
    report["healthy_s"] = round(server.ready_s + time.monotonic() - started, 1)


def test_runs_as_a_user_who_writes_only_data(server):
    assert server.exec("id", "-u").stdout.strip() not in ("", "0")
    # Serving and storing a correction write nothing on the image's file system: all in /data.
    status, saved = http("POST", f"{server.url}/api/feedback",
                         {"strokes": SEVEN, "canvas": CANVAS, "label": "7", "predicted": "1"})
    assert status == 201, saved
    assert docker("diff", server.name).stdout.split() == []
    assert server.exec("touch", "/data/probe").returncode == 0
    server.exec("rm", "/data/probe")
    for path in ("/app/probe", "/app/emnist_draw/models/probe", "/opt/probe", "/usr/local/probe"):
        assert server.exec("touch", path).returncode != 0, path
    # Every path it may write: /data and the scratch directories every Debian image has.
    writable = server.exec("find", "/", "-xdev", "-writable", "-not", "-path", "/proc/*")
    assert set(writable.stdout.split()) <= {"/data", "/tmp", "/var/tmp", "/run/lock", "/var/lock"}


def test_a_correction_survives_a_restart_with_the_volume(image, server):
    tag = f"{LABEL}-{os.getpid()}-restart"
    data = volume(f"{tag}-data")
    port = free_port(avoid={server.port})
    container = Container(tag, data, port)
    try:
        status, saved = http("POST", f"{container.url}/api/feedback",
                             {"strokes": SEVEN, "canvas": CANVAS, "label": "L", "predicted": "7"})
        assert status == 201, saved
        # A string's correction too (migration 0002's table): "77" of which the second is fixed.
        status, string = http("POST", f"{container.url}/api/feedback/read", {
            "strokes": SEVEN + [[[x + 300, y] for x, y in SEVEN[0]]], "read": "77", "text": "7L",
            "segments": [[0], [1]]})
        assert status == 201 and string["characters"] == 2, string
        expected = {"count": 1, "labels": {"L": 1}, "strings": 1, "strings_replaced": 0,
                    "string_characters": 2}
        assert http("GET", f"{container.url}/api/feedback/stats")[1] == expected

        started = time.monotonic()
        docker("restart", "-t", "10", container.name)
        report["restart_s"] = round(container.wait_ready(started), 1)
        assert http("GET", f"{container.url}/api/feedback/stats")[1] == expected

        # A new container on the same volume (an upgrade): the corrections are the volume's.
        container.remove()
        container = Container(tag, data, port)
        assert http("GET", f"{container.url}/api/feedback/stats")[1] == expected
        status, again = http("POST", f"{container.url}/api/feedback",
                             {"strokes": SEVEN, "canvas": CANVAS, "label": "7", "predicted": "7"})
        assert status == 201 and again["id"] == saved["id"] + 1
    finally:
        container.remove()
        docker("volume", "rm", "-f", data, check=False)

"""The Dockerfile and compose.yaml, checked without a Docker engine, and --workers N.

The image itself is built and run by tests/docker/test_image.py (`make docker-test`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from app_helpers import live_server

ROOT = Path(__file__).resolve().parents[1]
PORT = 8000


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (CMD ["a", "b"])."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def pip_installs(commands: list[str]) -> list[list[str]]:
    """Every `pip install ...` in shell command lines, as argument lists (without the pip path)."""
    found = []
    for command in commands:
        for part in re.split(r"&&|;", command):
            words = shlex.split(part)
            if len(words) >= 2 and Path(words[0]).name == "pip" and words[1] == "install":
                found.append(words[1:])
    return found


def makefile_serve_installs() -> list[list[str]]:
    """The pip installs of the Makefile's serving setup (the $(BIN)/.serve rule of `make run`)."""
    text = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(BIN\)/\.serve:.*\n((?:\t.*\n)+)", text, re.M)
    assert rule, "the Makefile has no $(BIN)/.serve rule"
    return pip_installs([line.strip().replace("$(BIN)/", "") for line in rule.group(1).splitlines()])


def test_dockerfile_invariants():
    steps = instructions()
    keywords = [k for k, _ in steps]
    # python:3.11-slim unless --build-arg BASE=... (tests/docker builds it on a stand-in base).
    assert steps[:2] == [("ARG", "BASE=python:3.11-slim"), ("FROM", "${BASE}")]
    users = [a for k, a in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:"))
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert ("EXPOSE", str(PORT)) in steps
    entry = exec_form(dict(steps)["ENTRYPOINT"])
    assert entry[:2] == ["emnist-draw", "serve"]
    assert entry[entry.index("--host") + 1] == "0.0.0.0"  # reachable through docker run -p
    assert entry[entry.index("--port") + 1] == str(PORT)
    # The corrections database lives in a volume, where the non-root user may write.
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "EMNIST_DRAW_DATA=/data" in env and ("VOLUME", "/data") in steps
    assert any("chown" in a and "/data" in a for k, a in steps if k == "RUN")
    # The shipped model is in the image: the package folder is copied whole.
    copied = [a.split() for k, a in steps if k == "COPY"]
    assert ["emnist_draw", "./emnist_draw"] in copied
    model = ROOT / "emnist_draw" / "models" / "emnist-balanced-medium.onnx"
    assert model.is_file() and "emnist_draw" not in (ROOT / ".dockerignore").read_text().split()


def test_docker_install_is_the_makefile_serve_install():
    runs = [a for k, a in instructions() if k == "RUN"]
    docker = pip_installs(runs)
    make = makefile_serve_installs()
    assert make, "no pip install in the Makefile's serve rule"
    # Identical, but for the postgres extra (the PostgreSQL driver compose's DATABASE_URL needs).
    assert [[w.replace(".[postgres]", ".") for w in args] for args in docker] == make
    # Serving only: no torch, no training or test extras, in the image or the package's base deps.
    assert not re.search(r"torch|\[[^\]]*(train|test)", " ".join(runs))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["postgres"]:
        assert "torch" not in dep.lower()


def test_dockerignore_keeps_the_build_context_small():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "runs", "data", ".git"} <= ignored


def test_healthcheck_command_works_against_a_live_server(tmp_path):
    healthcheck = dict(instructions())["HEALTHCHECK"]
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[0] == "python" and f"127.0.0.1:{PORT}/healthz" in " ".join(command)
    with live_server("--data-dir", str(tmp_path)) as url:
        port = url.rsplit(":", 1)[1]
        here = [sys.executable, *(c.replace(f":{PORT}/", f":{port}/") for c in command[1:])]
        assert subprocess.run(here, capture_output=True, timeout=30).returncode == 0
    # And it fails when nothing answers (the server is stopped now).
    assert subprocess.run(here, capture_output=True, timeout=30).returncode != 0


def test_compose_runs_the_app_on_postgresql():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    db, app = services["db"], services["app"]
    assert db["image"].startswith("postgres")
    assert db["healthcheck"]["test"] and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    volume = next(v for v in db["volumes"] if v.endswith(":/var/lib/postgresql/data")).split(":")[0]
    assert volume in compose["volumes"]
    assert app["build"] == "." and "8000:8000" in app["ports"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    url = app["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    # The same user, password and database as the db service (password from ${POSTGRES_PASSWORD}).
    env = db["environment"]
    assert url.endswith("/" + env["POSTGRES_DB"]) and f"//{env['POSTGRES_USER']}:" in url
    password = env["POSTGRES_PASSWORD"]
    assert f":{password}@db:" in url


def worker_processes(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        out += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return [p for p in out if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]


def test_workers_are_separate_processes(tmp_path):
    """--workers 2: two spawned processes, each with its own model, answering on one port."""
    import urllib.request

    with live_server("--workers", "2", "--data-dir", str(tmp_path)) as url:
        port = url.rsplit(":", 1)[1]
        # The server process is the one whose command line names this port.
        server = next(int(p) for p in os.listdir("/proc") if p.isdigit()
                      and f"--port\0{port}\0" in _cmdline(int(p)) and "serve" in _cmdline(int(p)))
        workers = worker_processes(server)
        assert len(workers) == 2
        for w in workers:  # spawned interpreters (not forks), each loads its own ONNX Runtime
            assert "multiprocessing" in _cmdline(w)
            maps = Path(f"/proc/{w}/maps").read_text()
            assert "onnxruntime" in maps
        for _ in range(8):  # fresh connections, spread over the workers by the kernel
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:
                assert r.status == 200


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_worker_connections_keep_tcp_nodelay():
    """--workers N: accepted connections have Nagle off (else ~40 ms per keep-alive request)."""
    import asyncio
    import socket

    import uvicorn

    from emnist_draw.server.workers import with_tcp_protocol

    listener = with_tcp_protocol(uvicorn.Config("x:y", host="127.0.0.1", port=0).bind_socket())
    assert listener.proto == socket.IPPROTO_TCP
    nodelay = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        while not nodelay:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(accept_one(), 10))
    assert nodelay == [1]

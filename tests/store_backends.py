"""The corrections store's two backends for the tests: SQLite in a temp folder, and a real
PostgreSQL server started here on loopback (Debian's `postgresql` package, which `make test`
installs), in a temp folder, torn down after. No mocks: the tests talk to the real databases.

Test modules import the fixtures they use, with `postgres` (which the backends start on demand):
`from store_backends import backend, postgres  # noqa: F401 (fixtures)`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from emnist_draw import store

START_TIMEOUT_S = 60
PG_USER = "postgres"  # Debian's package creates this system user; initdb refuses to run as root


def postgres_bin() -> Path:
    """The newest PostgreSQL's bin folder (/usr/lib/postgresql/<version>/bin on Debian)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    pytest.fail("PostgreSQL is not installed: run `make test`, which installs Debian's "
                "postgresql (or, as root: apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1:<free port>, trust auth, data in a temp folder."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="emnist-draw-pg-"))
        self.data = self.dir / "data"
        # PostgreSQL will not run as root: as root, run it as the postgres user (owning the folder).
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER, PG_USER)
            self.as_user = ["runuser", "-u", PG_USER, "--"]

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            log = self.dir / "log"
            server_log = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{done.stderr[-2000:]}{server_log}")

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        # Loopback only; the socket in our own folder, not /var/run/postgresql.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.dir}")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")

    def url(self, database: str = "postgres") -> URL:
        return URL.create("postgresql+psycopg", username=PG_USER, host="127.0.0.1",
                          port=self.port, database=database)

    def new_database(self) -> URL:
        """A fresh, empty database: each test gets its own."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            # immediate: a throwaway cluster needs no shutdown checkpoint
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Backend:
    """Where a test's corrections go: how to point a server at it and how to read it back."""

    name: str  # "sqlite" or "postgresql"
    data_dir: Path
    database_url: str = ""  # empty: SQLite in data_dir
    _engines: list[Engine] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: DATABASE_URL set, or emptied so SQLite is used."""
        return {store.DATABASE_URL_ENV: self.database_url, store.DATA_ENV: ""}

    @property
    def serve_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)]

    @property
    def url(self) -> URL:
        if self.database_url:
            return make_url(self.database_url)
        return URL.create("sqlite+pysqlite",
                          database=str(self.data_dir.resolve() / store.SQLITE_FILE))

    def engine(self) -> Engine:
        """An engine on the same database (the schema must exist: a server or upgrade made it)."""
        engine = store.make_engine(self.url)
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


BACKENDS = ["sqlite", "postgresql"]


def make_backend(request, name: str, folder: Path) -> Backend:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if name == "sqlite":
        return Backend("sqlite", folder / "data")
    url = request.getfixturevalue("postgres").new_database()
    return Backend("postgresql", folder / "data", url.render_as_string(hide_password=False))


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store for one test, on each backend in turn."""
    chosen = make_backend(request, request.param, tmp_path)
    yield chosen
    chosen.close()


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request, tmp_path_factory) -> Iterator[Backend]:
    """The same, shared by a module's tests (one live server per backend, not one per test)."""
    chosen = make_backend(request, request.param, tmp_path_factory.mktemp(request.param))
    yield chosen
    chosen.close()


def wait_until(condition, timeout: float, what: str, step: float = 0.05) -> float:
    """Poll until condition() is true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started

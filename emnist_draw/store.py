"""The corrections store: what people said a drawing really was, kept for fine-tuning.

One table, `corrections`, through SQLAlchemy Core. SQLite in a data folder by default (one file,
no server to run); PostgreSQL when $DATABASE_URL names one, so several workers or machines share
it. The schema is Alembic's (emnist_draw/migrations), applied by `upgrade` at server start-up
and by `emnist-draw db upgrade`.

A correction is acknowledged only after its transaction commits, and a commit is durable:
SQLite runs in WAL mode with synchronous=FULL (the log is fsynced at every commit, so a row
survives SIGKILL and power loss); PostgreSQL commits durably by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (JSON, BigInteger, Column, DateTime, Engine, Integer, LargeBinary, MetaData,
                        String, Table, create_engine, event, func, insert, select, text)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from emnist_draw.data import to_balanced, write_idx

if TYPE_CHECKING:  # alembic is imported only where migrations run
    from alembic.config import Config

DATA_ENV = "EMNIST_DRAW_DATA"  # the data folder, when --data-dir is not given
DATABASE_URL_ENV = "DATABASE_URL"  # a PostgreSQL URL: use that server instead of SQLite
DEFAULT_DATA_DIR = Path("data")
SQLITE_FILE = "feedback.sqlite3"
SQLITE_BUSY_TIMEOUT_S = 30  # how long a writer waits for another one's lock before failing
MIGRATIONS = "emnist_draw:migrations"  # Alembic's script location, inside the package
# Any fixed bigint: the PostgreSQL advisory lock that lets one migrator run at a time.
MIGRATION_LOCK_KEY = 0x656D6E6973742D64  # "emnist-d"
EXPORT_STEM = "emnist-feedback"  # export file names: what `train --extra` pairs by name

metadata = MetaData()

# BigInteger on PostgreSQL, INTEGER on SQLite: only "INTEGER PRIMARY KEY" is SQLite's rowid alias.
_Id = BigInteger().with_variant(Integer(), "sqlite")

corrections = Table(
    "corrections", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="UTC"),
    Column("label", String(1), nullable=False, comment="the right class, one of the 47"),
    Column("predicted", String(1), nullable=False, comment="what the model said"),
    Column("charset", String(16), nullable=False, comment="the character set it chose from"),
    Column("ink_kind", String(8), nullable=False, comment="strokes, image or pixels"),
    Column("ink", JSON, nullable=False, comment="the ink fields exactly as the client sent them"),
    Column("input", LargeBinary, nullable=False, comment="the 28x28 model input, uint8, upright"),
    Column("model_name", String(200), nullable=False),
    Column("model_sha256", String(64), nullable=False),
)


class StoreError(RuntimeError):
    """The corrections database cannot be opened or migrated (the message says which and why)."""


@dataclass
class Correction:
    """One correction as it is stored (id and created_at are set by add_correction)."""

    label: str
    predicted: str
    charset: str
    ink: dict[str, Any]
    input: np.ndarray  # (28, 28) uint8, what the model read
    model_name: str
    model_sha256: str
    id: int | None = None
    created_at: datetime | None = None
    ink_kind: str = field(init=False)

    def __post_init__(self) -> None:
        kinds = [k for k in ("strokes", "image", "pixels") if k in self.ink]
        if len(kinds) != 1:
            raise ValueError(f"the ink must hold one of strokes, image or pixels, not {kinds}")
        self.ink_kind = kinds[0]


# ---------------------------------------------------------------- where and how to connect


def data_dir(path: str | Path | None = None) -> Path:
    """The data folder: `path`, else $EMNIST_DRAW_DATA, else ./data."""
    return Path(path or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def database_url(path: str | Path | None = None) -> URL:
    """$DATABASE_URL when set (PostgreSQL), else the SQLite file in the data folder."""
    given = os.environ.get(DATABASE_URL_ENV, "").strip()
    if given:
        try:
            url = make_url(given)
        except ArgumentError as e:
            raise StoreError(f"${DATABASE_URL_ENV} is not a database URL ({e}); set it to "
                             "postgresql://user:password@host/database, or unset it") from e
        # "postgresql://" and Heroku-style "postgres://" mean the one driver we ship: psycopg 3.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    folder = data_dir(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the data folder {folder}: {e}") from e
    return URL.create("sqlite+pysqlite", database=str(folder.resolve() / SQLITE_FILE))


def describe(url: URL) -> str:
    """The URL for messages and logs, password hidden."""
    return url.render_as_string(hide_password=True)


def make_engine(url: URL | str, *, begin: str = "BEGIN") -> Engine:
    """An engine for `url`. For SQLite, `begin` is the statement that opens each transaction:
    "BEGIN IMMEDIATE" takes the write lock at once (what migrations need to run one at a time)."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        # pre_ping: a PostgreSQL restart costs one reconnect, not one failed request per pooled
        # connection.
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    # SQLAlchemy's recipe for real transactions on Python's sqlite3 (its "legacy" mode begins
    # none before SELECT or DDL): take BEGIN over from the driver.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. FULL: fsync the log at every commit, so an
        # acknowledged correction survives power loss, not only a killed process.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


# ---------------------------------------------------------------- migrations


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration, built in code: the scripts ship inside the package, no .ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if engine is not None:
        config.attributes["engine"] = engine  # what migrations/env.py connects with
    return config


def upgrade(url: URL | str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe when several processes start at once: the whole
    upgrade is one transaction that first takes a lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
    advisory lock), so the others wait, then find the schema current."""
    from alembic import command
    from alembic.util import CommandError

    try:
        engine = make_engine(url, begin="BEGIN IMMEDIATE")
    except (SQLAlchemyError, ImportError) as e:  # an unknown or missing driver
        hint = (" (PostgreSQL needs the postgres extra: pip install 'emnist-draw[postgres]')"
                if isinstance(e, ImportError) else "")
        raise StoreError(f"cannot use the database {describe(make_url(url))}: {e}{hint}") from e
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot migrate the corrections database {describe(make_url(url))}: "
                         f"{_reason(e)}") from e
    except CommandError as e:  # e.g. a database migrated by a newer version of this program
        raise StoreError(f"cannot migrate the corrections database {describe(make_url(url))} "
                         f"to {revision}: {e}") from e
    finally:
        engine.dispose()


def migration_lock(connection: Any) -> None:
    """Called by migrations/env.py inside the migration transaction: one migrator at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # SQLite: the transaction began with BEGIN IMMEDIATE, which already holds the write lock.


def open_store(path: str | Path | None = None) -> Engine:
    """Migrate, then return the engine the server uses: the one call at start-up."""
    url = database_url(path)
    upgrade(url)
    return make_engine(url)


def _reason(error: SQLAlchemyError) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


# ---------------------------------------------------------------- reading and writing


def add_correction(engine: Engine, correction: Correction) -> int:
    """Insert one correction; returns its id once the transaction has committed."""
    image = np.ascontiguousarray(correction.input, dtype=np.uint8)
    if image.shape != (28, 28):
        raise ValueError(f"the input must be 28x28, not {image.shape}")
    created = correction.created_at or datetime.now(timezone.utc)
    with engine.begin() as conn:  # commits on leaving the block, or raises: nothing in between
        new_id = conn.execute(insert(corrections).returning(corrections.c.id), {
            "created_at": created, "label": correction.label, "predicted": correction.predicted,
            "charset": correction.charset, "ink_kind": correction.ink_kind, "ink": correction.ink,
            "input": image.tobytes(), "model_name": correction.model_name,
            "model_sha256": correction.model_sha256}).scalar_one()
    correction.id, correction.created_at = new_id, created
    return new_id


def count_corrections(engine: Engine) -> dict[str, Any]:
    """{"count": N, "labels": {class: N, ...}}, classes in EMNIST-balanced order."""
    with engine.connect() as conn:
        rows = conn.execute(select(corrections.c.label, func.count())
                            .group_by(corrections.c.label)).all()
    labels = dict(sorted(((label, int(n)) for label, n in rows), key=lambda kv: to_balanced(kv[0])))
    return {"count": sum(labels.values()), "labels": labels}


def iter_corrections(engine: Engine, batch: int = 500) -> Iterator[Correction]:
    """Every correction, oldest first, read in batches (a large store never sits in memory)."""
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(
            select(corrections).order_by(corrections.c.id))
        for row in result.mappings():
            c = Correction(label=row["label"], predicted=row["predicted"], charset=row["charset"],
                           ink=row["ink"],
                           input=np.frombuffer(row["input"], dtype=np.uint8).reshape(28, 28),
                           model_name=row["model_name"], model_sha256=row["model_sha256"],
                           id=row["id"], created_at=row["created_at"])
            yield c


def export_idx(engine: Engine, out: str | Path) -> dict[str, Any]:
    """Write every correction as EMNIST idx files (.gz) for `emnist-draw train --extra`.

    The same conventions as the official files: images stored transposed, labels numbered as
    the balanced split numbers its 47 classes. `train --extra OUT/emnist-feedback-images-idx3-
    ubyte.gz` finds the labels file beside it by name.
    """
    images, labels = [], []
    for c in iter_corrections(engine):
        images.append(c.input)
        labels.append(to_balanced(c.label))
    stacked = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    out = Path(out)
    images_path = write_idx(out / f"{EXPORT_STEM}-images-idx3-ubyte.gz", stacked.transpose(0, 2, 1))
    labels_path = write_idx(out / f"{EXPORT_STEM}-labels-idx1-ubyte.gz", np.array(labels, np.uint8))
    return {"count": len(labels), "images": str(images_path), "labels": str(labels_path)}


def ink_json(ink: dict[str, Any]) -> str:
    """The ink as canonical JSON: how tests and tools compare what was sent with what was kept."""
    return json.dumps(ink, sort_keys=True, separators=(",", ":"))


__all__ = ["Correction", "StoreError", "add_correction", "count_corrections", "corrections",
           "data_dir", "database_url", "export_idx", "iter_corrections", "make_engine",
           "open_store", "upgrade"]

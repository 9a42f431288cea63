"""The corrections store: what people said a drawing really was, kept for fine-tuning.

Two tables, through SQLAlchemy Core: `corrections` (one character each) and
`string_corrections` (a string read wrong, with the strokes of each of its characters, which
`export_idx` turns into one training example per character). SQLite in a data folder by default
(one file, no server to run); PostgreSQL when $DATABASE_URL names one, so several workers or
machines share it. The schema is Alembic's (emnist_draw/migrations), applied by `upgrade` at
server start-up and by `emnist-draw db upgrade`.

A correction is acknowledged only after its transaction commits, and a commit is durable:
SQLite runs in WAL mode with synchronous=FULL (the log is fsynced at every commit, so a row
survives SIGKILL and power loss); PostgreSQL commits durably by default.

What can go wrong with the files, and what is done about it:
- a full disk (or the store's quota reached): StoreFull, nothing saved; SQLite and PostgreSQL
  roll the transaction back, so storing works again as soon as there is room;
- the SQLite files deleted or replaced under a running server: StoreMoved, before and after
  each commit, so a row is never acknowledged into a file that is no longer at the path;
- a damaged SQLite file, or tables missing while Alembic says the schema is current: StoreError
  at start-up (upgrade), naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (JSON, BigInteger, Column, Connection, DateTime, Engine, ForeignKey,
                        Integer, LargeBinary, MetaData, String, Table, case, create_engine, event,
                        func, insert, inspect, select, text, update)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from emnist_draw.data import to_balanced, write_idx
from emnist_draw.preprocess import InkError, strokes_to_input

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
# What one correction may keep of its ink, as canonical JSON: the page's drawings are a few KB
# (thinned strokes, one decimal); an image is reduced to fit by the server (server/feedback.py).
MAX_INK_BYTES = 256 * 1024
QUOTA_ENV = "EMNIST_DRAW_FEEDBACK_QUOTA_MB"  # serve --feedback-quota-mb, passed to the workers
DEFAULT_QUOTA_MB = 1024  # ~4,000 corrections at the largest, ~200,000 drawings from the page
_FILES = "emnist_draw_files"  # where a SQLite connection's record keeps the files it opened

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

MAX_TEXT_CHARS = 256  # a string correction's `read` and `text`: a line, not a page

string_corrections = Table(
    "string_corrections", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="UTC"),
    Column("read", String(MAX_TEXT_CHARS), nullable=False, comment="what the app read"),
    Column("text", String(MAX_TEXT_CHARS), nullable=False, comment="what it really is, as sent"),
    Column("labels", String(MAX_TEXT_CHARS), nullable=False,
           comment="the class of each non-space character of text, in order"),
    Column("segments", JSON, nullable=True,
           comment="the stroke indices of each character of labels; null: not given"),
    Column("characters", Integer, nullable=False,
           comment="the per-character examples it yields: len(segments), else 0"),
    Column("charset", String(16), nullable=False, comment="the character set it chose from"),
    Column("ink", JSON, nullable=False, comment="strokes (and canvas) exactly as sent"),
    Column("model_name", String(200), nullable=False),
    Column("model_sha256", String(64), nullable=False),
    # Set, never cleared: a later correction of the same ink said what it really is. The row is
    # kept (it was acknowledged), but its labels are no longer what the person says.
    Column("replaced_by", _Id, ForeignKey("string_corrections.id"), nullable=True,
           comment="the later string correction of the same ink that supersedes this one; "
                   "null: none, it counts"),
)


class StoreError(RuntimeError):
    """The corrections database cannot be opened or migrated (the message says which and why)."""


class StoreFull(StoreError):
    """No room for the correction: the database's disk is full, or the store is at its quota."""

    def __init__(self, message: str, *, quota: bool = False):
        super().__init__(message)
        self.quota = quota


class StoreMoved(StoreError):
    """The SQLite file was deleted or replaced while this process had it open: what it writes
    would be lost with the old file, so nothing is written or acknowledged."""


class CorrectionTooLarge(ValueError):
    """The ink of a correction is over MAX_INK_BYTES (the message says by how much)."""


class Unusable(ValueError):
    """A correction that cannot be a training example: a label that is not one class, segments
    that name no strokes (the message says which and why). Refused when it is written; a row
    stored before that check, or by another writer, is skipped by the export."""


class CannotReplace(ValueError):
    """A string correction names one it replaces that it cannot replace (the message says why);
    nothing is saved."""


class ReplacedNotFound(CannotReplace):
    """There is no string correction with that id."""


class ReplacedOtherInk(CannotReplace):
    """The string correction named is of other ink: it is not the same reading corrected again."""


class AlreadyReplaced(CannotReplace):
    """The string correction named was replaced already, by `by`."""

    def __init__(self, message: str, *, by: int):
        super().__init__(message)
        self.by = by


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


@dataclass
class StringCorrection:
    """A string read wrong: its strokes, what was read and what it is (id and created_at are set
    by add_string_correction). `labels` holds the class of each non-space character of `text`
    (the server's to_class); `segments`, when given, the strokes of each of them."""

    read: str
    text: str
    labels: str
    charset: str
    ink: dict[str, Any]  # {"strokes": [...], "canvas": {...}}, as sent
    segments: list[list[int]] | None
    model_name: str
    model_sha256: str
    replaces: int | None = None  # the id of the correction of the same ink it supersedes
    id: int | None = None
    created_at: datetime | None = None
    replaced_by: int | None = None  # set by a later correction that supersedes this one

    @property
    def characters(self) -> int:
        """The training examples it yields: one per segmented character; none without segments
        (a text retyped to another length says nothing about which strokes are which)."""
        return len(self.segments) if self.segments is not None else 0

    def examples(self) -> list[tuple[np.ndarray, str]]:
        """(28x28 input, class) of each segmented character: its strokes drawn by the one
        preprocessing function, as the string reader draws the characters it reads. All of
        them or Unusable: labels and segments that do not fit each other say nothing about
        which strokes are which character."""
        check_segments(self.labels, self.segments, self.ink)
        strokes = self.ink["strokes"]
        try:
            return [(strokes_to_input([strokes[i] for i in segment]), label)
                    for label, segment in zip(self.labels, self.segments or ())]
        except InkError as e:
            raise Unusable(f"its strokes cannot be drawn ({e})") from e


def class_index(label: object) -> int:
    """The balanced class index of a stored label: exactly one of the 47 classes (lower case of
    a merged letter counts as its capital), else Unusable. data.to_balanced alone would take ""
    and "AB" (substrings of the class list) as class 0 and "A"."""
    if isinstance(label, str) and len(label) == 1:
        try:
            return to_balanced(label)
        except KeyError:
            pass
    raise Unusable(f"label {json.dumps(label)[:40]} is not one of the 47 EMNIST-balanced classes")


def check_segments(labels: object, segments: object, ink: object) -> None:
    """Unusable unless every label is a class and segments (when given) hold one list of stroke
    indices per label, each naming strokes the ink has."""
    if not isinstance(labels, str) or not labels:
        raise Unusable(f"labels {json.dumps(labels)[:40]} is not a string of classes")
    for n, label in enumerate(labels):
        try:
            class_index(label)
        except Unusable as e:
            raise Unusable(f"labels[{n}]: {e}") from None
    if segments is None:
        return
    strokes = ink.get("strokes") if isinstance(ink, dict) else None
    if not isinstance(strokes, list):
        raise Unusable("the ink holds no list of strokes")
    if not isinstance(segments, list) or len(segments) != len(labels):
        count = len(segments) if isinstance(segments, list) else json.dumps(segments)[:40]
        raise Unusable(f"{count} segments for {len(labels)} labels: one segment per character")
    for n, segment in enumerate(segments):
        if not isinstance(segment, list) or not segment:
            raise Unusable(f"segments[{n}] is {json.dumps(segment)[:40]}, not a list of strokes")
        for i in segment:
            if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(strokes)):
                raise Unusable(f"segments[{n}] names stroke {json.dumps(i)[:20]}, but the ink "
                               f"has strokes 0 to {len(strokes) - 1}")


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
    paths = sqlite_paths(url)
    # The database file this engine serves (its first connection's), and whether it was found
    # deleted or replaced: then for good, since a new file may even get the old inode number.
    served: dict[str, Any] = {}

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
        # The files this connection has open: what check_files compares with those at the path.
        # A later connection that opens another database file than the first one did (the first
        # deleted, a new empty file made in its place) is refused as well.
        if paths is not None:
            db, wal = _file_ids(paths)
            served.setdefault("db", db)
            record.info[_FILES] = {"served": served, "db": db, "wal": wal}

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
        check_sqlite_file(url)  # a damaged file is neither migrated nor served
        command.upgrade(alembic_config(engine), revision)
        if revision == "head":  # an older revision may lack what store.metadata declares
            check_schema(engine)
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


# ---------------------------------------------------------------- the files under the store


def sqlite_paths(url: URL | str) -> tuple[Path, Path] | None:
    """The SQLite database file and its write-ahead log; None for PostgreSQL (or :memory:)."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    db = Path(url.database)
    return db, db.with_name(db.name + "-wal")


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _file_ids(paths: tuple[Path, Path] | None) -> list[tuple[int, int] | None]:
    return [_file_id(p) for p in paths] if paths else []


def check_files(conn: Connection) -> None:
    """SQLite: raise StoreMoved unless the files `conn` has open are the ones at the path, and
    the database file is the one the engine started with. SQLite writes on through an open file
    that was deleted or renamed over, and commits succeed: into a file nobody will open again.
    PostgreSQL: nothing to check (its server owns its files)."""
    opened = conn.connection.info.get(_FILES)
    paths = sqlite_paths(conn.engine.url)
    if opened is None or paths is None:
        return
    served = opened["served"]
    now_db, now_wal = _file_ids(paths)
    if opened["wal"] is None:
        # A new database has no log until its first write; this connection's first write made it
        # (and no other connection can delete it while this one is open).
        opened["wal"] = now_wal
    if served.get("moved") or not (served["db"] == opened["db"] == now_db
                                   and opened["wal"] == now_wal):
        served["moved"] = True
        conn.invalidate()  # never hand this connection out again
        raise StoreMoved(f"the corrections database {paths[0]} was deleted or replaced while the "
                         "server had it open; nothing more is stored in it: restart the server "
                         "(it makes a new database there), or put the file back and restart")


def free_bytes(engine: Engine) -> int | None:
    """Free space on the disk of a SQLite store (None for PostgreSQL: its server's disk)."""
    paths = sqlite_paths(engine.url)
    if paths is None:
        return None
    try:
        return shutil.disk_usage(paths[0].parent).free
    except OSError:
        return None


def used_bytes(conn: Connection) -> int:
    """What the corrections take: SQLite's pages in use, PostgreSQL's tables with their TOAST
    data and indexes. What a quota is measured against."""
    if conn.dialect.name == "sqlite":
        page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        return (pages - free) * page_size
    sizes = " + ".join(f"pg_total_relation_size('{t.name}')" for t in metadata.sorted_tables)
    return int(conn.execute(text(f"SELECT {sizes}")).scalar_one())


def quota_bytes(quota_mb: float | None = None) -> int | None:
    """The store's quota: quota_mb, else $EMNIST_DRAW_FEEDBACK_QUOTA_MB, else the default; None
    for no quota (0)."""
    if quota_mb is None:
        given = os.environ.get(QUOTA_ENV, "").strip()
        try:
            quota_mb = float(given) if given else DEFAULT_QUOTA_MB
        except ValueError:
            raise StoreError(f"${QUOTA_ENV} must be a number of megabytes, not {given!r}") from None
    if quota_mb < 0:
        raise StoreError(f"the corrections quota must be 0 (none) or more megabytes, "
                         f"not {quota_mb}")
    return int(quota_mb * 1024 * 1024) or None


def is_full(error: BaseException) -> bool:
    """Whether a database error means "no room": SQLite's SQLITE_FULL ("database or disk is
    full"), PostgreSQL's disk_full (SQLSTATE 53100)."""
    orig = getattr(error, "orig", None) or error
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(orig))
    return getattr(orig, "sqlstate", None) == "53100"


def check_sqlite_file(url: URL | str) -> None:
    """Refuse a damaged SQLite file, at start-up: PRAGMA quick_check reads every page's structure
    (O(size): ~0.1 s for 100 MB). A damaged file otherwise takes and acknowledges writes, and
    `feedback export` dies on it later. A read transaction of its own: the check does not hold
    the write lock that a running server's corrections wait for."""
    paths = sqlite_paths(url)
    if paths is None or not paths[0].is_file():
        return
    fix = (f"move {paths[0].name} and its -wal and -shm files out of {paths[0].parent} (the "
           "server then starts with an empty store) or restore them from a backup; to save the "
           f"rows that can still be read: sqlite3 {paths[0]} .recover | sqlite3 recovered.sqlite3")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(5)")]
    except SQLAlchemyError as e:
        raise StoreError(f"the corrections database {paths[0]} is damaged or not a SQLite "
                         f"database (PRAGMA quick_check: {_reason(e)}): {fix}") from e
    finally:
        engine.dispose()
    if problems != ["ok"]:
        raise StoreError(f"the corrections database {paths[0]} is damaged (PRAGMA quick_check: "
                         f"{'; '.join(problems)[:300]}): {fix}")


def check_schema(engine: Engine) -> None:
    """Refuse a store that lacks the tables or columns store.metadata declares. Alembic looks
    only at its version table: with the table dropped by hand and the version at head, every
    correction was a 503, for ever."""
    where = describe(engine.url)
    try:
        found = inspect(engine)
        tables = set(found.get_table_names())
        missing = [f"table {t.name}" for t in metadata.sorted_tables if t.name not in tables]
        for table in metadata.sorted_tables:
            if table.name in tables:
                columns = {c["name"] for c in found.get_columns(table.name)}
                missing += [f"column {table.name}.{c.name}" for c in table.columns
                            if c.name not in columns]
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the schema of the corrections database {where}: "
                         f"{_reason(e)}") from e
    if not missing:
        return
    if missing == [f"table {string_corrections.name}"]:
        # Migration 0001 would fail on the corrections table that is still there: go back only
        # to it, and 0002 makes this table again.
        fix = ("to start again with an empty table, set the schema back to the revision before it "
               "(UPDATE alembic_version SET version_num = '0001'; that keeps the corrections) "
               "and run `emnist-draw db upgrade`")
    else:  # 0002 skips its table when it is there, so every migration may run again
        fix = ("to start again with an empty table, drop its alembic_version table "
               "(DROP TABLE alembic_version; that keeps any other data) and run "
               "`emnist-draw db upgrade`")
    raise StoreError(f"the corrections database {where} is marked as migrated but lacks "
                     f"{', '.join(missing)} (dropped or changed by hand?): restore it from a "
                     f"backup, or, {fix}")


# ---------------------------------------------------------------- reading and writing


def add_correction(engine: Engine, correction: Correction, quota: int | None = None) -> int:
    """Insert one correction; returns its id once the transaction has committed into the file
    that is still at the store's path.

    quota: the most bytes the store may take (used_bytes); over it, or with the disk full,
    StoreFull and nothing saved. The ink is bounded by MAX_INK_BYTES (CorrectionTooLarge)."""
    image = np.ascontiguousarray(correction.input, dtype=np.uint8)
    if image.shape != (28, 28):
        raise ValueError(f"the input must be 28x28, not {image.shape}")
    class_index(correction.label)  # Unusable: nothing stored that the export would skip
    check_ink_size(correction.ink)
    created = correction.created_at or datetime.now(timezone.utc)
    new_id = _insert(engine, corrections, {
        "created_at": created, "label": correction.label, "predicted": correction.predicted,
        "charset": correction.charset, "ink_kind": correction.ink_kind, "ink": correction.ink,
        "input": image.tobytes(), "model_name": correction.model_name,
        "model_sha256": correction.model_sha256}, quota)
    correction.id, correction.created_at = new_id, created
    return new_id


def add_string_correction(engine: Engine, correction: StringCorrection,
                          quota: int | None = None) -> int:
    """Insert one string correction, as add_correction does a correction: the same quota, ink
    bound and durability; returns its id once committed.

    With `replaces`, the string correction of the same ink it supersedes is marked replaced by
    it in the same transaction (both rows are kept), or nothing is saved: ReplacedNotFound,
    ReplacedOtherInk, AlreadyReplaced (of two corrections replacing the same one at once, one
    commits, the other gets AlreadyReplaced)."""
    check_segments(correction.labels, correction.segments, correction.ink)  # Unusable
    check_ink_size(correction.ink)
    created = correction.created_at or datetime.now(timezone.utc)
    replace = (None if correction.replaces is None
               else partial(_replace, old_id=correction.replaces, ink=correction.ink))
    new_id = _insert(engine, string_corrections, {
        "created_at": created, "read": correction.read, "text": correction.text,
        "labels": correction.labels, "segments": correction.segments,
        "characters": correction.characters, "charset": correction.charset,
        "ink": correction.ink, "model_name": correction.model_name,
        "model_sha256": correction.model_sha256}, quota, then=replace)
    correction.id, correction.created_at = new_id, created
    return new_id


def _replace(conn: Connection, new_id: int, *, old_id: int, ink: dict[str, Any]) -> None:
    """Inside the new row's transaction, after its insert: mark `old_id` replaced by `new_id`,
    or raise CannotReplace (which rolls the new row back)."""
    table = string_corrections
    old = conn.execute(select(table.c.ink, table.c.replaced_by)
                       .where(table.c.id == old_id)).one_or_none()
    if old is None:
        raise ReplacedNotFound(f"replaces: there is no string correction {old_id}: give the id "
                               "an earlier 201 answer returned for this ink, or leave replaces "
                               "out")
    if ink_json(old.ink) != ink_json(ink):
        raise ReplacedOtherInk(f"replaces names a correction of other ink: string correction "
                               f"{old_id} was sent with other strokes or canvas; a correction "
                               "replaces only one of the very same ink, as sent")
    # Only if nothing replaced it yet: of two transactions replacing it at once, the second's
    # UPDATE finds it replaced (SQLite: it waits for the write lock, which the insert took;
    # PostgreSQL: it waits for the first to commit, then reads the row again) and updates nothing.
    done = conn.execute(update(table).where(table.c.id == old_id, table.c.replaced_by.is_(None))
                        .values(replaced_by=new_id))
    if done.rowcount != 1:
        by = conn.execute(select(table.c.replaced_by).where(table.c.id == old_id)).scalar_one()
        raise AlreadyReplaced(f"replaces: string correction {old_id} was already replaced by "
                              f"{by}: to correct this ink again, replace {by} (or the latest "
                              "correction of it)", by=by)


def check_ink_size(ink: dict[str, Any]) -> None:
    """CorrectionTooLarge when the ink is over MAX_INK_BYTES as JSON."""
    size = len(ink_json(ink))
    if size > MAX_INK_BYTES:
        raise CorrectionTooLarge(f"the ink is {size:,} bytes as JSON; a correction keeps at most "
                                 f"{MAX_INK_BYTES:,}: send fewer points, or round the coordinates")


def _insert(engine: Engine, table: Table, row: dict[str, Any], quota: int | None,
            then: Callable[[Connection, int], None] | None = None) -> int:
    """Insert one row into `table`; its id once the transaction has committed into the file that
    is still at the store's path. StoreFull (nothing saved) over the quota or with the disk full.
    `then(conn, new_id)` runs inside the transaction, after the insert: what it raises rolls the
    row back."""
    with engine.connect() as conn:
        check_files(conn)  # nothing is written into a deleted file
        try:
            with conn.begin():  # commits on leaving the block, or raises: nothing in between
                new_id = conn.execute(insert(table).returning(table.c.id), row).scalar_one()
                if then is not None:
                    then(conn, new_id)
                # Measured after the insert, inside its transaction: the size with this row, and
                # the write lock already held (a read first would make SQLite's later upgrade to
                # a writer fail at once when another worker wrote meanwhile, busy timeout or not).
                if quota is not None and used_bytes(conn) > quota:
                    raise StoreFull(f"the corrections store is at its quota of "
                                    f"{quota / 2**20:g} MB", quota=True)  # rolls the row back
        except SQLAlchemyError as e:
            if is_full(e):
                paths = sqlite_paths(engine.url)
                where = paths[0] if paths else describe(engine.url)
                raise StoreFull(f"the disk of the corrections database {where} is full "
                                f"({_reason(e)})") from e
            raise
        check_files(conn)  # committed, but into the file at the path? Else it is not acknowledged
    return new_id


def count_corrections(engine: Engine) -> dict[str, Any]:
    """{"count": N, "labels": {class: N, ...}, "strings": N, "strings_replaced": N,
    "string_characters": N}: the corrections per label (classes in EMNIST-balanced order), then
    the string corrections (all kept, and how many of them a later one replaced) and the
    per-character examples of those nothing replaced."""
    with engine.connect() as conn:
        check_files(conn)  # not the counts of a deleted file
        rows = conn.execute(select(corrections.c.label, func.count())
                            .group_by(corrections.c.label)).all()
        # The examples of what nothing replaced: what the export writes.
        current = string_corrections.c.replaced_by.is_(None)
        strings, replaced, characters = conn.execute(select(
            func.count(), func.count(string_corrections.c.replaced_by),
            func.coalesce(func.sum(case((current, string_corrections.c.characters), else_=0)),
                          0))).one()
    labels = dict(sorted(((label, int(n)) for label, n in rows), key=lambda kv: to_balanced(kv[0])))
    return {"count": sum(labels.values()), "labels": labels, "strings": int(strings),
            "strings_replaced": int(replaced), "string_characters": int(characters)}


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


def iter_string_corrections(engine: Engine, batch: int = 500) -> Iterator[StringCorrection]:
    """Every string correction, oldest first, read in batches; those a later one replaced too
    (their `replaced_by` set)."""
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(
            select(string_corrections).order_by(string_corrections.c.id))
        for row in result.mappings():
            yield StringCorrection(read=row["read"], text=row["text"], labels=row["labels"],
                                   charset=row["charset"], ink=row["ink"],
                                   segments=row["segments"], model_name=row["model_name"],
                                   model_sha256=row["model_sha256"], id=row["id"],
                                   created_at=row["created_at"], replaced_by=row["replaced_by"])


def export_idx(engine: Engine, out: str | Path) -> dict[str, Any]:
    """Write every correction as EMNIST idx files (.gz) for `emnist-draw train --extra`: the
    corrections' inputs, then each segmented character of the string corrections that nothing
    replaced (its strokes drawn by strokes_to_input), oldest first.

    The same conventions as the official files: images stored transposed, labels numbered as
    the balanced split numbers its 47 classes. `train --extra OUT/emnist-feedback-images-idx3-
    ubyte.gz` finds the labels file beside it by name.

    A stored row that cannot be an example (a label that is not one class, segments naming
    strokes the ink lacks, an input that is not 28x28: written before these were checked, or
    by another writer) is skipped, never guessed at: "skipped" lists each with its table, id
    and reason.
    """
    images, labels, skipped = [], [], []
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=500).execute(
                select(corrections.c.id, corrections.c.label, corrections.c.input)
                .order_by(corrections.c.id)).mappings():
            try:
                label = class_index(row["label"])
                if len(row["input"]) != 28 * 28:
                    raise Unusable(f"its input is {len(row['input'])} bytes, not 28x28")
            except Unusable as e:
                skipped.append({"table": "corrections", "id": row["id"], "reason": str(e)})
                continue
            images.append(np.frombuffer(row["input"], np.uint8).reshape(28, 28))
            labels.append(label)
    from_strings = replaced = 0
    for s in iter_string_corrections(engine):
        if s.replaced_by is not None:  # a later correction of the same ink says what it is
            replaced += 1
            continue
        try:
            examples = s.examples()
        except Unusable as e:
            skipped.append({"table": "string_corrections", "id": s.id, "reason": str(e)})
            continue
        for image, label in examples:
            images.append(image)
            labels.append(class_index(label))
            from_strings += 1
    stacked = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    out = Path(out)
    images_path = write_idx(out / f"{EXPORT_STEM}-images-idx3-ubyte.gz", stacked.transpose(0, 2, 1))
    labels_path = write_idx(out / f"{EXPORT_STEM}-labels-idx1-ubyte.gz", np.array(labels, np.uint8))
    return {"count": len(labels), "from_strings": from_strings, "strings_replaced": replaced,
            "skipped_count": len(skipped), "skipped": skipped,
            "images": str(images_path), "labels": str(labels_path)}


def ink_json(ink: dict[str, Any]) -> str:
    """The ink as canonical JSON: how tests and tools compare what was sent with what was kept."""
    return json.dumps(ink, sort_keys=True, separators=(",", ":"))


__all__ = ["AlreadyReplaced", "CannotReplace", "Correction", "CorrectionTooLarge", "Unusable",
           "ReplacedNotFound", "ReplacedOtherInk", "StoreError", "StoreFull", "StoreMoved",
           "StringCorrection", "add_correction", "add_string_correction", "count_corrections",
           "corrections", "data_dir", "database_url", "export_idx", "iter_corrections",
           "iter_string_corrections", "make_engine", "open_store", "string_corrections",
           "upgrade"]

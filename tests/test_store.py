"""The corrections store itself: migrations (also several at once), durable SQLite settings,
where the database is, and clear failures. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select

from emnist_draw import store

from app_helpers import serve_command
from store_backends import Backend, backend, postgres  # noqa: F401 (fixtures)

N_AT_ONCE = 4


def correction(label: str = "A") -> store.Correction:
    return store.Correction(label=label, predicted="4", charset="all",
                            ink={"strokes": [[[1, 2], [3, 4.5]]]},
                            input=np.arange(784, dtype=np.uint8).reshape(28, 28),
                            model_name="m", model_sha256="0" * 64)


def test_migrations_make_the_table_the_code_uses(backend: Backend):
    store.upgrade(backend.url)
    engine = backend.engine()
    head = ScriptDirectory.from_config(store.alembic_config()).get_current_head()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head
        # Autogenerate finds nothing to change: migrations and store.corrections agree.
        assert compare_metadata(context, store.metadata) == []
    new_id = store.add_correction(engine, correction())
    back = next(store.iter_corrections(engine))
    assert back.id == new_id and np.array_equal(back.input, correction().input)
    assert back.ink == {"strokes": [[[1, 2], [3, 4.5]]]}


def test_upgrades_started_together_take_turns(backend: Backend):
    # What N workers or machines do when they start at once on a new, empty database.
    env = {**os.environ, **backend.env}
    runs = [subprocess.Popen([sys.executable, "-m", "emnist_draw.cli", "db", "upgrade",
                              *backend.serve_args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(N_AT_ONCE)]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    engine = backend.engine()
    assert {"corrections", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.corrections)).scalar() == 0
        assert len(conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()) == 1
    assert store.add_correction(engine, correction()) == 1


def test_sqlite_commits_are_durable(tmp_path):
    engine = store.open_store(tmp_path)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    # BEGIN is ours (the driver's autocommit is off): a transaction that fails leaves nothing.
    row = {"created_at": datetime.now(timezone.utc), "label": "A", "predicted": "4",
           "charset": "all", "ink_kind": "strokes", "ink": {"strokes": []}, "input": bytes(784),
           "model_name": "m", "model_sha256": "0" * 64}
    with pytest.raises(RuntimeError, match="abort"), engine.begin() as conn:
        conn.execute(store.corrections.insert(), row)
        raise RuntimeError("abort")
    assert store.count_corrections(engine)["count"] == 0
    engine.dispose()


def test_where_the_store_is(tmp_path, monkeypatch):
    monkeypatch.delenv(store.DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv(store.DATA_ENV, str(tmp_path / "env"))
    assert store.database_url().database == str((tmp_path / "env" / store.SQLITE_FILE).resolve())
    assert store.database_url(tmp_path / "arg").database == str(
        (tmp_path / "arg" / store.SQLITE_FILE).resolve())  # --data-dir wins over the variable
    for given in ("postgresql://u:secret@db.example/feedback",
                  "postgres://u:secret@db.example/feedback"):
        monkeypatch.setenv(store.DATABASE_URL_ENV, given)
        url = store.database_url(tmp_path / "ignored")
        assert url.drivername == "postgresql+psycopg"  # psycopg 3, the driver we ship
        assert "secret" not in store.describe(url)


def test_an_unreachable_database_stops_the_server_with_a_message(tmp_path):
    env = {**os.environ, store.DATABASE_URL_ENV: "postgresql://nobody@127.0.0.1:9/nothing"}
    for workers in ("1", "2"):
        done = subprocess.run(serve_command("--port", "9", "--workers", workers), env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "cannot migrate the corrections database postgresql+psycopg://nobody@" in done.stderr
        assert "Traceback" not in done.stderr

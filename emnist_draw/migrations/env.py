"""Alembic's environment: how a migration run connects, for emnist_draw.store.upgrade.

The engine comes from the caller (config.attributes["engine"]), so the scripts need no .ini file
and no URL with a password in it. The whole run is one transaction that starts by taking the
migration lock (emnist_draw.store.migration_lock), so workers starting together take turns.
"""

from __future__ import annotations

from alembic import context

from emnist_draw.store import database_url, make_engine, metadata, migration_lock


def run_migrations_offline() -> None:
    """`--sql` mode: print the SQL for the configured database instead of running it."""
    url = context.config.get_main_option("sqlalchemy.url") or database_url()
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:  # run from somewhere else than store.upgrade: connect the same way
        engine = make_engine(context.config.get_main_option("sqlalchemy.url") or database_url(),
                             begin="BEGIN IMMEDIATE")
    with engine.connect() as connection, connection.begin():
        migration_lock(connection)
        # SQLite's DDL is transactional too once BEGIN is ours (store.make_engine); tell Alembic.
        context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

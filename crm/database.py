"""Connection set-up: SQLite pragmas and its single-writer transactions.

SQLite transactions that may write begin with ``BEGIN IMMEDIATE`` so that two
writers never race for a chain head (and never hit a stale-snapshot upgrade);
safe requests (GET/HEAD/OPTIONS) read with a plain deferred ``BEGIN``.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: True while the current unit of work may write (CLI, POST requests, tests).
write_intent: ContextVar[bool] = ContextVar("doorstep_write_intent", default=True)


def normalise_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        # Take transaction control away from the driver so we can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA recursive_triggers=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


@contextmanager
def read_only(session):
    """A short read transaction that takes no write lock on SQLite; ends (commits) on exit.

    Use it for slow work that only reads (checking a password, verifying a chain) so
    that writers are not kept waiting behind it.
    """
    session.commit()
    token = write_intent.set(False)
    try:
        yield session
    finally:
        session.commit()
        write_intent.reset(token)


#: First key of the two-key advisory locks (the chains use the one-key space).
LOCK_CLASS_LOGIN = 1


def lock_name(session, lock_class: int, name: str) -> None:
    """Serialise transactions about the same ``name`` until commit.

    PostgreSQL: a two-key transaction advisory lock (its own key space, so it never meets
    the chain lock). SQLite: writers are serialised by BEGIN IMMEDIATE already.
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))"),
                        {"cls": lock_class, "name": name})

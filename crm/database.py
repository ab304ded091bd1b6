"""Connection set-up: SQLite pragmas and its single-writer transactions.

SQLite transactions that may write begin with ``BEGIN IMMEDIATE`` so that two
writers never race for a chain head (and never hit a stale-snapshot upgrade);
safe requests (GET/HEAD/OPTIONS) read with a plain deferred ``BEGIN``. A busy
writing endpoint may read first (the signed-in user, its CSRF token) without the
write lock and take it with ``begin_writing`` just before the reads its writes
depend on, so that the one lock is held for the work that needs it.

PostgreSQL: the reads of such an endpoint run in autocommit (no ``BEGIN`` round trip);
``begin_writing`` makes the next statement begin a transaction, or, when the unit of
work writes a single statement (atomic on its own), leaves it in autocommit: the write
then needs neither ``BEGIN`` nor ``COMMIT``, two of a one-visit sync's five round trips.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import scoped_session

#: True while the current unit of work may write (CLI, POST requests, tests); False for
#: safe requests; ``READS_FIRST`` until a ``reads_first`` view calls ``begin_writing``.
write_intent: ContextVar[bool | str | None] = ContextVar("doorstep_write_intent", default=True)
READS_FIRST = None
#: After ``begin_writing(..., single_statement=True)``: one write (on PostgreSQL in autocommit).
SINGLE_STATEMENT = "single statement"


def normalise_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


#: A pooled server connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "doorstep_idle_since"


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        _ping_idle_connections(engine)
        if engine.dialect.name == "postgresql":
            _autocommit_reads_first(engine)
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        # Take transaction control away from the driver so we can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA recursive_triggers=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.connection.info.pop(_WROTE, None)
        intent = write_intent.get()
        if intent:  # a writer (a single statement too: its reads decide, under the lock, what it writes)
            _take_write_lock(connection.connection.driver_connection)
        elif intent is not READS_FIRST:  # reads first: each read is its own, until begin_writing
            connection.exec_driver_sql("BEGIN")

    event.listen(engine, "before_cursor_execute", _reads_only_before_begin_writing)


_READS = ("SELECT", "WITH", "PRAGMA")
#: The pooled connection's flags (its ``info``): autocommit set by this module; a write done.
_AUTOCOMMIT, _WROTE = "doorstep_autocommit", "doorstep_wrote"


def _reads_only_before_begin_writing(connection, cursor, statement, parameters, context, executemany):
    intent = write_intent.get()
    if intent is not READS_FIRST and intent is not SINGLE_STATEMENT:
        return
    if statement.lstrip()[:6].upper().startswith(_READS):
        return
    if intent is READS_FIRST:  # it would commit on its own, outside the unit of work (and on SQLite without the lock)
        raise RuntimeError("a write before crm.database.begin_writing in a reads-first unit of work")
    if connection.info.get(_WROTE):  # on PostgreSQL the first write is committed already: this one would be apart
        raise RuntimeError("a second write in a single-statement unit of work")
    connection.info[_WROTE] = True


def _autocommit_reads_first(engine: Engine) -> None:
    """PostgreSQL: a reads-first or single-statement unit of work runs in the driver's autocommit."""

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        fairy = connection.connection
        fairy.info.pop(_WROTE, None)
        intent = write_intent.get()
        if intent is READS_FIRST or intent is SINGLE_STATEMENT:
            driver = fairy.driver_connection
            if not driver.autocommit:
                driver.autocommit = True
                fairy.info[_AUTOCOMMIT] = True
        else:
            _end_autocommit(fairy)

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        # the next unit of work gets its transaction; nothing may raise here (the pool would lose the slot)
        if record is None or not record.info.pop(_AUTOCOMMIT, False) or dbapi_connection is None:
            return  # None: invalidated (it died); its replacement starts outside autocommit
        try:
            dbapi_connection.autocommit = False
        except engine.dialect.loaded_dbapi.Error:  # broken: never hand it out again in autocommit
            record.invalidate(soft=True)

    event.listen(engine, "before_cursor_execute", _reads_only_before_begin_writing)


def _refuse_outside_a_transaction(what: str) -> None:
    """A transaction lock taken in autocommit (PostgreSQL's reads-first or single-statement unit
    of work) would end with its own statement; on SQLite nothing would hold the write lock."""
    intent = write_intent.get()
    if intent is READS_FIRST or intent is SINGLE_STATEMENT:
        raise RuntimeError(f"{what} in a reads-first or single-statement unit of work: it needs a transaction")


def _end_autocommit(fairy) -> None:
    """The next statement on this PostgreSQL connection begins a transaction again."""
    if fairy.info.pop(_AUTOCOMMIT, False):
        fairy.driver_connection.autocommit = False


#: How long a SQLite statement waits for a lock before "database is locked".
BUSY_TIMEOUT_MS = 15000


def begin_immediate(driver_connection) -> None:
    """``BEGIN IMMEDIATE`` on a sqlite3 connection, waiting for the write lock in steps that
    start at a twentieth of a millisecond: SQLite's own busy handler first sleeps 1 ms, then
    2, 5, 10 …, far longer than a sync request holds the lock (under a millisecond). Gives up
    after ``BUSY_TIMEOUT_MS`` like SQLite would."""
    execute = driver_connection.execute
    execute("PRAGMA busy_timeout=0")
    try:
        deadline, pause = None, 0.00005
        while True:
            try:
                execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) not in (sqlite3.SQLITE_BUSY,
                                                                                 sqlite3.SQLITE_LOCKED):
                    raise
                now = time.monotonic()
                deadline = deadline or now + BUSY_TIMEOUT_MS / 1000
                if now >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
    finally:
        execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _take_write_lock(driver_connection) -> None:
    try:
        begin_immediate(driver_connection)
    except sqlite3.OperationalError as exc:  # as SQLAlchemy would have raised it
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def _ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection that sat idle in the pool: one used a
    moment ago is alive, and a round trip per request is what a busy endpoint cannot spare.
    A dead connection is replaced before use; if the server restarts under load, the
    request already on a connection fails, and the pool then renews every connection."""

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection, record):
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc


def begin_writing(session, *, single_statement: bool = False) -> None:
    """From here on this unit of work may write: on SQLite, ``BEGIN IMMEDIATE`` is taken on
    the session's connection (after ending a deferred read transaction, if one is open); on
    PostgreSQL the next statement begins a transaction. The session and its loaded objects
    stay as they are. Call it before the reads that the writes depend on: what was read
    before it (in the sync: the signed-in user, whose role, state and manager it goes by)
    may be a moment older than what the writes see.

    ``single_statement``: the unit of work writes one statement, atomic by itself; a second
    write (counted per transaction: a commit starts the count again) or a transaction lock
    (a chain write, ``lock_name``) is refused on both databases. PostgreSQL runs it in autocommit,
    with no ``BEGIN``/``COMMIT`` (a savepoint fails there); SQLite still takes the write lock,
    which serialises the reads before the write with every other writer's."""
    session = session() if isinstance(session, scoped_session) else session
    if session.in_nested_transaction():
        raise RuntimeError("begin_writing inside a savepoint: its COMMIT would end the savepoint too")
    if write_intent.get():
        return  # a writer already: its transaction began with BEGIN IMMEDIATE
    dialect = session.get_bind().dialect.name
    fairy = session.connection().connection if session.in_transaction() else None  # begun under the old intent
    write_intent.set(SINGLE_STATEMENT if single_statement else True)  # the request's hook resets it at the end
    if fairy is None:
        return
    if dialect == "sqlite":
        driver = fairy.driver_connection
        if driver.in_transaction:  # a deferred read transaction
            driver.execute("COMMIT")
        _take_write_lock(driver)
    elif dialect == "postgresql" and not single_statement:
        _end_autocommit(fairy)


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
    _refuse_outside_a_transaction("lock_name")
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))"),
                        {"cls": lock_class, "name": name})

"""Connection handling. SQLite: a writer waits for the one write lock and gives up after the
busy timeout. PostgreSQL: an idle pooled connection is pinged before use, a busy one is not,
and a dead one is replaced instead of failing the request."""
from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import crm.database
from tests.conftest import PG_URL, _pg_admin_engine

def _sqlite(path, **kwargs) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, **kwargs)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_a_sqlite_writer_gives_up_on_the_write_lock_after_the_busy_timeout(tmp_path, monkeypatch):
    path = tmp_path / "lock.db"
    holder = _sqlite(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = _sqlite(path)
    monkeypatch.setattr(crm.database, "BUSY_TIMEOUT_MS", 200)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        crm.database.begin_immediate(waiter)
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # BUSY_TIMEOUT_MS again, not 0
    holder.execute("ROLLBACK")


def test_a_sqlite_writer_gets_the_write_lock_once_it_is_released(tmp_path, monkeypatch):
    path = tmp_path / "lock.db"
    holder = _sqlite(path, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    waiter = _sqlite(path)
    monkeypatch.setattr(crm.database, "BUSY_TIMEOUT_MS", 30_000)
    release = threading.Timer(0.05, holder.execute, ["COMMIT"])
    release.start()
    crm.database.begin_immediate(waiter)  # waits, then holds the lock: it sees the holder's row
    release.join()
    assert waiter.in_transaction and waiter.execute("SELECT x FROM t").fetchall() == [(1,)]
    waiter.execute("INSERT INTO t VALUES (2)")
    waiter.execute("COMMIT")
    assert holder.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def _backend_pid(app) -> int:
    from crm.extensions import db

    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
        return pid


def _terminate(pid: int) -> None:
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
            # the backend is gone once it no longer shows in pg_stat_activity
            for _ in range(200):
                if not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                    {"pid": pid}).scalar():
                    break
                conn.execute(text("SELECT pg_sleep(0.01)"))
    finally:
        admin.dispose()


@pytest.fixture
def pg_app(make_app, db_url):
    return make_app(db_url)


@pytest.fixture
def pings(pg_app, monkeypatch):
    from crm.extensions import db

    with pg_app.app_context():
        dialect = db.engine.dialect
    calls = []
    original = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda connection: calls.append(1) or original(connection))
    return calls


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")
def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(pg_app, pings):
    first = _backend_pid(pg_app)
    assert [_backend_pid(pg_app) for _ in range(5)] == [first] * 5  # the same pooled connection
    assert pings == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")
def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_before_use(pg_app, pings, monkeypatch):
    dead = _backend_pid(pg_app)
    _terminate(dead)
    monkeypatch.setattr(crm.database, "PING_AFTER_IDLE_S", 0.0)  # everything in the pool counts as idle
    fresh = _backend_pid(pg_app)  # no error: the ping found the dead connection and the pool replaced it
    assert fresh != dead and len(pings) >= 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")
def test_a_busy_connection_that_died_fails_one_request_and_the_pool_recovers(pg_app, pings):
    """The trade-off of skipping the ping: the first request on a connection that died moments
    after its last use fails; the pool then renews its connections and the next one works."""
    dead = _backend_pid(pg_app)
    _terminate(dead)
    with pytest.raises(OperationalError):
        _backend_pid(pg_app)
    assert _backend_pid(pg_app) != dead
    assert pings == []

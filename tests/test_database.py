"""Connection handling on PostgreSQL: an idle pooled connection is pinged before use, a busy
one is not, and a dead one is replaced instead of failing the request."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import crm.database
from tests.conftest import PG_URL, _pg_admin_engine

pytestmark = [pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set"),
              pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]


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


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(pg_app, pings):
    first = _backend_pid(pg_app)
    assert [_backend_pid(pg_app) for _ in range(5)] == [first] * 5  # the same pooled connection
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_before_use(pg_app, pings, monkeypatch):
    dead = _backend_pid(pg_app)
    _terminate(dead)
    monkeypatch.setattr(crm.database, "PING_AFTER_IDLE_S", 0.0)  # everything in the pool counts as idle
    fresh = _backend_pid(pg_app)  # no error: the ping found the dead connection and the pool replaced it
    assert fresh != dead and len(pings) >= 1


def test_a_busy_connection_that_died_fails_one_request_and_the_pool_recovers(pg_app, pings):
    """The trade-off of skipping the ping: the first request on a connection that died moments
    after its last use fails; the pool then renews its connections and the next one works."""
    dead = _backend_pid(pg_app)
    _terminate(dead)
    with pytest.raises(OperationalError):
        _backend_pid(pg_app)
    assert _backend_pid(pg_app) != dead
    assert pings == []

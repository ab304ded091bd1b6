"""The database itself keeps the audit log append-only; verify catches what gets around it."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from crm import chain
from crm.audit import services as audit
from tests.helpers import operator


def _seed_events(app, n=5):
    with operator(app):
        for i in range(n):
            audit.record("test.event", "thing", i, after={"i": i})


def _raw_engine(db_url):
    from crm.database import normalise_url

    return create_engine(normalise_url(db_url), isolation_level="AUTOCOMMIT")


def test_update_and_delete_are_refused_by_the_database(app, db_url):
    _seed_events(app)
    engine = _raw_engine(db_url)
    with engine.connect() as conn:
        with pytest.raises(DBAPIError) as err:
            conn.execute(text("UPDATE audit_events SET action = 'forged' WHERE position = 2"))
        assert "append-only" in str(err.value)
        with pytest.raises(DBAPIError):
            conn.execute(text("DELETE FROM audit_events WHERE position = 5"))
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 5
        assert conn.execute(text("SELECT action FROM audit_events WHERE position = 2")).scalar() == "test.event"
    engine.dispose()


def test_postgresql_refuses_truncate_with_sqlstate_23001(app, db_url, backend):
    if backend != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    _seed_events(app)
    engine = _raw_engine(db_url)
    with engine.connect() as conn:
        with pytest.raises(DBAPIError) as err:
            conn.execute(text("TRUNCATE audit_events CASCADE"))
        assert getattr(err.value.orig, "sqlstate", None) == "23001"
        # ENABLE ALWAYS: replica mode (which skips ordinary triggers) does not help either
        conn.execute(text("SET session_replication_role = replica"))
        with pytest.raises(DBAPIError):
            conn.execute(text("DELETE FROM audit_events"))
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 5
    engine.dispose()


def test_insert_or_replace_through_a_bare_sqlite_connection_is_refused(app, db_url, backend):
    if backend != "sqlite":
        pytest.skip("INSERT OR REPLACE is SQLite's")
    _seed_events(app)
    path = db_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)  # no pragmas: recursive_triggers is off
    row = conn.execute("SELECT * FROM audit_events WHERE position = 3").fetchone()
    columns = [d[0] for d in conn.execute("SELECT * FROM audit_events LIMIT 0").description]
    forged = dict(zip(columns, row), action="forged")
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT OR REPLACE INTO audit_events ({', '.join(columns)}) VALUES ({placeholders})"
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute(sql, [forged[c] for c in columns])
    # replacing through the idempotency key at a "valid" next position is refused too
    last = conn.execute("SELECT position, hash FROM audit_events ORDER BY position DESC LIMIT 1").fetchone()
    forged.update(position=last[0] + 1, prev_hash=last[1])
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute(sql, [forged[c] for c in columns])
    # and an append that does not continue the chain
    forged.update(idempotency_key="audit:new", prev_hash="0" * 64)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute(sql.replace("OR REPLACE ", ""), [forged[c] for c in columns])
    assert conn.execute("SELECT action FROM audit_events WHERE position = 3").fetchone()[0] == "test.event"
    assert conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 5
    conn.close()


def _drop_guards(engine, dialect):
    with engine.connect() as conn:
        for statement in chain.drop_guard_ddl("audit_events", dialect):
            conn.execute(text(statement))


def test_edited_row_behind_dropped_triggers_is_reported_at_its_position(app, runner, db_url, backend):
    _seed_events(app, 6)
    result = runner.invoke(args=["ledger", "verify", "--audit"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit ok: 6 entries, head ")
    engine = _raw_engine(db_url)
    _drop_guards(engine, backend)
    with engine.connect() as conn:
        conn.execute(text("UPDATE audit_events SET after = :v WHERE position = 4"), {"v": '{"i":99}'})
    engine.dispose()
    result = runner.invoke(args=["ledger", "verify", "--audit"])
    assert result.exit_code == 1
    assert result.output.strip() == "audit broken at 4: hash does not match the entry's content"


def test_deleted_row_is_reported_as_a_gap(app, runner, db_url, backend):
    _seed_events(app, 4)
    engine = _raw_engine(db_url)
    _drop_guards(engine, backend)
    with engine.connect() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE position = 2"))
    engine.dispose()
    result = runner.invoke(args=["ledger", "verify", "--audit"])
    assert result.exit_code == 1
    assert result.output.startswith("audit broken at 2: ")


def test_expect_catches_a_chain_rewritten_and_rehashed_from_the_start(app, runner, db_url, backend):
    from crm.audit.models import AuditEvent

    _seed_events(app, 5)
    head = runner.invoke(args=["ledger", "verify", "--audit"]).output.split("head ")[1].strip()
    published = f"5:{head}"
    assert runner.invoke(args=["ledger", "verify", "--audit", "--expect", published]).exit_code == 0

    # An attacker with the triggers dropped rewrites entry 3 and re-hashes everything after it.
    engine = _raw_engine(db_url)
    _drop_guards(engine, backend)
    with app.app_context():
        from crm.extensions import db

        rows = [dict(r._mapping) for r in db.session.execute(
            AuditEvent.__table__.select().order_by(AuditEvent.position))]
        db.session.rollback()
    rows[2]["after"] = '{"i":1000}'
    with engine.connect() as conn:
        conn.execute(text("DELETE FROM audit_events"))
    prev = chain.ZERO_HASH
    fields = AuditEvent.__chain_fields__
    for r in rows:
        r["prev_hash"] = prev
        r["hash"] = chain.link_hash(prev, chain.canonical(r["position"], r["idempotency_key"], {f: r[f] for f in fields}))
        prev = r["hash"]
    with engine.begin() as conn:
        conn.execute(AuditEvent.__table__.insert(), rows)
    engine.dispose()

    plain = runner.invoke(args=["ledger", "verify", "--audit"])
    assert plain.exit_code == 0, "a full re-hash fools a plain verify — that is what --expect is for"
    caught = runner.invoke(args=["ledger", "verify", "--audit", "--expect", published])
    assert caught.exit_code == 1
    assert caught.output.startswith("audit broken at 5: hash differs from the published head")


def test_expect_beyond_the_end_and_malformed(app, runner):
    empty = runner.invoke(args=["ledger", "verify", "--audit", "--expect", "0:" + "0" * 64])
    assert empty.exit_code == 0 and empty.output == f"audit ok: 0 entries, head {'0' * 64}\n"
    assert runner.invoke(args=["ledger", "verify", "--audit", "--expect", "0:" + "a" * 64]).exit_code == 1
    _seed_events(app, 2)
    result = runner.invoke(args=["ledger", "verify", "--audit", "--expect", "9:" + "a" * 64])
    assert result.exit_code == 1 and result.output.startswith("audit broken at 9: ")
    result = runner.invoke(args=["ledger", "verify", "--audit", "--expect", "nonsense"])
    assert result.exit_code == 1 and result.output.startswith("refused: ")

"""The hash-chain mechanism: pure encoding, appending, idempotency, verification."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from crm import chain
from crm.audit.models import AuditEvent
from crm.audit import services as audit
from tests.helpers import operator


def test_canonical_is_sorted_compact_utf8_and_hash_covers_previous():
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    payload = chain.canonical(7, "k", {"b": "ж", "a": 1, "at": at, "amount": -150000, "none": None})
    assert payload == ("7\n1:k\na=1:1\namount=7:-150000\nat=27:2026-01-02T03:04:05.000006Z\nb=1:ж\n"
                       "none=~").encode("utf-8")
    # NULL, an empty string and the string "~" are all different
    # (a column has one type, so "0", 0 and False never compete for the same field)
    assert len({chain.canonical(1, "k", {"x": v}) for v in (None, "", "~", "0")}) == 4
    expected = hashlib.sha256(bytes(32) + payload).hexdigest()
    assert chain.link_hash(chain.ZERO_HASH, payload) == expected
    assert chain.link_hash("11" * 32, payload) != expected


def test_canonical_refuses_naive_datetimes_floats_and_decimals():
    from decimal import Decimal

    with pytest.raises(ValueError):
        chain.canonical(1, "k", {"at": datetime(2026, 1, 1)})
    with pytest.raises(TypeError):
        chain.canonical(1, "k", {"amount": 1.5})
    with pytest.raises(TypeError):
        chain.canonical(1, "k", {"amount": Decimal("1.50")})


def test_append_refuses_a_value_the_column_would_read_back_differently(app):
    from crm.audit.models import AuditEvent as Event

    with operator(app) as session:
        event = Event(idempotency_key="k", at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                      recorded_at=datetime(2026, 1, 1, tzinfo=timezone.utc), actor_id="5", actor_label="x",
                      action="a", object_type="t")
        with pytest.raises(TypeError):
            chain.append(session, event)
        session.rollback()


@pytest.mark.parametrize("value", ["12:" + "a" * 64, " 1:" + "F" * 64 + " "])
def test_parse_head_accepts_pos_hex(value):
    pos, hex_ = chain.parse_head(value)
    assert pos in (1, 12) and len(hex_) == 64 and hex_ == hex_.lower()


@pytest.mark.parametrize("value", ["", "12", "12:abc", "x:" + "a" * 64, "1:" + "g" * 64])
def test_parse_head_refuses_garbage(value):
    with pytest.raises(ValueError):
        chain.parse_head(value)


def test_empty_chain_verifies_with_zero_head(app):
    with app.app_context():
        from crm.extensions import db

        result = chain.verify(db.session, AuditEvent)
    assert result.ok and result.count == 0 and result.head_hash == "0" * 64
    assert result.line("audit") == f"audit ok: 0 entries, head {'0' * 64}"


def test_append_links_positions_and_hashes(app):
    with operator(app):
        for i in range(3):
            audit.record("test.event", "thing", i, after={"i": i})
    with app.app_context():
        from crm.extensions import db

        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position)).all()
        assert [r.position for r in rows] == [1, 2, 3]
        assert rows[0].prev_hash == chain.ZERO_HASH
        for before, after in zip(rows, rows[1:]):
            assert after.prev_hash == before.hash
        for row in rows:  # independent recomputation from the stored columns
            values = {name: getattr(row, name) for name in AuditEvent.__chain_fields__}
            assert row.hash == chain.link_hash(row.prev_hash, chain.canonical(row.position, row.idempotency_key, values))
        result = chain.verify(db.session, AuditEvent)
        assert result.ok and result.count == 3 and result.head_hash == rows[-1].hash


def test_replay_of_same_key_adds_nothing_and_different_data_names_the_field(app):
    with operator(app):
        first = audit.record("test.event", "thing", 1, after={"a": 1}, key="src:1")
        again = audit.record("test.event", "thing", 1, after={"a": 1}, key="src:1")
        assert again.position == first.position
    with operator(app):
        with pytest.raises(chain.ChainConflict) as err:
            audit.record("test.event", "thing", 1, after={"a": 2}, key="src:1")
        assert err.value.field == "after"
    with app.app_context():
        from crm.extensions import db

        assert db.session.scalar(select(AuditEvent.position).order_by(AuditEvent.position.desc())) == 1


def test_orm_guard_refuses_update_delete_and_bulk(app):
    from crm.extensions import db
    from sqlalchemy import delete, update

    with operator(app):
        audit.record("test.event", "thing", 1)
    with app.app_context():
        row = db.session.get(AuditEvent, 1)
        row.action = "forged"
        with pytest.raises(chain.AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.get(AuditEvent, 1))
        with pytest.raises(chain.AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        with pytest.raises(chain.AppendOnlyError):
            db.session.execute(update(AuditEvent).values(action="forged"))
        with pytest.raises(chain.AppendOnlyError):
            db.session.execute(delete(AuditEvent.__table__))
        db.session.rollback()
        assert db.session.get(AuditEvent, 1).action == "test.event"


def test_chain_write_in_a_read_only_sqlite_transaction_is_refused(app, backend):
    if backend != "sqlite":
        pytest.skip("SQLite's single-writer rule")
    from crm.database import write_intent

    token = write_intent.set(False)
    try:
        with app.app_context():
            with pytest.raises(RuntimeError):
                audit.record("test.event", "thing", 1)
    finally:
        write_intent.reset(token)


@pytest.mark.parametrize("intent", ["reads first", "deferred"])
def test_begin_writing_takes_the_sqlite_write_lock_only_when_called(app, backend, intent):
    """A reads-first unit of work reads without the write lock (another writer may commit
    meanwhile), and holds it from begin_writing to its commit; its loaded objects survive."""
    if backend != "sqlite":
        pytest.skip("SQLite's single-writer rule")
    import sqlite3

    from crm.database import READS_FIRST, begin_writing, write_intent
    from crm.extensions import db

    with operator(app):
        audit.record("test.event", "thing", "first")

    def other_writer_gets_the_lock() -> bool:
        other = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        finally:
            other.close()

    token = write_intent.set(READS_FIRST if intent == "reads first" else False)
    try:
        with app.app_context():
            first = db.session.get(AuditEvent, 1)
            driver = db.session.connection().connection.driver_connection
            assert driver.in_transaction is (intent == "deferred")
            assert other_writer_gets_the_lock()
            for _attempt in range(2):  # no chain write before the lock is taken, the second time neither
                with pytest.raises(RuntimeError):
                    audit.record("test.event", "thing", 1)
            if intent == "reads first":  # any other write would commit on its own, without the lock
                with pytest.raises(RuntimeError, match="begin_writing"):
                    db.session.execute(text("INSERT INTO notifications (user_id, kind, params, created_at) "
                                            "VALUES (1, 'x', '{}', '2026-11-20 09:00:00.000000')"))
            else:
                with db.session.begin_nested(), pytest.raises(RuntimeError, match="savepoint"):
                    begin_writing(db.session)
            begin_writing(db.session)
            assert driver.in_transaction and not other_writer_gets_the_lock()
            audit.record("test.event", "thing", f"after {first.object_id}")
            db.session.commit()
            assert other_writer_gets_the_lock()
            assert db.session.get(AuditEvent, 2).object_id == "after first"
    finally:
        write_intent.reset(token)


_NOTE = ("INSERT INTO login_attempts (login, at, succeeded, throttled) "
         "VALUES (:kind, '2026-11-20 09:00:00.000000', false, false)")


def _notes(app) -> list[str]:
    """What another connection sees (a reader: on SQLite it never waits for the write lock)."""
    from crm.database import write_intent
    from crm.extensions import db

    token = write_intent.set(False)
    try:
        with app.app_context():
            return db.session.scalars(text("SELECT login FROM login_attempts ORDER BY id")).all()
    finally:
        write_intent.reset(token)


def test_a_single_statement_unit_of_work_writes_once_and_never_a_chain(app, backend):
    """begin_writing(single_statement=True): one write, atomic by itself. PostgreSQL commits it
    as it runs (autocommit: no BEGIN/COMMIT); SQLite holds the write lock until the commit.
    A second write or a chain write is refused on both; the next unit of work is as always."""
    from crm.database import LOCK_CLASS_LOGIN, READS_FIRST, begin_writing, lock_name, write_intent
    from crm.extensions import db

    token = write_intent.set(READS_FIRST)
    try:
        with app.app_context():
            db.session.execute(text("SELECT 1"))  # the sign-in read
            for _attempt in range(2):  # no transaction lock yet: on PostgreSQL it would end with its statement
                with pytest.raises(RuntimeError, match="reads-first"):
                    audit.record("test.event", "thing", 1)
                with pytest.raises(RuntimeError, match="reads-first"):
                    lock_name(db.session, LOCK_CLASS_LOGIN, "agent1")
            begin_writing(db.session, single_statement=True)
            db.session.execute(text(_NOTE), {"kind": "one"})
            assert _notes(app) == (["one"] if backend == "postgresql" else [])  # seen at once, before any commit
            with pytest.raises(RuntimeError, match="second write"):
                db.session.execute(text(_NOTE), {"kind": "two"})
            for _attempt in range(2):
                with pytest.raises(RuntimeError, match="single-statement"):
                    audit.record("test.event", "thing", 1)
                with pytest.raises(RuntimeError, match="single-statement"):
                    lock_name(db.session, LOCK_CLASS_LOGIN, "agent1")
            db.session.commit()
    finally:
        write_intent.reset(token)
    assert _notes(app) == ["one"]
    with operator(app):  # an ordinary unit of work on the same pool: a transaction, rolled back whole
        from crm.extensions import db

        db.session.execute(text(_NOTE), {"kind": "three"})
        db.session.execute(text(_NOTE), {"kind": "four"})
        db.session.rollback()
        audit.record("test.event", "thing", "after")
    assert _notes(app) == ["one"]
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.object_id).order_by(AuditEvent.position.desc())) == "after"


def test_fast_verify_reads_the_same_bytes_as_canonical(app):
    """verify() encodes raw driver values itself; it must agree with canonical() on every type."""
    from crm.extensions import db

    with operator(app):
        audit.record("test.event", "thing", "ж" * 3, after={"text": "кириллица ~ 1:2\nnew line"},
                     at=datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=timezone.utc))
        audit.record("test.event", "thing", None, before=None, after=None)
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position)).all()
        for row in rows:
            values = {name: getattr(row, name) for name in AuditEvent.__chain_fields__}
            assert row.hash == chain.link_hash(row.prev_hash, chain.canonical(row.position, row.idempotency_key, values))
        result = chain.verify(db.session, AuditEvent)
        assert result.ok and result.count == 2 and result.head_hash == rows[-1].hash


def _event(key: str, object_id: str) -> AuditEvent:
    at = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    return AuditEvent(idempotency_key=key, at=at, recorded_at=at, actor_id=None, actor_label="cli",
                      action="test.event", object_type="thing", object_id=object_id, subject_id=None,
                      before=None, after=None, client_addr=None)


def test_append_all_links_new_entries_in_one_insert_and_answers_replays_with_the_stored_rows(app):
    from sqlalchemy import event

    from crm.extensions import db

    with operator(app) as session:
        stored_hash = chain.append(session, _event("k1", "one")).hash
    with operator(app) as session:
        inserts = []
        with app.app_context():
            engine = db.engine
        listener = lambda conn, cur, statement, *a: inserts.append(statement) if statement.startswith("INSERT") else None
        event.listen(engine, "before_cursor_execute", listener)
        try:
            rows = chain.append_all(session, [_event("k2", "two"), _event("k1", "one"), _event("k3", "three"),
                                              _event("k2", "two")])
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert [r.position for r in rows] == [2, 1, 3, 2]  # a replay, inside the call too, is the first row
        assert rows[1].hash == stored_hash and rows[3] is rows[0]
        assert len(inserts) == 1
    with operator(app) as session:
        with pytest.raises(chain.ChainConflict) as err:
            chain.append_all(session, [_event("k4", "four"), _event("k3", "changed")])
        assert err.value.field == "object_id"
        session.rollback()
    with app.app_context():
        result = chain.verify(db.session, AuditEvent)
        assert result.ok and result.count == 3

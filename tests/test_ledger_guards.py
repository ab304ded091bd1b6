"""Tamper drills on the commission ledger and the immutable rate tables (PRODUCT.md §4 items 4–5)."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from crm import chain
from crm.database import normalise_url
from tests.money import build_world, event, sign


@pytest.fixture
def ledger_world(demo_app, clock):
    build_world(demo_app, clock)
    numbers = [sign(demo_app, clock, flat=f) for f in (1, 2, 3)]
    clock.advance(hours=1)
    event(demo_app, numbers[0], "activated", clock.now())
    event(demo_app, numbers[1], "cancelled", clock.now())
    return demo_app  # 12 entries: 3×2 accruals, 4 for the activation, 2 voids


def _engine(url):
    return create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")


def test_update_delete_are_refused_and_verify_prints_the_literal_line(ledger_world, demo_db_url):
    runner = ledger_world.test_cli_runner()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and re.fullmatch(r"ledger ok: 12 entries, head [0-9a-f]{64}\n", result.output)
    engine = _engine(demo_db_url)
    with engine.connect() as conn:
        for statement in ("UPDATE ledger_entries SET amount = amount * 2 WHERE position = 1",
                          "DELETE FROM ledger_entries WHERE position = 12",
                          "UPDATE rate_amounts SET amount = 1",
                          "DELETE FROM rate_versions",
                          "UPDATE contract_events SET reason = 'x'"):
            with pytest.raises(DBAPIError):
                conn.execute(text(statement))
        assert conn.execute(text("SELECT sum(amount) FROM ledger_entries WHERE position = 1")).scalar() == 150000
    engine.dispose()


def test_postgresql_truncate_is_refused(ledger_world, demo_db_url, backend):
    if backend != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    engine = _engine(demo_db_url)
    with engine.connect() as conn:
        for table in ("ledger_entries", "rate_versions", "rate_amounts", "contract_events"):
            with pytest.raises(DBAPIError) as err:
                conn.execute(text(f"TRUNCATE {table} CASCADE"))
            assert err.value.orig.sqlstate == "23001"
        assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar() == 12
    engine.dispose()


def test_bare_sqlite_insert_or_replace_and_wrong_position_are_refused(ledger_world, demo_db_url, backend):
    if backend != "sqlite":
        pytest.skip("SQLite's")
    conn = sqlite3.connect(demo_db_url.removeprefix("sqlite:///"), isolation_level=None)
    before = conn.execute("SELECT count(*), sum(amount) FROM ledger_entries").fetchone()
    columns = [d[0] for d in conn.execute("SELECT * FROM ledger_entries LIMIT 0").description]
    row = dict(zip(columns, conn.execute("SELECT * FROM ledger_entries WHERE position = 1").fetchone()))
    sql = f"INSERT OR REPLACE INTO ledger_entries ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute(sql, [{**row, "amount": 999999999}[c] for c in columns])
    last_pos, last_hash = conn.execute("SELECT position, hash FROM ledger_entries ORDER BY position DESC LIMIT 1").fetchone()
    for forged in ({**row, "position": last_pos + 5, "prev_hash": last_hash, "idempotency_key": "x1"},
                   {**row, "position": last_pos + 1, "prev_hash": "0" * 64, "idempotency_key": "x2"},
                   {**row, "position": last_pos + 1, "prev_hash": last_hash}):  # existing key
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(sql.replace("OR REPLACE ", ""), [forged[c] for c in columns])
    assert conn.execute("SELECT count(*), sum(amount) FROM ledger_entries").fetchone() == before == (12, 330000)
    conn.close()


def _drop_guards(url, dialect):
    engine = _engine(url)
    with engine.connect() as conn:
        for statement in chain.drop_guard_ddl("ledger_entries", dialect):
            conn.execute(text(statement))
    return engine


def test_an_edited_amount_behind_dropped_triggers_is_reported_at_its_position(ledger_world, demo_db_url, backend):
    engine = _drop_guards(demo_db_url, backend)
    with engine.connect() as conn:
        conn.execute(text("UPDATE ledger_entries SET amount = 1500000 WHERE position = 7"))
    engine.dispose()
    result = ledger_world.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert result.output == "ledger broken at 7: hash does not match the entry's content\n"


def test_a_fully_rehashed_ledger_passes_plain_verify_and_fails_expect(ledger_world, demo_db_url, backend):
    from crm.ledger.models import LedgerEntry

    runner = ledger_world.test_cli_runner()
    published = "12:" + runner.invoke(args=["ledger", "verify"]).output.split("head ")[1].strip()
    engine = _drop_guards(demo_db_url, backend)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(LedgerEntry.__table__.select().order_by(LedgerEntry.position)).mappings()]
        conn.execute(text("UPDATE ledger_entries SET ref_position = NULL"))
        conn.execute(text("DELETE FROM ledger_entries"))
    rows[0]["amount"] = 10_000_000  # the rewrite: a fat accrual, everything after re-hashed
    prev = chain.ZERO_HASH
    for r in rows:
        r["prev_hash"] = prev
        r["hash"] = chain.link_hash(prev, chain.canonical(r["position"], r["idempotency_key"],
                                                          {f: r[f] for f in LedgerEntry.__chain_fields__}))
        prev = r["hash"]
    with engine.begin() as conn:
        conn.execute(LedgerEntry.__table__.insert(), rows)
    engine.dispose()
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    caught = runner.invoke(args=["ledger", "verify", "--expect", published])
    assert caught.exit_code == 1
    assert caught.output.startswith("ledger broken at 12: hash differs from the published head")


def test_add_tariff_and_add_rates_cli_literal_lines(demo_app, clock, tmp_path):
    runner = demo_app.test_cli_runner()
    ok = runner.invoke(args=["crm", "add-tariff", "net100", "--name", "Домашний 100", "--speed", "100",
                             "--fee", "500.00", "--kind", "internet"])
    assert ok.exit_code == 0 and ok.output == "tariff net100 added\n"
    assert runner.invoke(args=["crm", "add-tariff", "tv", "--name", "ТВ", "--fee", "300", "--kind", "tv",
                               "--addon"]).output == "tariff tv added\n"
    again = runner.invoke(args=["crm", "add-tariff", "net100", "--name", "x", "--speed", "1", "--fee", "1",
                                "--kind", "internet"])
    assert again.exit_code == 1 and again.output.startswith("refused: ")
    bad_fee = runner.invoke(args=["crm", "add-tariff", "net7", "--name", "x", "--speed", "1", "--fee", "1.234",
                                  "--kind", "internet"])
    assert bad_fee.exit_code == 1

    rates = {"effective_from": "2026-12-01T00:00:00+05:00", "agent": {"tariffs": {"net100": 150000},
             "addons": {"tv": 20000}}, "supervisor_override_percent": "10", "clawback_days": 60,
             "tiers": [{"activations": 30, "bonus_per_activation": 10000}]}
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(rates), encoding="utf-8")
    added = runner.invoke(args=["ledger", "add-rates", str(path)])
    assert added.exit_code == 0 and added.output == "rate version 1 effective from 2026-12-01T00:00:00+05:00\n"
    naive = {**rates, "effective_from": "2026-12-02T00:00:00"}  # company time zone
    path.write_text(json.dumps(naive), encoding="utf-8")
    assert runner.invoke(args=["ledger", "add-rates", str(path)]).output == \
        "rate version 2 effective from 2026-12-02T00:00:00+05:00\n"
    past = {**rates, "effective_from": "2026-11-01T00:00:00+05:00"}
    path.write_text(json.dumps(past), encoding="utf-8")
    refused = runner.invoke(args=["ledger", "add-rates", str(path)])
    assert refused.exit_code == 1
    assert refused.output == "refused: effective_from 2026-11-01T00:00:00+05:00 is in the past\n"
    path.write_text("{not json", encoding="utf-8")
    assert runner.invoke(args=["ledger", "add-rates", str(path)]).exit_code == 1
    missing = runner.invoke(args=["ledger", "add-rates", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and missing.output.startswith("refused: ")


def test_a_backdated_version_is_refused_from_the_page(demo_app, clock):
    from tests.helpers import login, post

    build_world(demo_app, clock)
    client = demo_app.test_client()
    login(client, "head")
    form = {"effective_from": "2026-11-01T00:00", "supervisor_override_percent": "10", "clawback_days": "60",
            "amount_net100": "1500", "amount_net300": "2000", "amount_net500": "2500", "amount_tv": "200",
            "amount_phone": "100", "tiers": "30 100.00"}
    refused = post(client, "/rates", form, token_from="/rates")
    assert refused.status_code == 422 and "effective_from 2026-11-01T00:00" in refused.get_data(as_text=True)
    ok = post(client, "/rates", {**form, "effective_from": "2026-12-01T00:00"}, token_from="/rates")
    assert ok.status_code == 302
    with demo_app.app_context():
        from crm.ledger.models import RateVersion
        from crm.extensions import db

        version = db.session.get(RateVersion, 2)
        assert version.effective_from.isoformat() == "2026-11-30T19:00:00+00:00"
        assert {a.tariff.code: a.amount for a in version.amounts}["net100"] == 150000
    sup = demo_app.test_client()
    login(sup, "sup1")
    assert post(sup, "/rates", {**form, "effective_from": "2026-12-05T00:00"}, token_from="/rates").status_code == 403


TAMPERS = {  # name: (statements behind dropped triggers, where verify must break, why)
    "none": ([], None, None),
    "amount at a range's first row": (["UPDATE ledger_entries SET amount = amount + 1 WHERE position = 5"], 5,
                                      "hash does not match the entry's content"),
    "reason at a range's last row": (["UPDATE ledger_entries SET reason = 'x' WHERE position = 8"], 8,
                                     "hash does not match the entry's content"),
    "link across two ranges": (["UPDATE ledger_entries SET prev_hash = hash WHERE position = 9"], 9,
                               "previous hash does not match the entry before it"),
    "a deleted row": (["UPDATE ledger_entries SET ref_position = NULL WHERE ref_position = 6",
                       "DELETE FROM ledger_entries WHERE position = 6"], 6, None),
    "a stray position": (["UPDATE ledger_entries SET position = 40 WHERE position = 12"], 12, None),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_verify_in_parallel_ranges_gives_the_one_scan_verdict(ledger_world, demo_db_url, backend, tamper):
    """Three forked ranges of four entries each: the same verdict, position and reason as one scan."""
    from crm.database import write_intent
    from crm.extensions import db
    from crm.ledger.models import LedgerEntry

    statements, broken_at, reason = TAMPERS[tamper]
    engine = _drop_guards(demo_db_url, backend)
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()
    with ledger_world.app_context():
        token = write_intent.set(False)
        try:
            one = chain.verify(db.session, LedgerEntry, workers=1)
            db.session.rollback()
            parallel = chain.verify(db.session, LedgerEntry, workers=3, min_rows_per_worker=1)
            db.session.rollback()
            published = (6, "0" * 64)
            wrong_head = chain.verify(db.session, LedgerEntry, expect=published, workers=3, min_rows_per_worker=1)
            db.session.rollback()
        finally:
            write_intent.reset(token)
    assert parallel == one
    assert parallel.ok is (broken_at is None)
    assert parallel.broken_at == broken_at
    if reason:
        assert parallel.reason == reason
    if broken_at is None:
        assert parallel.count == 12
        assert wrong_head.broken_at == 6 and wrong_head.reason.startswith("hash differs from the published head")
    else:
        assert parallel.count == broken_at - 1


def test_a_datetime_stored_in_another_text_form_is_rechecked_not_reported(ledger_world, demo_db_url, backend):
    """SQLite may hold a datetime without its microseconds: the fast encoder does not know that
    form, the typed re-check does, so the chain still verifies; a changed time still breaks it."""
    if backend != "sqlite":
        pytest.skip("SQLite's text datetimes")
    engine = _drop_guards(demo_db_url, backend)
    with engine.connect() as conn:
        short = conn.execute(text("UPDATE ledger_entries SET at = substr(at, 1, 19) "
                                  "WHERE substr(at, 21) = '000000'")).rowcount
    runner = ledger_world.test_cli_runner()
    result = runner.invoke(args=["ledger", "verify"])
    assert short > 0
    assert result.exit_code == 0 and result.output.startswith("ledger ok: 12 entries")
    with engine.connect() as conn:
        conn.execute(text("UPDATE ledger_entries SET at = '2020-01-01 00:00:00' WHERE position = 4"))
    engine.dispose()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.output == "ledger broken at 4: hash does not match the entry's content\n"

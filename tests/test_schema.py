"""Migrations build the same schema on SQLite and PostgreSQL, and it matches the models."""
from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text, types

from crm.database import normalise_url
from crm.extensions import db
from tests.conftest import PG_URL, _build, _pg_admin_engine, _pg_url_for


def _type_name(column_type) -> str:
    """A dialect-neutral name for a reflected column type."""
    t = column_type
    if isinstance(t, types.Boolean):
        return "boolean"
    if isinstance(t, (types.BigInteger,)):
        return "bigint"
    if isinstance(t, types.Integer):
        return "integer"
    if isinstance(t, types.Float):
        return "float"
    if isinstance(t, types.DateTime):
        return "datetime"
    if isinstance(t, types.Text):
        return "text"
    if isinstance(t, types.String):
        return f"varchar({t.length})" if t.length else "text"
    return type(t).__name__.lower()


def _triggers(engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = conn.execute(text(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = current_schema()"))
        return {(r[0], r[1]) for r in rows}


def describe(engine) -> dict:
    insp = inspect(engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        out[table] = {
            "columns": sorted((c["name"], _type_name(c["type"]), bool(c["nullable"])) for c in insp.get_columns(table)),
            "pk": (insp.get_pk_constraint(table)["name"], tuple(insp.get_pk_constraint(table)["constrained_columns"])),
            "fks": sorted((fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                           tuple(fk["referred_columns"])) for fk in insp.get_foreign_keys(table)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
                              if not i["name"].startswith("sqlite_autoindex") and not i.get("duplicates_constraint")),
            "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
        }
    return out


@pytest.fixture
def fresh_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    _build(url, demo=False)
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_postgresql():
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    name = f"dst_{os.getpid()}_schema_{uuid.uuid4().hex[:6]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    _build(_pg_url_for(name), demo=False)
    engine = create_engine(normalise_url(_pg_url_for(name)))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_sqlite_and_postgresql_get_the_same_schema(fresh_sqlite, fresh_postgresql):
    lite, pg = describe(fresh_sqlite), describe(fresh_postgresql)
    assert lite.keys() == pg.keys()
    assert {"users", "role_grants", "login_attempts", "api_keys", "audit_events"} <= lite.keys()
    assert ("hash", "varchar(64)", False) in lite["audit_events"]["columns"]
    assert lite["audit_events"]["pk"] == ("pk_audit_events", ("position",))
    for table in lite:
        assert lite[table] == pg[table], table
    lite_triggers, pg_triggers = _triggers(fresh_sqlite), _triggers(fresh_postgresql)
    # PostgreSQL has one more guard per table, for TRUNCATE, which SQLite does not have as a statement.
    guarded = {"audit_events", "ledger_entries", "rate_versions", "rate_amounts", "rate_tiers", "contract_events",
               "visits", "door_unlocks", "period_closes", "period_snapshots", "payouts", "dispute_messages"}
    assert pg_triggers - lite_triggers == {(t, f"{t}_no_truncate") for t in guarded}
    assert lite_triggers == pg_triggers - {(t, f"{t}_no_truncate") for t in guarded}
    for table in guarded:
        assert {(table, f"{table}_no_update"), (table, f"{table}_no_delete")} <= lite_triggers
    for chained in ("audit_events", "ledger_entries"):
        assert (chained, f"{chained}_insert_guard") in lite_triggers


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_migrations_match_the_models(which, request):
    engine = request.getfixturevalue(f"fresh_{which}")
    import crm.models  # noqa: F401

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_postgresql_triggers_are_enabled_always(fresh_postgresql):
    with fresh_postgresql.connect() as conn:
        states = dict(conn.execute(text(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'audit_events_%'")).all())
    assert states and set(states.values()) == {"A"}, states

"""Shared set-up for the ledger benchmarks: throwaway databases, the priced world, raw rows.

Nothing here is timed. The scripts import it as a sibling module (``bench/`` is on
``sys.path`` when a script in it runs); the project root is put on ``sys.path`` here.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE = "postgresql://postgres@127.0.0.1:5432/"
#: the clock stands at T0 while the world is built; every benchmark event comes later
T0 = datetime(2026, 1, 5, 4, 0, tzinfo=timezone.utc)
#: fast but real password hashes for the demo users (set-up only)
FAST_HASH = "pbkdf2:sha256:1000"
COMPANY_TZ = ZoneInfo(os.environ.get("DOORSTEP_TIMEZONE", "Asia/Yekaterinburg"))

#: the rate version every benchmark uses (the one tests/money.py uses)
RATES = {"agent": {"tariffs": {"net100": 150000, "net300": 200000, "net500": 250000},
                   "addons": {"tv": 20000, "phone": 10005}},
         "supervisor_override_percent": "10", "clawback_days": 60,
         "tiers": [{"activations": 30, "bonus_per_activation": 10000},
                   {"activations": 50, "bonus_per_activation": 15000}]}
TARIFFS = [  # code, name, kind, fee, speed, addon
    ("net100", "Домашний 100", "internet", 50000, 100, False),
    ("net300", "Домашний 300", "internet", 70000, 300, False),
    ("net500", "Домашний 500", "internet", 90000, 500, False),
    ("tv", "ТВ", "tv", 30000, None, True),
    ("phone", "Телефон", "phone", 15000, None, True),
]
APARTMENTS = 150

LEDGER_COLUMNS = ("position", "idempotency_key", "prev_hash", "hash", "kind", "bucket", "beneficiary_id",
                  "contract_id", "rate_version_id", "amount", "at", "recorded_at", "period", "corrects_period",
                  "actor_id", "actor_label", "reason", "ref_position")


def month_of(at: datetime) -> str:
    """The accounting period ``YYYY-MM`` of ``at`` (company time zone), as crm.ledger.services does."""
    return at.astimezone(COMPANY_TZ).strftime("%Y-%m")


def sqlite_dt(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy stores it in SQLite (naive UTC text, always with microseconds)."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def pg_dt(value: datetime | None) -> datetime | None:
    """An aware datetime as crm.types.UTCDateTime binds it (naive UTC)."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def begin(dialect: str, cur) -> None:
    """Open a write transaction the way the app does (SQLite: BEGIN IMMEDIATE; psycopg: implicit)."""
    if dialect == "sqlite":
        cur.execute("BEGIN IMMEDIATE")


def commit(dialect: str, conn, cur) -> None:
    if dialect == "sqlite":
        cur.execute("COMMIT")
    else:
        conn.commit()


def insert_sql(dialect: str, table: str, columns) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


# --- throwaway databases -------------------------------------------------------------


class Databases:
    """Creates migrated databases for one run and removes every one of them at the end."""

    def __init__(self, dialect: str, tag: str):
        if dialect not in ("sqlite", "postgresql"):
            raise SystemExit(f"--db must be sqlite or postgresql, not {dialect}")
        self.dialect = dialect
        self.tag = f"bench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.tmp = tempfile.mkdtemp(prefix=f"{self.tag}_") if dialect == "sqlite" else None
        self.pg_names: list[str] = []

    # URLs and raw connections
    def url(self, name: str) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{os.path.join(self.tmp, name + '.db')}"
        return PG_BASE + name

    def raw_connect(self, url: str):
        """A raw DB-API connection with the settings the app's engine uses."""
        if self.dialect == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            for pragma in ("foreign_keys=ON", "recursive_triggers=ON", "busy_timeout=15000",
                           "journal_mode=WAL", "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
            return conn
        import psycopg

        return psycopg.connect(url, autocommit=False)

    def _pg_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql)

    def create_empty(self, suffix: str) -> str:
        name = f"{self.tag}_{suffix}"
        if self.dialect == "postgresql":
            self._pg_admin(f'CREATE DATABASE "{name}"')
            self.pg_names.append(name)
        return self.url(name)

    def copy(self, template_url: str, suffix: str) -> str:
        """A fresh copy of a built database (SQLite: file copy; PostgreSQL: CREATE DATABASE … TEMPLATE)."""
        name = f"{self.tag}_{suffix}"
        if self.dialect == "sqlite":
            shutil.copyfile(template_url[len("sqlite:///"):], self.url(name)[len("sqlite:///"):])
        else:
            template = template_url.rsplit("/", 1)[1]
            self._pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.pg_names.append(name)
        return self.url(name)

    def cleanup(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for name in reversed(self.pg_names):
            try:
                self._pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # keep cleaning up the others
                print(f"warning: could not drop {name}: {exc}", file=sys.stderr)
        self.pg_names.clear()


@contextmanager
def databases(dialect: str, tag: str):
    dbs = Databases(dialect, tag)
    try:
        yield dbs
    finally:
        dbs.cleanup()


# --- the app and the world -----------------------------------------------------------


def make_app(url: str, clock=None):
    from app import create_app
    from crm.clock import FixedClock

    config = {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "PASSWORD_HASH_METHOD": FAST_HASH,
              "SECRET_KEY": "bench-secret"}
    return create_app(config, clock=clock or FixedClock(T0))


def dispose(app) -> None:
    from crm.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def build_world(url: str, buildings: int) -> None:
    """Migrate, seed the demo people, the catalogue, one rate version in force from T0 and
    ``buildings`` buildings of APARTMENTS flats, all through the project's services."""
    import logging

    from flask_migrate import upgrade

    from crm.actors import CLI, set_actor
    from crm.catalogue import services as catalogue
    from crm.demo import seed_people
    from crm.extensions import db
    from crm.ledger import services as ledger
    from territories.models import Building

    app = make_app(url)
    with app.app_context():
        upgrade()
        logging.getLogger("alembic").setLevel(logging.WARNING)
        set_actor(CLI)
        seed_people()
        for code, name, kind, fee, speed, addon in TARIFFS:
            catalogue.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee, speed_mbit=speed,
                                 is_addon=addon)
        ledger.add_rate_version(None, {**RATES, "effective_from": T0.isoformat()})
        for i in range(1, buildings + 1):
            db.session.add(Building(external_id=f"bench-b{i}", address=f"ул. Ленина, {i}", lat=56.8 + i / 10000,
                                    lon=60.6, apartments=APARTMENTS, entrances=6, floors=9,
                                    connected_at=T0 - timedelta(days=30), created_at=T0))
        db.session.commit()
    dispose(app)


def world_facts(url: str) -> dict:
    """Ids the raw writers need: agents with their supervisors, tariffs, the rate version, buildings."""
    from sqlalchemy import select

    from crm.catalogue.models import Tariff
    from crm.extensions import db
    from crm.ledger.models import RateVersion
    from crm.users.models import User
    from territories.models import Building

    app = make_app(url)
    with app.app_context():
        users = db.session.scalars(select(User).order_by(User.id)).all()
        facts = {
            "agents": [(u.id, u.manager_id) for u in users if u.role == "agent"],
            "users": {u.login: u.id for u in users},
            "tariffs": {t.code: (t.id, t.monthly_fee) for t in db.session.scalars(select(Tariff))},
            "rate_version_id": db.session.scalar(select(RateVersion.id)),
            "buildings": db.session.scalars(select(Building.id).order_by(Building.id)).all(),
        }
    dispose(app)
    return facts


def insert_contracts(dbs: Databases, url: str, contracts) -> None:
    """Raw-insert contract rows (set-up for the raw ledger writers, so contract_id points at real rows).

    ``contracts``: dicts with id, number, agent_id, supervisor_id, building_id, flat, tariff_id,
    monthly_fee, at, rate_version_id.
    """
    columns = ("id", "number", "agent_id", "supervisor_id", "building_id", "flat", "subscriber_name", "phone",
               "tariff_id", "monthly_fee", "adult_confirmed", "at", "recorded_at", "rate_version_id", "status")
    dt = sqlite_dt if dbs.dialect == "sqlite" else pg_dt
    rows = [(c["id"], c["number"], c["agent_id"], c["supervisor_id"], c["building_id"], c["flat"], "Иван Петров",
             "+79123456789", c["tariff_id"], c["monthly_fee"], True, dt(c["at"]), dt(c["at"]), c["rate_version_id"],
             "signed") for c in contracts]
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        begin(dbs.dialect, cur)
        cur.executemany(insert_sql(dbs.dialect, "contracts", columns), rows)
        if dbs.dialect == "postgresql":  # keep the id sequence ahead of the explicit ids
            cur.execute("SELECT setval(pg_get_serial_sequence('contracts', 'id'), (SELECT MAX(id) FROM contracts))")
        commit(dbs.dialect, conn, cur)
    finally:
        conn.close()


def verify_chains(url: str, names=("ledger",)) -> dict[str, object]:
    """crm.chain.verify on each named chain; returns name → VerifyResult."""
    from crm import chain
    from crm.database import write_intent
    from crm.extensions import db

    app = make_app(url)
    out = {}
    with app.app_context():
        token = write_intent.set(False)
        try:
            for name in names:
                out[name] = chain.verify(db.session, chain.registered(name))
            db.session.rollback()
        finally:
            write_intent.reset(token)
    dispose(app)
    return out


def revision() -> str:
    """The commit the measured code is at, and whether the application code differs from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "crm", "territories", "app.py", "migrations"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in crm/" if dirty else "")


def load() -> str:
    """The machine's 1/5/15-minute load averages (other work on the box skews every figure)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "inf"

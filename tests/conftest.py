"""Fixtures: a fresh, migrated database per test on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL.

Migrations run once per session into a template; each test gets a copy (SQLite:
a file copy; PostgreSQL: ``CREATE DATABASE … TEMPLATE``), because the
append-only tables cannot be emptied between tests.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from crm.clock import FixedClock
from crm.database import normalise_url

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set"))]
START = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
#: fast but real hashes for users the tests create; the demo template keeps the default (scrypt)
FAST_HASH = "pbkdf2:sha256:1000"
RUN_ID = f"{os.getpid()}"


def _pg_admin_engine():
    return create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT", poolclass=None)


def _pg_url_for(dbname: str) -> str:
    return make_url(normalise_url(PG_URL)).set(database=dbname).render_as_string(hide_password=False)


def _build(url: str, demo: bool) -> None:
    """Migrate an empty database at ``url`` (and seed the demo people)."""
    from flask_migrate import upgrade

    from crm.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True}, clock=FixedClock(START))
    with app.app_context():
        upgrade()
        if demo:
            from crm.actors import CLI, set_actor
            from crm.demo import seed_people

            set_actor(CLI)
            seed_people()
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


class Templates:
    def __init__(self, tmp_dir):
        self.tmp_dir = tmp_dir
        self.built: dict[tuple[str, str], str] = {}

    def get(self, backend: str, kind: str) -> str:
        key = (backend, kind)
        if key not in self.built:
            if backend == "sqlite":
                path = os.path.join(self.tmp_dir, f"template-{kind}.db")
                _build(f"sqlite:///{path}", demo=kind == "demo")
                self.built[key] = path
            else:
                name = f"dst_{RUN_ID}_tpl_{kind}"
                with _pg_admin_engine().connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                _build(_pg_url_for(name), demo=kind == "demo")
                self.built[key] = name
        return self.built[key]

    def drop_all(self):
        pg = [name for (backend, _), name in self.built.items() if backend == "postgresql"]
        if pg:
            with _pg_admin_engine().connect() as conn:
                for name in pg:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _drop_stale_pg_databases():
    """Databases left by an earlier run that died (its process is gone)."""
    with _pg_admin_engine().connect() as conn:
        names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'dst\\_%'")).scalars().all()
        for name in names:
            match = re.match(r"^dst_(\d+)_", name)
            if match and not os.path.exists(f"/proc/{match.group(1)}"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    if PG_URL:
        _drop_stale_pg_databases()
    t = Templates(str(tmp_path_factory.mktemp("templates")))
    yield t
    t.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _fresh_database(backend, templates, tmp_path, kind):
    """Yields the URL of a private copy of a template database; drops it afterwards."""
    if backend == "sqlite":
        path = os.path.join(str(tmp_path), f"{kind}-{uuid.uuid4().hex[:8]}.db")
        shutil.copyfile(templates.get("sqlite", kind), path)
        yield f"sqlite:///{path}"
        return
    template = templates.get("postgresql", kind)
    name = f"dst_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    try:
        yield _pg_url_for(name)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def db_url(backend, templates, tmp_path):
    yield from _fresh_database(backend, templates, tmp_path, "empty")


@pytest.fixture
def demo_db_url(backend, templates, tmp_path):
    yield from _fresh_database(backend, templates, tmp_path, "demo")


@pytest.fixture
def clock():
    return FixedClock(START)


def _make_app(url, clock, **extra):
    config = {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "PASSWORD_HASH_METHOD": FAST_HASH,
              "SECRET_KEY": "test-secret", **extra}
    return create_app(config, clock=clock)


@pytest.fixture
def make_app(clock):
    """Build further app instances (another "server process") on a database URL."""
    made = []

    def factory(url, **extra):
        app = _make_app(url, clock, **extra)
        made.append(app)
        return app

    yield factory
    for app in made:
        _dispose(app)


def _dispose(app):
    from crm.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(db_url, clock):
    """An app on an empty, migrated database."""
    app = _make_app(db_url, clock)
    yield app
    _dispose(app)


@pytest.fixture
def demo_app(demo_db_url, clock):
    """An app whose database holds the 19 demo people (password ``demo``)."""
    app = _make_app(demo_db_url, clock)
    yield app
    _dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def demo_client(demo_app):
    return demo_app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()

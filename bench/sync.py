"""Visits through the real ``POST /api/v1/sync`` under gunicorn against a bare raw-driver endpoint.

    .venv/bin/python bench/sync.py [--db sqlite|postgresql | --database-url URL]
        [--requests 2000] [--clients 20] [--rounds 4] [--retries 0.02] [--warmup 2]
        [--workers 2] [--worker-class sync|gthread] [--threads 4]
        [--buildings-per-zone 5] [--seed 1] [--profile]

Set-up (not measured): a migrated database with one sales head, one supervisor, ``--clients``
agents, one territory cut into one zone per agent (assigned to them from today, through
``territories.services.save_territory`` / ``save_zone``), and ``--buildings-per-zone``
buildings inside each zone imported through ``territories.importer.import_buildings``, and
``--history-days`` days of ``--history-per-day`` past visits per agent (``seed_history``).

Two gunicorn servers run side by side on the same database with the same settings
(``--workers`` workers of ``--worker-class``, ``DATABASE_URL`` and ``SECRET_KEY`` in the
environment):

(s) sync: ``app:create_app()``; every client signs in as its own agent first (``GET /login``
    for the CSRF token, ``POST /login``, ``GET /home`` for the page's token) and sends its
    visits with the session cookie and ``X-CSRFToken``: the full path (session loading, CSRF,
    validation, the agent's zones on the visit's day, the door lock, the insert).
(b) bare: a one-route Flask module written to a temporary directory: it parses the same
    JSON, inserts the same ``visits`` row with the raw driver (``INSERT … ON CONFLICT
    (client_id) DO NOTHING RETURNING id``, one transaction; SQLite ``BEGIN IMMEDIATE`` and
    the app's pragmas) and answers the same-shaped JSON. The agent comes in a header; the
    buildings' coordinates (for the GPS distance and colour, ``crm.visits.rules.check_gps``)
    are read once per worker. No session, no validation, no scope check.

``--clients`` threads, each with its own keep-alive ``http.client`` connection to each
server, send one single-visit sync after another (outcome not_home or refused, GPS near the
building, ``at`` = now); ``--retries`` of the requests resend an item the same client sent
before (it must come back ``duplicate`` with the first answer's id). ``--requests`` per side
are split over ``--rounds`` rounds, the sides interleaved (b, s, b, s, …), each round with a
fresh set of client ids. Printed per side: requests/s, latency p50/p95/p99/max, every HTTP
status and item status, CPU per request (workers, load generator, PostgreSQL backends) and
the server's own time per request (gunicorn ``pre_request`` → ``post_request``); then the
ratio s/b and the verdicts (target: ratio >= 0.5, p95 <= 50 ms, zero errors). Afterwards the
database is read: every client id sent is stored exactly once, none extra, every row as sent
(agent, supervisor, building, flat, outcome, at, GPS, the canonical request) with the GPS
columns ``check_gps`` gives, and every answer's id is the stored row's. Exits 1 if a check
fails or a request errs.

``--profile`` then runs the same kind of requests in-process through the Flask test client
on the same database: the SQL statements of one sync request, the time of its stages over
many requests, a cProfile run, and the bare module's time per request for comparison.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import http.client
import json
import math
import os
import pstats
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import _territories as tt  # noqa: E402

TARGET_RATIO = 0.5
TARGET_P95_MS = 50.0
SECRET = "bench-sync-secret"
PASSWORD = "bench"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')
REQUEST_KEYS = ("building_id", "flat", "outcome", "at", "gps", "note", "callback_at", "competitor", "phone")
ROW_COLUMNS = ("client_id", "agent_id", "supervisor_id", "building_id", "flat", "outcome", "at", "recorded_at",
               "lat", "lon", "accuracy", "distance_m", "gps_colour", "flagged", "flag_reason", "request", "id")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- set-up -----------------------------------------------------------------------------


def grid_shape(n: int) -> tuple[int, int]:
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    return rows, n // rows


def build_team(url: str, n_agents: int, per_zone: int, seed: int) -> list[dict]:
    """Migrate ``url``; a head, a supervisor, ``n_agents`` agents each walking one zone of one
    territory from today (the real clock: the servers run on it), ``per_zone`` buildings in
    each zone through the importer. Returns per agent: id, supervisor id, login, buildings."""
    import logging

    import shapely
    from flask_migrate import upgrade
    from sqlalchemy import select

    from crm.actors import CLI, set_actor
    from crm.clock import Clock
    from crm.extensions import db
    from crm.users import services as users
    from territories import importer, services
    from territories.importfile import BuildingRecord
    from territories.models import Building, ZoneAssignment

    rng = np.random.default_rng(seed)
    rows, cols = grid_shape(n_agents)
    polygons, _shared = tt.zone_grid(rows, cols, 1, rng)
    app = common.make_app(url, clock=Clock())
    with app.app_context():
        upgrade()
        logging.getLogger("alembic").setLevel(logging.WARNING)
        set_actor(CLI)
        head, _ = users.create_user(None, login="head", name="Ирина Соколова", role="sales_head",
                                    password=PASSWORD, must_change_password=False)
        sup, _ = users.create_user(None, login="sup1", name="Супервайзер 1", role="supervisor", manager=head,
                                   password=PASSWORD, must_change_password=False)
        agents = [users.create_user(None, login=f"agent{i}", name=f"Агент {i}", role="agent", manager=sup,
                                    password=PASSWORD, must_change_password=False)[0]
                  for i in range(1, n_agents + 1)]
        db.session.commit()
        territory = services.save_territory(None, name="Территория 1", geometry_json=tt.geojson(
            shapely.union_all(polygons)), supervisor=sup, region=head).polygon
        for i, (polygon, agent) in enumerate(zip(polygons, agents), 1):
            services.save_zone(None, name=f"Зона {i}", territory=territory, geometry_json=tt.geojson(polygon),
                               agent=agent)
        db.session.commit()

        pyrng = random.Random(seed)
        records, k = [], 0
        for polygon in polygons:
            inner = polygon.buffer(-0.002)  # ~200 m inside, so 6-decimal rounding never leaves the zone
            xmin, ymin, xmax, ymax = inner.bounds
            placed = 0
            while placed < per_zone:
                lon, lat = round(pyrng.uniform(xmin, xmax), 6), round(pyrng.uniform(ymin, ymax), 6)
                if not shapely.contains_xy(inner, lon, lat):
                    continue
                k += 1
                placed += 1
                floors = pyrng.choice([5, 9, 9, 10, 12, 16])
                entrances = pyrng.randint(1, 6)
                records.append(BuildingRecord(
                    index=k, label=f"#{k}", external_id=f"SY-{k:05d}", lat=lat, lon=lon, footprint=None,
                    fields={"address": f"Екатеринбург, {pyrng.choice(tt.STREETS)}, {k}",
                            "apartments": entrances * floors * pyrng.choice([3, 4, 4, 5]), "entrances": entrances,
                            "floors": floors, "connected_at": datetime(2024, 1, 1, tzinfo=timezone.utc)}))
        importer.import_buildings(records, [], source="bench")
        db.session.commit()
        walks = dict(db.session.execute(select(ZoneAssignment.agent_id, ZoneAssignment.zone_id)).all())
        team = []
        for agent in agents:
            buildings = db.session.execute(select(Building.id, Building.lat, Building.lon, Building.apartments)
                                           .where(Building.zone_id == walks[agent.id]).order_by(Building.id)).all()
            assert len(buildings) == per_zone, f"{agent.login}: {len(buildings)} buildings in the zone"
            team.append({"id": agent.id, "supervisor_id": agent.manager_id, "login": agent.login,
                         "buildings": [tuple(b) for b in buildings]})
    common.dispose(app)
    return team


HISTORY_PREFIX = "history-"
HISTORY_COLUMNS = tuple(c for c in ROW_COLUMNS if c != "id")


def seed_history(dbs, url: str, team: list[dict], days: int, per_day: int, seed: int) -> int:
    """The visits a team in production has behind it: ``days`` past days of ``per_day`` doors per
    agent (not_home / refused, so no door gets locked), inserted with the raw driver before
    ``settle``. Without them the planner meets an empty visits table, plans its lookups as scans
    and keeps those plans while the table grows under the run. Their client ids start with
    ``HISTORY_PREFIX``, and the checks leave them out."""
    from crm.visits.rules import check_gps

    rng = random.Random(seed)
    dt = common.sqlite_dt if dbs.dialect == "sqlite" else common.pg_dt
    now = datetime.now(timezone.utc)
    rows = []
    for agent in team:
        for day in range(days, 0, -1):
            for _ in range(per_day):
                building_id, lat, lon, apartments = rng.choice(agent["buildings"])
                at = now - timedelta(days=day, seconds=rng.uniform(0, 8 * 3600))
                item = {"building_id": building_id, "flat": rng.randint(1, apartments),
                        "outcome": "not_home" if rng.random() < 0.7 else "refused", "at": at.isoformat(),
                        "gps": {"lat": lat, "lon": lon, "accuracy": 10.0}}
                gps = check_gps(lat, lon, lat, lon, 10.0)
                request = canonical(item)
                rows.append((f"{HISTORY_PREFIX}{uuid.uuid4()}", agent["id"], agent["supervisor_id"], building_id,
                             item["flat"], item["outcome"], dt(at), dt(at), lat, lon, 10.0,
                             round(gps.distance_m, 1) if gps.distance_m is not None else None, gps.colour,
                             gps.flagged, gps.reason, request))
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        common.begin(dbs.dialect, cur)
        cur.executemany(common.insert_sql(dbs.dialect, "visits", HISTORY_COLUMNS), rows)
        common.commit(dbs.dialect, conn, cur)
    finally:
        conn.close()
    return len(rows)


def settle(dbs, url: str) -> None:
    """PostgreSQL: VACUUM ANALYZE after the set-up (autovacuum would soon); SQLite: a WAL checkpoint."""
    conn = dbs.raw_connect(url)
    try:
        if dbs.dialect == "sqlite":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
    finally:
        conn.close()


# --- the servers ------------------------------------------------------------------------

BARE_MODULE = '''\
"""The floor of POST /api/v1/sync: parse the same JSON, insert the same visits row with the raw
driver, answer the same-shaped JSON. Nothing else: no session, no CSRF, no validation, no scope."""
import json
import os
import sys
import threading
from datetime import datetime, timezone

from flask import Flask, jsonify, request

sys.path.insert(0, os.environ["BENCH_ROOT"])
from crm.visits.rules import check_gps  # noqa: E402  (pure: no Flask, no database)

URL = os.environ["DATABASE_URL"]
SQLITE = URL.startswith("sqlite:///")
MARK = "?" if SQLITE else "%s"
COLUMNS = ("client_id", "agent_id", "supervisor_id", "building_id", "flat", "outcome", "note", "at", "recorded_at",
           "lat", "lon", "accuracy", "distance_m", "gps_colour", "flagged", "flag_reason", "request")
INSERT = (f"INSERT INTO visits ({', '.join(COLUMNS)}) VALUES ({', '.join([MARK] * len(COLUMNS))}) "
          f"ON CONFLICT (client_id) DO NOTHING RETURNING id")
EXISTING = f"SELECT id FROM visits WHERE client_id = {MARK}"
KEYS = ("building_id", "flat", "outcome", "at", "gps", "note", "callback_at", "competitor", "phone")

app = Flask(__name__)
_local = threading.local()


def _connection():
    conn = getattr(_local, "conn", None)
    if conn is None:
        if SQLITE:
            import sqlite3

            conn = sqlite3.connect(URL[len("sqlite:///"):], isolation_level=None)
            for pragma in ("foreign_keys=ON", "recursive_triggers=ON", "busy_timeout=15000", "journal_mode=WAL",
                           "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
        else:
            import psycopg

            conn = psycopg.connect(URL, autocommit=False)
        # the buildings' coordinates, once per connection (the floor keeps them in memory)
        _local.buildings = {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, lat, lon FROM buildings")}
        if not SQLITE:
            conn.commit()
        _local.conn = conn
    return conn


def _dt(value):
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if SQLITE else value.replace(tzinfo=None)


@app.post("/api/v1/sync")
def sync():
    agent_id, _sep, supervisor_id = request.headers["X-Agent"].partition("/")
    items = request.get_json()["items"]
    conn = _connection()
    buildings = _local.buildings
    results = []
    if SQLITE:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for item in items:
            gps = item.get("gps") or {}
            lat, lon, accuracy = gps.get("lat"), gps.get("lon"), gps.get("accuracy")
            b_lat, b_lon = buildings[item["building_id"]]
            check = check_gps(b_lat, b_lon, lat, lon, accuracy)
            canonical = json.dumps({k: item.get(k) for k in KEYS}, sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False, default=str)
            now = datetime.now(timezone.utc)
            row = conn.execute(INSERT, (
                item["client_id"], int(agent_id), int(supervisor_id), item["building_id"], item["flat"],
                item["outcome"], item.get("note"), _dt(datetime.fromisoformat(item["at"])), _dt(now), lat, lon,
                accuracy, round(check.distance_m, 1) if check.distance_m is not None else None, check.colour,
                check.flagged, check.reason, canonical)).fetchone()
            status = "created"
            if row is None:
                row, status = conn.execute(EXISTING, (item["client_id"],)).fetchone(), "duplicate"
            results.append({"client_id": item["client_id"], "status": status, "id": row[0], "contract_number": None,
                            "error": None})
        if SQLITE:
            conn.execute("COMMIT")
        else:
            conn.commit()
    except BaseException:
        if SQLITE:
            conn.execute("ROLLBACK")
        else:
            conn.rollback()
        raise
    return jsonify(results=results)
'''

GUNICORN_CONF = '''\
"""Per sync request, in the worker: its time (pre_request -> post_request) and, for the app (not the
bare module), its SQL through SQLAlchemy's events: statements, driver time, the time BEGIN [IMMEDIATE]
took (SQLite: waiting for the write lock, through crm.database.begin_immediate), COMMIT and the ping of an
idle pooled connection. Written at worker exit."""
import json
import os
import threading
import time

_times = []
_local = threading.local()


def _counters():
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = {"n": 0, "sql": 0.0, "begin": 0.0, "commit": 0.0, "ping": 0.0, "held": 0.0}
    return c


def post_worker_init(worker):
    app = worker.wsgi
    if "sqlalchemy" not in getattr(app, "extensions", {}):
        return  # the bare module: nothing attached
    from sqlalchemy import event

    from crm.extensions import db

    with app.app_context():
        engine = db.engine

    def before(conn, cursor, statement, params, context, executemany):
        conn.info["bench_t"] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        seconds = time.perf_counter() - conn.info.pop("bench_t")
        c = _counters()
        c["n"] += 1
        c["sql"] += seconds
        if statement.startswith("BEGIN"):
            c["begin"] += seconds
            c["locked_at"] = time.perf_counter()  # SQLite: the write lock is ours from here to COMMIT

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    dialect = engine.dialect

    import crm.database as database  # SQLite: BEGIN IMMEDIATE goes to the driver directly, wait included

    begin_immediate = database.begin_immediate

    def timed_begin(driver_connection):
        t = time.perf_counter()
        try:
            begin_immediate(driver_connection)
        finally:
            c, seconds = _counters(), time.perf_counter() - t
            c["n"] += 1  # counted as the one statement it is (its two busy_timeout pragmas are not)
            c["sql"] += seconds
            c["begin"] += seconds
        c["locked_at"] = time.perf_counter()  # only once the lock is held

    database.begin_immediate = timed_begin

    def timed(key, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                _counters()[key] += time.perf_counter() - t
        return wrapper

    do_commit = timed("commit", dialect.do_commit)

    def commit(*a, **kw):
        try:
            return do_commit(*a, **kw)
        finally:
            c = _counters()
            if "locked_at" in c:
                c["held"] += time.perf_counter() - c.pop("locked_at")

    dialect.do_commit = commit
    dialect.do_ping = timed("ping", dialect.do_ping)


def pre_request(worker, req):
    req._bench_t = time.perf_counter()
    _local.c = None


def post_request(worker, req, environ, resp):
    t = getattr(req, "_bench_t", None)
    if t is not None and req.method == "POST" and req.path == "/api/v1/sync":
        c = _counters()
        _times.append((time.time(), time.perf_counter() - t, c["n"], c["sql"], c["begin"], c["commit"], c["ping"],
                       c["held"]))


def worker_exit(server, worker):
    with open(os.path.join(os.environ["BENCH_OUT"], f"{os.getpid()}.json"), "w") as fh:
        json.dump(_times, fh)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn (master + workers) started and stopped by this script, by its pid."""

    def __init__(self, label: str, app_spec: str, chdir: str, url: str, tmp: str, args, extra_env: dict):
        self.label, self.port = label, free_port()
        self.out = os.path.join(tmp, f"times_{label}")
        os.makedirs(self.out, exist_ok=True)
        self.log_path = os.path.join(tmp, f"gunicorn_{label}.log")
        conf = os.path.join(tmp, "gunicorn_conf.py")
        if not os.path.exists(conf):
            with open(conf, "w") as fh:
                fh.write(GUNICORN_CONF)
        cmd = [os.path.join(common.ROOT, ".venv", "bin", "gunicorn"), "-c", conf, "--chdir", chdir,
               "-w", str(args.workers), "-k", args.worker_class, "-b", f"127.0.0.1:{self.port}",
               "--log-level", "warning"]
        if args.worker_class == "gthread":
            cmd += ["--threads", str(args.threads)]
        cmd.append(app_spec)
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET, "BENCH_OUT": self.out,
               "BENCH_ROOT": common.ROOT, **extra_env}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.workers: list[int] = []

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn ({self.label}) exited: see {self.log_path}:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"gunicorn ({self.label}) did not answer in {timeout:.0f} s:\n{self.tail()}")
        self.workers = children(self.proc.pid)

    def tail(self) -> str:
        self.log.flush()
        with open(self.log_path) as fh:
            return "".join(fh.readlines()[-30:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def server_times(self) -> list[tuple]:
        """(wall clock at the end, seconds, statements, SQL, BEGIN, COMMIT, pre-ping, write lock held
        seconds) of every sync request the workers served."""
        out = []
        for name in os.listdir(self.out):
            with open(os.path.join(self.out, name)) as fh:
                out.extend(tuple(x) for x in json.load(fh))
        return out


# --- CPU accounting (/proc) -------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(ppid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat(int(name))
            if fields and int(fields[1]) == ppid:
                out.append(int(name))
    return out


def postgres_pids() -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    if fh.read().strip() == "postgres":
                        out.append(int(name))
            except OSError:
                pass
    return out


def cpu_seconds(pids) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- the load -----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection with the session cookie. A sync worker closes it after
    every response and the next request opens a new one; a gthread worker closes it when it has
    been idle for gunicorn's keep-alive (2 s, e.g. between rounds): a request that fails on such a
    reused connection before any answer is sent once more on a new one, as browsers and proxies do
    (counted in ``reopened``; the client id is the same, so a resend cannot store twice)."""

    reopened = 0  # across all connections
    _lock = threading.Lock()

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie: str | None = None
        self.attempts = 0

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.attempts = 0
        for attempt in (1, 2):
            self.attempts = attempt
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if not reused or attempt == 2:
                    raise
                with Connection._lock:
                    Connection.reopened += 1
            except (OSError, http.client.HTTPException):
                self.conn.close()
                raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return response.status, data, response

    def close(self) -> None:
        self.conn.close()


def sign_in(conn: Connection, login: str) -> str:
    """GET /login, POST /login, GET /home; returns the page's CSRF token for X-CSRFToken."""
    from urllib.parse import urlencode

    status, html, _r = conn.request("GET", "/login")
    match = TOKEN_RE.search(html.decode())
    assert status == 200 and match, f"GET /login: {status}"
    status, _body, _r = conn.request("POST", "/login", urlencode(
        {"login": login, "password": PASSWORD, "csrf_token": match.group(1) or match.group(2)}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302, f"POST /login as {login}: {status}"
    status, html, _r = conn.request("GET", "/home")
    match = TOKEN_RE.search(html.decode())
    assert status == 200 and match, f"GET /home as {login}: {status}"
    return match.group(1) or match.group(2)


def canonical(item: dict) -> str:
    """What crm.visits.services stores as ``request`` for a visit item."""
    return json.dumps({k: item.get(k) for k in REQUEST_KEYS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)


@dataclass
class Sent:
    side: str
    phase: str  # "warmup" or "round N"
    client: int
    client_id: str
    item: dict
    body: bytes
    retry: bool
    seconds: float = 0.0
    http: int | str = 0
    status: str = ""
    id: int | None = None
    error: str | None = None
    ended: float = 0.0  # time.time() at the answer
    resent: bool = False  # sent again on a new connection after a stale keep-alive one failed

    def ok(self) -> bool:
        """Answered 200 with the status it must have: created, or duplicate for a retry (or for a
        resend whose first attempt may have reached the server)."""
        expected = ("duplicate",) if self.retry else ("created", "duplicate") if self.resent else ("created",)
        return self.http == 200 and not self.error and self.status in expected


@dataclass
class Agent:
    index: int
    info: dict
    rng: random.Random
    conns: dict = field(default_factory=dict)
    token: str | None = None
    history: dict = field(default_factory=lambda: defaultdict(list))  # side -> [Sent] answered "created"

    def new_item(self) -> dict:
        building_id, lat, lon, apartments = self.rng.choice(self.info["buildings"])
        metres = self.rng.uniform(5, 120)
        bearing = self.rng.uniform(0, 2 * math.pi)
        dlat = metres * math.cos(bearing) / tt.M_PER_DEG_LAT
        dlon = metres * math.sin(bearing) / (tt.M_PER_DEG_LAT * math.cos(math.radians(lat)))
        return {"type": "visit", "client_id": str(uuid.uuid4()), "building_id": building_id,
                "flat": self.rng.randint(1, apartments),
                "outcome": "not_home" if self.rng.random() < 0.7 else "refused",
                "at": datetime.now(timezone.utc).isoformat(),
                "gps": {"lat": round(lat + dlat, 6), "lon": round(lon + dlon, 6),
                        "accuracy": round(self.rng.uniform(5, 40), 1)}}

    def headers(self, side: str) -> dict:
        if side == "sync":
            return {"Content-Type": "application/json", "X-CSRFToken": self.token}
        return {"Content-Type": "application/json", "X-Agent": f"{self.info['id']}/{self.info['supervisor_id']}"}

    def send(self, side: str, phase: str, retry: bool) -> Sent:
        if retry and self.history[side]:
            first = self.rng.choice(self.history[side])
            sent = Sent(side, phase, self.index, first.client_id, first.item, first.body, True)
        else:
            item = self.new_item()
            sent = Sent(side, phase, self.index, item["client_id"], item,
                        json.dumps({"items": [item]}).encode(), False)
        conn = self.conns[side]
        t = time.perf_counter()
        try:
            status, data, _r = conn.request("POST", "/api/v1/sync", sent.body, self.headers(side))
        except (OSError, http.client.HTTPException) as exc:
            sent.seconds, sent.http, sent.error = time.perf_counter() - t, type(exc).__name__, str(exc)
            sent.ended = time.time()
            return sent
        sent.seconds, sent.http, sent.ended = time.perf_counter() - t, status, time.time()
        sent.resent = conn.attempts > 1
        try:
            answer = json.loads(data)["results"][0] if status == 200 else None
        except (ValueError, KeyError, IndexError):
            answer = None
        if answer is None:
            sent.error = data[:200].decode(errors="replace")
        else:
            sent.status, sent.id = answer["status"], answer["id"]
            if answer.get("error"):
                sent.error = json.dumps(answer["error"], ensure_ascii=False)
        if not retry and sent.status in ("created", "duplicate") and sent.http == 200:
            self.history[side].append(sent)
        return sent


def play(agents: list[Agent], side: str, phase: str, plan: dict[int, list[bool]]) -> tuple[list[Sent], float]:
    """Every agent sends its planned requests (True = a retry) at once; returns them and the wall time."""
    results: list[list[Sent]] = [[] for _ in agents]
    started = {}
    barrier = threading.Barrier(len(agents), action=lambda: started.setdefault("t", time.perf_counter()))

    def run(agent: Agent):
        barrier.wait()
        for retry in plan[agent.index]:
            results[agent.index].append(agent.send(side, phase, retry))

    threads = [threading.Thread(target=run, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started["t"]
    return [s for per in results for s in per], wall


def make_plans(n_agents: int, total: int, rounds: int, share: float, rng: random.Random) -> list[dict[int, list[bool]]]:
    """Per round, per agent, the list of its requests (True = a retry of one it sent before)."""
    per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
    plans = []
    for count in per_round:
        quota = {a: count // n_agents + (1 if a < count % n_agents else 0) for a in range(n_agents)}
        plan = {a: [False] * quota[a] for a in range(n_agents)}
        # never a retry as an agent's very first request of the round (there may be nothing to retry yet
        # in the first round; a warm-up request has always been sent before, though)
        slots = [(a, i) for a in range(n_agents) for i in range(1, quota[a])]
        for a, i in rng.sample(slots, min(len(slots), round(count * share))):
            plan[a][i] = True
        plans.append(plan)
    return plans


# --- checks ------------------------------------------------------------------------------


def stored_rows(dbs, url: str) -> list[tuple]:
    conn = dbs.raw_connect(url)
    try:
        return list(conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM visits "
                                 f"WHERE client_id NOT LIKE '{HISTORY_PREFIX}%' ORDER BY id").fetchall())
    finally:
        conn.close()


def check_rows(rows: list[tuple], sent: list[Sent], team: list[dict]) -> list[str]:
    """Every client id sent exactly once, none extra, every row as sent; returns the problems."""
    from crm.visits.rules import check_gps

    problems = []
    by_id = Counter(r[0] for r in rows)
    row_of = {r[0]: dict(zip(ROW_COLUMNS, r)) for r in rows}
    expected = {s.client_id: s for s in sent if not s.retry}
    buildings = {b[0]: (b[1], b[2]) for a in team for b in a["buildings"]}
    agents = {a["id"]: a for a in team}
    lost = [c for c in expected if c not in by_id]
    doubled = [c for c, n in by_id.items() if n > 1]
    extra = [c for c in by_id if c not in expected]
    if lost:
        problems.append(f"{len(lost)} client ids sent but not stored (e.g. {lost[:3]})")
    if doubled:
        problems.append(f"{len(doubled)} client ids stored more than once (e.g. {doubled[:3]})")
    if extra:
        problems.append(f"{len(extra)} rows with a client id nobody sent (e.g. {extra[:3]})")
    wrong, wrong_ids = [], []
    for s in sent:
        row = row_of.get(s.client_id)
        if row is None:
            continue
        if s.id is not None and s.id != row["id"]:
            wrong_ids.append(s.client_id)
        if s.retry:
            continue
        item = s.item
        agent = agents.get(row["agent_id"])
        at = row["at"] if isinstance(row["at"], datetime) else datetime.fromisoformat(row["at"])
        gps = check_gps(*buildings[item["building_id"]], item["gps"]["lat"], item["gps"]["lon"],
                        item["gps"]["accuracy"])
        expected_row = {"agent_id": team[s.client]["id"], "supervisor_id": team[s.client]["supervisor_id"],
                        "building_id": item["building_id"], "flat": item["flat"], "outcome": item["outcome"],
                        "lat": item["gps"]["lat"], "lon": item["gps"]["lon"], "accuracy": item["gps"]["accuracy"],
                        "distance_m": round(gps.distance_m, 1), "gps_colour": gps.colour,
                        "flagged": bool(gps.flagged), "flag_reason": gps.reason, "request": canonical(item)}
        got = {k: (bool(row[k]) if k == "flagged" else row[k]) for k in expected_row}
        if agent is None or got != expected_row or at.replace(tzinfo=timezone.utc) != \
                datetime.fromisoformat(item["at"]):
            wrong.append((s.side, s.client_id, {k: (got[k], v) for k, v in expected_row.items() if got[k] != v}))
    if wrong:
        problems.append(f"{len(wrong)} rows differ from what was sent (e.g. {wrong[:2]})")
    if wrong_ids:
        problems.append(f"{len(wrong_ids)} answers name another row's id (e.g. {wrong_ids[:3]})")
    return problems


# --- printing -------------------------------------------------------------------------------


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


@dataclass
class SideFigures:
    label: str
    sent: list = field(default_factory=list)
    wall: float = 0.0
    cpu_workers: float = 0.0
    cpu_client: float = 0.0
    cpu_postgres: float = 0.0
    busy: float = 0.0
    capacity: float = 0.0
    rounds: list = field(default_factory=list)  # (requests, wall, p95)
    windows: list = field(default_factory=list)  # (start, end) wall clock

    def errors(self) -> list[Sent]:
        return [s for s in self.sent if not s.ok()]


def report(side: SideFigures, server_times: list[tuple]) -> dict:
    ms = np.array([s.seconds * 1000 for s in side.sent])
    n = len(side.sent)
    rps = n / side.wall if side.wall else float("nan")
    https = Counter(str(s.http) for s in side.sent)
    items = Counter((("retry " if s.retry else "new ") + "→ " + (s.status or "no answer")) for s in side.sent)
    timed = np.array([row[1:] for row in server_times if any(a <= row[0] <= b + 0.5 for a, b in side.windows)]) \
        * [1000, 1, 1000, 1000, 1000, 1000, 1000]
    print(f"({side.label[0]}) {side.label:<5} {n:,} requests in {side.wall:.2f} s = {rps:,.0f} requests/s; "
          f"latency p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
          f"max {ms.max():.1f} ms")
    print("      rounds: " + "; ".join(f"{k:,} in {w:.2f} s = {k / w:,.0f}/s, p95 {p:.0f} ms, others {o:.0%}"
                                       for k, w, p, o in side.rounds) + " (others: the machine's CPU that "
          "went to neither the workers, the load generator nor PostgreSQL)")
    print(f"      HTTP: {', '.join(f'{code} × {count:,}' for code, count in sorted(https.items()))}; "
          f"items: {', '.join(f'{k} × {v:,}' for k, v in sorted(items.items()))}")
    if len(timed):
        t = timed[:, 0]
        print(f"      in the worker (gunicorn pre→post_request, {len(t):,} requests): p50 {pct(t, 50):.1f} ms, "
              f"p95 {pct(t, 95):.1f} ms, mean {t.mean():.1f} ms" + (
                  f"; SQL {timed[:, 1].mean():.1f} statements, driver time {timed[:, 2].mean():.2f} ms "
                  f"(of it BEGIN {timed[:, 3].mean():.2f} ms, p95 {pct(timed[:, 3], 95):.1f} ms), "
                  f"COMMIT {timed[:, 4].mean():.2f} ms, pool pre-ping {timed[:, 5].mean():.2f} ms"
                  if timed[:, 1].any() else ""))
        if timed[:, 6].any():
            held = timed[:, 6]
            print(f"      SQLite write lock held per request (BEGIN IMMEDIATE → COMMIT): mean {held.mean():.1f} ms, "
                  f"p95 {pct(held, 95):.1f} ms; × {rps:,.0f} requests/s = held {held.mean() / 1000 * rps:.0%} "
                  f"of the time (one writer at a time: at most {1000 / held.mean():,.0f} requests/s)")
    pg = f", PostgreSQL backends {side.cpu_postgres / n * 1000:.2f} ms" if side.cpu_postgres else ""
    other = side.busy / CLK_TCK - side.cpu_workers - side.cpu_client - side.cpu_postgres
    print(f"      CPU per request: workers {side.cpu_workers / n * 1000:.2f} ms, load generator "
          f"{side.cpu_client / n * 1000:.2f} ms{pg}, anything else on the machine {max(0, other) / n * 1000:.2f} ms; "
          f"machine busy {side.busy / side.capacity * 100:.0f} %")
    return {"rps": rps, "p50": pct(ms, 50), "p95": pct(ms, 95), "errors": len(side.errors())}


# --- profiling -----------------------------------------------------------------------------


def profile(url: str, team: list[dict], tmp: str, n: int) -> None:
    """The sync path in-process (Flask test client, same database, the app as gunicorn creates it)."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session

    import app as app_module
    from crm.extensions import csrf, db, login_manager
    from crm.visits import services

    os.environ["SECRET_KEY"] = SECRET
    flask_app = app_module.create_app({"SQLALCHEMY_DATABASE_URI": url})
    client = flask_app.test_client()
    html = client.get("/login").get_data(as_text=True)
    m = TOKEN_RE.search(html)
    agent_info = team[0]
    assert client.post("/login", data={"login": agent_info["login"], "password": PASSWORD,
                                       "csrf_token": m.group(1) or m.group(2)}).status_code == 302
    m = TOKEN_RE.search(client.get("/home").get_data(as_text=True))
    headers = {"X-CSRFToken": m.group(1) or m.group(2)}
    agent = Agent(0, agent_info, random.Random(7))

    def one():
        item = agent.new_item()
        response = client.post("/api/v1/sync", json={"items": [item]}, headers=headers)
        assert response.status_code == 200 and response.get_json()["results"][0]["status"] == "created", \
            response.get_data(as_text=True)[:300]

    for _ in range(30):
        one()

    # 1. the statements of one request
    statements: list[tuple[str, float]] = []
    checkouts = [0]
    with flask_app.app_context():
        engine = db.engine

    def before(conn, cursor, statement, params, context, executemany):
        conn.info["bench_t"] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        statements.append((" ".join(statement.split()), time.perf_counter() - conn.info.pop("bench_t"),
                           _in_transaction(conn.connection.driver_connection)))

    def on_checkout(*_a):
        checkouts[0] += 1

    sa_event.listen(engine, "before_cursor_execute", before)
    sa_event.listen(engine, "after_cursor_execute", after)
    sa_event.listen(engine.pool, "checkout", on_checkout)
    begins, commits = [], []

    def on_begin(conn):
        begins.append(1)

    def on_commit(conn):
        commits.append(1)

    sa_event.listen(engine, "begin", on_begin)
    sa_event.listen(engine, "commit", on_commit)
    one()
    sa_event.remove(engine, "begin", on_begin)
    sa_event.remove(engine, "commit", on_commit)
    sa_event.remove(engine.pool, "checkout", on_checkout)
    print(f"one sync request in-process: {len(statements)} SQL statements through SQLAlchemy, "
          f"{len(begins)} transaction(s) begun, {len(commits)} commit(s), {checkouts[0]} pool checkout(s)"
          + " (PostgreSQL pings a connection only after it sat idle in the pool, not counted above)" + ":")
    for sql, seconds, in_transaction in statements:
        where = "in a transaction" if in_transaction else "autocommit"
        print(f"    {seconds * 1000:6.2f} ms  {where:<16}  {textwrap.shorten(sql, 130, placeholder=' …')}")

    # 2. stages over n requests (no profiler): wrap the pieces with timers
    spent: dict[str, float] = defaultdict(float)
    calls: Counter = Counter()

    def timed(label, fn):
        @functools.wraps(fn)  # the view's own attributes too (reads_first: the hook looks for it)
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] += time.perf_counter() - t
                calls[label] += 1
        return wrapper

    view = flask_app.view_functions["api.sync"]
    patches = [
        (login_manager, "_user_callback", "session → user (load_user: SELECT users)"),
        (csrf, "protect", "CSRF: csrf.protect (2nd call: the global hook, exempt)"),
        (flask_app.session_interface, "open_session", "open the session cookie"),
        (flask_app.session_interface, "save_session", "save the session cookie (Set-Cookie)"),
        (services, "record_visit", "record_visit as a whole"),
        (services, "_business_time", "  _business_time (parse + grace)"),
        (services, "_insert", "  _insert (check_gps + INSERT … ON CONFLICT DO NOTHING)"),
        (Session, "begin_nested", "Session.begin_nested (SAVEPOINT: contract items only)"),
        (Session, "commit", "Session.commit (COMMIT)"),
    ]
    saved = []
    for obj, name, label in patches:
        saved.append((obj, name, vars(obj).get(name), name in vars(obj)))
        setattr(obj, name, timed(label, getattr(obj, name)))
    flask_app.view_functions["api.sync"] = timed("the view (sync) as a whole", view)
    statements.clear()
    checkouts[0] = 0
    wall = 0.0
    for _ in range(n):
        t = time.perf_counter()
        one()
        wall += time.perf_counter() - t
    sql_count, sql_time = len(statements), sum(s for _q, s, _t in statements)
    sa_event.remove(engine, "before_cursor_execute", before)
    sa_event.remove(engine, "after_cursor_execute", after)
    for obj, name, original, had in saved:
        if had:
            setattr(obj, name, original)
        else:
            delattr(obj, name)
    flask_app.view_functions["api.sync"] = view
    print(f"stages over {n} requests through the test client (no profiler), ms per request:")
    print(f"    {'the whole request (test client included)':<62} {wall / n * 1000:7.2f}")
    for label in ["the view (sync) as a whole"] + [label for _o, _n, label in patches]:
        if calls[label]:
            print(f"    {label:<62} {spent[label] / n * 1000:7.2f}   ({calls[label] / n:.0f}× a request)")
    print(f"    {'SQL (driver execute) in all':<62} {sql_time / n * 1000:7.2f}   "
          f"({sql_count / n:.1f} statements a request)")
    kinds = Counter(s.split()[0].upper() for s, _s, _t in statements)
    print("    statements by kind per request: " + ", ".join(f"{k} {v / n:.1f}" for k, v in kinds.most_common()))

    # 3. cProfile
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        one()
    profiler.disable()
    stats = pstats.Stats(profiler)
    if os.environ.get("BENCH_PROFILE_OUT"):
        stats.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    total = sum(v[2] for v in stats.stats.values())
    print(f"cProfile of {n} sync requests ({total / n * 1000:.2f} ms own time per request, profiler overhead "
          f"included); top 20 by own time:")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]
    for (filename, line, func), (_cc, nc, own, cum, _callers) in rows:
        print(f"    {own / n * 1000:6.3f} ms own {cum / n * 1000:6.3f} ms cum {nc / n:6.1f}×  {short(filename)}:{line}({func})")
    print("  by package (own time per request):")
    groups: Counter = Counter()
    for (filename, _line, _func), (_cc, _nc, own, _cum, _callers) in stats.stats.items():
        groups[package(filename)] += own
    for name, own in groups.most_common(14):
        print(f"    {own / n * 1000:6.3f} ms  {own / total * 100:4.1f} %  {name}")
    print("  the project's functions, top 14 by cumulative time per request:")
    shown = 0
    for (filename, line, func), (_cc, nc, own, cum, _callers) in sorted(stats.stats.items(),
                                                                         key=lambda kv: kv[1][3], reverse=True):
        s = short(filename)
        if s.startswith(("crm/", "territories/", "app.py")) and shown < 14:
            print(f"    {cum / n * 1000:6.3f} ms cum {own / n * 1000:6.3f} ms own {nc / n:5.1f}×  {s}:{line}({func})")
            shown += 1

    # 4. the bare module in-process, for comparison
    sys.path.insert(0, tmp)
    os.environ["DATABASE_URL"] = url
    os.environ["BENCH_ROOT"] = common.ROOT
    import bare  # noqa: E402  (the module written to tmp)

    bare_client = bare.app.test_client()
    bare_headers = {"X-Agent": f"{agent_info['id']}/{agent_info['supervisor_id']}"}

    def one_bare():
        item = agent.new_item()
        response = bare_client.post("/api/v1/sync", json={"items": [item]}, headers=bare_headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]

    for _ in range(30):
        one_bare()
    t = time.perf_counter()
    for _ in range(n):
        one_bare()
    bare_ms = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    for _ in range(n):
        one()
    sync_ms = (time.perf_counter() - t) / n * 1000
    print(f"in-process through the test client, {n} requests each, no profiler: sync {sync_ms:.2f} ms, "
          f"bare {bare_ms:.2f} ms per request (ratio of rates {bare_ms / sync_ms:.2f})")
    common.dispose(flask_app)


def _in_transaction(driver) -> bool:
    """Whether the driver connection is inside a transaction after a statement (sqlite3 or psycopg)."""
    if hasattr(driver, "in_transaction"):
        return driver.in_transaction
    return driver.info.transaction_status != 0  # psycopg.pq.TransactionStatus.IDLE


def short(filename: str) -> str:
    s = filename.replace(common.ROOT + "/", "")
    return s.split("site-packages/", 1)[1] if "site-packages/" in s else s


def package(filename: str) -> str:
    s = short(filename)
    if s.startswith(("~", "<")):
        return "built-ins (C)"
    if s.startswith(("crm/", "territories/", "app.py")):
        return "the project (" + s.split("/")[0] + ")"
    if "/lib/python" in s:
        return "stdlib " + s.split("/lib/python", 1)[1].split("/", 2)[1].replace(".py", "")
    return s.split("/")[0].replace(".py", "")


# --- main -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="sqlite:///FILE or postgresql://…/NAME (new or empty)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per side")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients = agents")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side, interleaved b, s, b, s, …")
    parser.add_argument("--retries", type=float, default=0.02, help="share of requests that resend an item")
    parser.add_argument("--warmup", type=int, default=2, help="requests per client and side before timing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--buildings-per-zone", type=int, default=5)
    parser.add_argument("--history-days", type=int, default=20, help="past days of visits in the table before the run")
    parser.add_argument("--history-per-day", type=int, default=40, help="past visits per agent and day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="the sync path in-process: SQL, stages, cProfile")
    parser.add_argument("--profile-requests", type=int, default=300)
    args = parser.parse_args(argv)
    dialect = tt.dialect_of(args.database_url, args.db)

    with tt.url_databases(dialect, "sync") as dbs:
        t = time.perf_counter()
        url = dbs.base(args.database_url)
        team = build_team(url, args.clients, args.buildings_per_zone, args.seed)
        history = seed_history(dbs, url, team, args.history_days, args.history_per_day, args.seed)
        settle(dbs, url)
        setup = time.perf_counter() - t
        tmp = dbs.tmp
        with open(os.path.join(tmp, "bare.py"), "w") as fh:
            fh.write(BARE_MODULE)
        flats = sum(b[3] for a in team for b in a["buildings"])
        print(f"sync on {dialect}: {args.clients} agents (one supervisor), a zone each with "
              f"{args.buildings_per_zone} buildings ({flats:,} flats in all), {history:,} past visits "
              f"({args.history_days} days); gunicorn {args.workers} "
              f"{args.worker_class} workers" + (f" × {args.threads} threads" if args.worker_class == "gthread" else "")
              + f" per server; {args.clients} clients, {args.requests:,} requests per side in {args.rounds} "
              f"rounds, {args.retries:.0%} retries; set-up {setup:.1f} s, not measured; code {common.revision()}; "
              f"{common.load()}")

        servers = {}
        try:
            servers["bare"] = Server("bare", "bare:app", tmp, url, tmp, args, {})
            servers["sync"] = Server("sync", "app:create_app()", common.ROOT, url, tmp, args, {})
            servers["bare"].wait_ready("/")
            servers["sync"].wait_ready("/login")
            rng = random.Random(args.seed)
            agents = [Agent(i, info, random.Random(args.seed * 1000 + i)) for i, info in enumerate(team)]
            t = time.perf_counter()
            for agent in agents:
                agent.conns = {side: Connection(server.port) for side, server in servers.items()}
            logins = []

            def login(agent):
                t0 = time.perf_counter()
                agent.token = sign_in(agent.conns["sync"], agent.info["login"])
                logins.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=login, args=(a,)) for a in agents]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert len(logins) == len(agents), "a sign-in failed (see above)"
            print(f"sign-in of {len(agents)} agents at once (GET /login, POST /login, GET /home): "
                  f"{time.perf_counter() - t:.2f} s, {max(logins) * 1000:.0f} ms the slowest; not measured")

            all_sent: list[Sent] = []
            warm = {a.index: [False] * args.warmup for a in agents}
            for side in ("bare", "sync"):
                sent, _wall = play(agents, side, "warmup", warm)
                all_sent.extend(sent)
            figures = {side: SideFigures(side) for side in ("bare", "sync")}
            plans = make_plans(len(agents), args.requests, args.rounds, args.retries, rng)
            me = os.getpid()
            for r, plan in enumerate(plans, 1):
                for side in ("bare", "sync"):
                    fig = figures[side]
                    workers = children(servers[side].proc.pid)
                    pg = postgres_pids() if dialect == "postgresql" else []
                    c0, w0, p0, m0 = cpu_seconds([me]), cpu_seconds(workers), cpu_seconds(pg), machine_busy()
                    start = time.time()
                    sent, wall = play(agents, side, f"round {r}", plan)
                    c1, w1, p1, m1 = cpu_seconds([me]), cpu_seconds(workers), cpu_seconds(pg), machine_busy()
                    fig.windows.append((start, time.time()))
                    fig.sent.extend(sent)
                    fig.wall += wall
                    fig.cpu_client += c1 - c0
                    fig.cpu_workers += w1 - w0
                    fig.cpu_postgres += p1 - p0
                    fig.busy += m1[0] - m0[0]
                    fig.capacity += m1[1] - m0[1]
                    others = (m1[0] - m0[0]) / CLK_TCK - (c1 - c0) - (w1 - w0) - (p1 - p0)
                    fig.rounds.append((len(sent), wall, pct([s.seconds * 1000 for s in sent], 95),
                                       max(0.0, others) / ((m1[1] - m0[1]) / CLK_TCK)))
                    all_sent.extend(sent)
            for agent in agents:
                for conn in agent.conns.values():
                    conn.close()
        finally:
            for server in servers.values():
                server.stop()

        times = {side: server.server_times() for side, server in servers.items()}
        results = {side: report(figures[side], times[side]) for side in ("bare", "sync")}
        ratio = results["sync"]["rps"] / results["bare"]["rps"]
        p95 = results["sync"]["p95"]
        errors = [s for s in all_sent if not s.ok()]
        print(f"ratio s/b {ratio:.2f} (target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'MISSED'}); "
              f"sync p95 {p95:.1f} ms (target <= {TARGET_P95_MS:.0f} ms: "
              f"{'met' if p95 <= TARGET_P95_MS else 'MISSED'}); bare p95 {results['bare']['p95']:.1f} ms; "
              f"errors {len(errors)} of {len(all_sent):,} requests, warm-up included "
              f"(target 0: {'met' if not errors else 'MISSED'})")
        for s in errors[:5]:
            print(f"    error: {s.side} {s.phase} client {s.client} {s.client_id} HTTP {s.http} "
                  f"status {s.status!r}: {s.error}")

        rows = stored_rows(dbs, url)
        problems = check_rows(rows, all_sent, team)
        new = {s.client_id for s in all_sent if not s.retry}
        retries = sum(1 for s in all_sent if s.retry)
        per_side = Counter(s.side for s in all_sent if not s.retry)
        if Connection.reopened:
            print(f"stale keep-alive connections (closed by the server while idle) reopened and the request sent "
                  f"again: {Connection.reopened}")
        print(f"check: {len(new):,} client ids sent (bare {per_side['bare']:,}, sync {per_side['sync']:,}, warm-up "
              f"included) plus {retries} retries; {len(rows):,} rows in visits: "
              + ("every id exactly once, none extra, every row as sent, every answer's id the stored one: ok"
                 if not problems else "WRONG: " + "; ".join(problems)))

        if args.profile:
            profile(url, team, tmp, args.profile_requests)
        print(f"at the end: {common.load()}")
    return 0 if not problems and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

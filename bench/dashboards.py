"""The dashboards at the regional scale: server time of each dashboard page on a year of work.

    .venv/bin/python bench/dashboards.py [--db sqlite|postgresql] [--visits 5000000]
        [--contracts 200000] [--buildings 50000] [--repeat 5] [--seed 1]

Set-up (not measured): the zoned city of ``_territories.py`` through the services — one
sales head, 10 supervisors with 20 agents each, 500 zones in 20 territories, every zone
walked by one of its supervisor's agents — then ``--buildings`` buildings imported through
``territories.importer`` (so zone and territory are the app's own), 40 flats a building on
average; the catalogue of ``_common.py`` and one rate version through the services; then
with the raw driver (``executemany`` on SQLite, ``COPY`` on PostgreSQL): ``--contracts``
contracts and ``--visits`` visits over the twelve months of 2026 (company time), plans for
every supervisor and agent for every month; then ``ANALYZE`` (PostgreSQL ``VACUUM ANALYZE``).

Timed with the Flask test client (clock fixed at 2027-01-10), each page signed in as the
user who reads it (``POST /login`` with the CSRF token), for the busiest month: the sales
head's ``/dashboard``, the busiest supervisor's ``/dashboard/team`` and the same page with
``&agent=`` (the team's busiest agent), that agent's ``/dashboard/me`` and the head's
``/dashboard/records?figure=contracts``. One warm-up each, then ``--repeat`` interleaved
rounds; best and median. Target: each page ≤ 1 s on PostgreSQL, ≤ 2 s on SQLite. A page
that misses it gets every function of ``crm.dashboards.figures`` timed for its scope and
the EXPLAIN of the slowest statement (``--diagnose``: every page). Exit 1 if a page answers
anything but 200.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import _territories as tt  # noqa: E402
import city_map  # noqa: E402  (sign_in)

TARGET_MS = {"postgresql": 1000.0, "sqlite": 2000.0}
ROWS, COLS, BLOCK = 20, 25, 5          # 500 zones, 20 territories of 5 × 5, 10 supervisors
AGENTS_PER_SUPERVISOR = 20             # 200 agents
FLATS_PER_BUILDING = 40                # 50,000 buildings → 2,000,000 flats
YEAR = 2026                            # the twelve months of work
NOW = datetime(2027, 1, 10, 6, 0, tzinfo=timezone.utc)  # the clock while measuring
DAY_US = 86_400_000_000
#: visits and signings per month (relative): a slow winter, a busy late summer
SEASON = np.array([0.60, 0.65, 0.80, 0.90, 1.00, 1.10, 1.20, 1.35, 1.25, 1.00, 0.85, 0.70])
#: outcomes of the visits that are not a contract's own signed visit (signed visits = contracts)
OUTCOMES = {"not_home": 0.35, "refused": 0.14, "not_interested": 0.16, "callback": 0.06, "lead": 0.05,
            "already_subscriber": 0.08, "competitor": 0.07, "no_access": 0.035, "do_not_knock": 0.015}
COMPETITORS = (("Ростелеком", 0.32), ("Дом.ру", 0.25), ("МТС", 0.16), ("Билайн", 0.12), ("МегаФон", 0.09),
               ("Уфанет", 0.06))
CANCEL_REASONS = (("Передумал", 0.28), ("Дорого", 0.20), ("Переезд", 0.14), ("Нет технической возможности", 0.12),
                  ("Ушёл к конкуренту", 0.11), ("Не дождался подключения", 0.10), (None, 0.05))
TARIFF_MIX = (("net100", 0.45), ("net300", 0.40), ("net500", 0.15))
ADDON_RATE = (("tv", 0.25), ("phone", 0.12))
FIGURES = ("funnel", "leaderboard", "plan_vs_fact", "competitor_share", "cancellations_by_reason", "tariff_mix",
           "no_rate", "penetration_by_zone", "penetration_by_building")
BATCH = 100_000

VISIT_COLUMNS = ("id", "client_id", "agent_id", "supervisor_id", "building_id", "flat", "outcome", "note", "at",
                 "recorded_at", "lat", "lon", "accuracy", "distance_m", "gps_colour", "flagged", "flag_reason",
                 "callback_at", "competitor", "phone", "contract_id", "request")
CONTRACT_COLUMNS = ("id", "number", "client_id", "agent_id", "supervisor_id", "building_id", "flat",
                    "subscriber_name", "phone", "tariff_id", "monthly_fee", "adult_confirmed", "at", "recorded_at",
                    "rate_version_id", "status", "activated_at", "cancelled_at", "cancel_reason")


def progress(text: str) -> None:
    print(f"\r  {text:<70}", end="", file=sys.stderr, flush=True)


# --- set-up: buildings, catalogue, facts ------------------------------------------------


def add_buildings(url: str, n: int, facts: dict, rng: np.random.Generator) -> None:
    """``n`` buildings inside the zone grid with ``FLATS_PER_BUILDING`` flats on average, imported
    through ``territories.importer`` (set-up)."""
    from crm.actors import CLI, set_actor
    from crm.extensions import db
    from territories import importer, importfile

    xmin, ymin, xmax, ymax = facts["bounds"]
    dx, dy = (xmax - xmin) * 0.08, (ymax - ymin) * 0.08  # building_points pads 5 %: stay inside the grid
    lats, lons, _ties = tt.building_points(n, (xmin + dx, ymin + dy, xmax - dx, ymax - dy), facts["shared"], rng,
                                           ties=0.0)
    features = tt.building_features(lats, lons, rng, prefix="DB")
    raw = np.array([f["properties"]["apartments"] for f in features], dtype=np.float64)
    target = FLATS_PER_BUILDING * n
    apartments = np.maximum(1, np.floor(raw * target / raw.sum())).astype(np.int64)
    short = target - int(apartments.sum())  # hand out what rounding took, one flat each
    if short > 0:
        apartments[rng.choice(n, size=short, replace=short > n)] += 1
    for feature, flats in zip(features, apartments.tolist()):
        props = feature["properties"]
        props["apartments"] = flats
        props["entrances"] = min(props["entrances"], flats)
    app = common.make_app(url)
    with app.app_context():
        set_actor(CLI)
        records, rejections = importfile.parse_buildings_json({"type": "FeatureCollection", "features": features},
                                                              tz=common.COMPANY_TZ)
        assert not rejections, rejections[:3]
        importer.import_buildings(records, rejections, source="bench")
        db.session.commit()
    common.dispose(app)


def add_catalogue(url: str) -> None:
    """The catalogue of ``_common.TARIFFS`` and one rate version in force from ``T0``, through the services."""
    from crm.actors import CLI, set_actor
    from crm.catalogue import services as catalogue
    from crm.extensions import db
    from crm.ledger import services as ledger

    app = common.make_app(url)
    with app.app_context():
        set_actor(CLI)
        for code, name, kind, fee, speed, addon in common.TARIFFS:
            catalogue.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee, speed_mbit=speed,
                                 is_addon=addon)
        ledger.add_rate_version(None, {**common.RATES, "effective_from": common.T0.isoformat()})
        db.session.commit()
    common.dispose(app)


def read_facts(url: str) -> dict:
    from sqlalchemy import select

    from crm.catalogue.models import Tariff
    from crm.extensions import db
    from crm.ledger.models import RateVersion
    from crm.users.models import User
    from territories.models import Building, ZoneAssignment

    app = common.make_app(url)
    with app.app_context():
        rows = db.session.execute(select(Building.id, Building.apartments, Building.zone_id, Building.lat,
                                         Building.lon).order_by(Building.id)).all()
        walker = dict(db.session.execute(select(ZoneAssignment.zone_id, ZoneAssignment.agent_id)).all())
        users = db.session.execute(select(User.id, User.login, User.role, User.manager_id)).all()
        tariffs = {t.code: (t.id, t.monthly_fee) for t in db.session.scalars(select(Tariff))}
        rate = db.session.execute(select(RateVersion.id, RateVersion.effective_from)).first()
    common.dispose(app)
    b = np.array([(r[0], r[1], r[2] or 0) for r in rows], dtype=np.int64).reshape(-1, 3)
    return {"b_id": b[:, 0], "b_apts": b[:, 1], "b_zone": b[:, 2],
            "b_lat": np.array([r[3] for r in rows]), "b_lon": np.array([r[4] for r in rows]),
            "walker": walker, "manager": {u[0]: u[3] for u in users},
            "head": next(u[0] for u in users if u[2] == "sales_head"),
            "supervisors": sorted(u[0] for u in users if u[2] == "supervisor"),
            "agents": sorted(u[0] for u in users if u[2] == "agent"), "login": {u[0]: u[1] for u in users},
            "tariffs": tariffs, "rate_version_id": rate[0], "rate_from": rate[1]}


# --- set-up: generated rows -----------------------------------------------------------------


def month_starts_us() -> np.ndarray:
    """UTC µs of the first instant of each month of YEAR (company time) and of the next January."""
    out = []
    for m in range(13):
        y, mm = YEAR + m // 12, m % 12 + 1
        out.append(int(datetime(y, mm, 1, tzinfo=common.COMPANY_TZ).timestamp() * 1_000_000))
    return np.array(out, dtype=np.int64)


def working_times(month: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random moment on a random day of each given month, 10:00–21:00 company time (UTC µs)."""
    starts = month_starts_us()
    days = (starts[month + 1] - starts[month]) // DAY_US
    day = np.floor(rng.random(len(month)) * days).astype(np.int64)
    second = rng.integers(10 * 3600 * 1_000_000, 21 * 3600 * 1_000_000, len(month))
    return starts[month] + day * DAY_US + second


def ts_text(us: np.ndarray) -> list[str]:
    """UTC µs → 'YYYY-MM-DD HH:MM:SS.ffffff' (how SQLAlchemy stores UTCDateTime in SQLite; COPY reads it too)."""
    return np.char.replace(np.datetime_as_string(us.astype("datetime64[us]"), unit="us"), "T", " ").tolist()


def pick(rng, choices, n):
    labels = [c for c, _p in choices]
    p = np.array([p for _c, p in choices], dtype=np.float64)
    return np.array(labels, dtype=object)[rng.choice(len(labels), size=n, p=p / p.sum())]


def sparse(n: int, idx: np.ndarray, values) -> list:
    """A column of ``n`` NULLs with ``values`` at positions ``idx``."""
    col = [None] * n
    for i, v in zip(idx.tolist(), values):
        col[i] = v
    return col


class World:
    """The buildings of the zones laid out by agent, so an agent's flats are one range of flat numbers."""

    def __init__(self, f: dict):
        in_zone = f["b_zone"] > 0
        agent = np.array([f["walker"].get(int(z), 0) for z in f["b_zone"]], dtype=np.int64)
        keep = np.flatnonzero(in_zone & (agent > 0))
        order = keep[np.lexsort((f["b_id"][keep], agent[keep]))]
        self.pos = order                          # index into the facts' building arrays
        self.agent = agent[order]
        self.apts = f["b_apts"][order]
        self.cum = np.cumsum(self.apts)
        self.flats = int(self.cum[-1]) if len(self.cum) else 0
        self.manager = f["manager"]
        agents = np.array(f["agents"], dtype=np.int64)
        first = np.searchsorted(self.agent, agents, side="left")
        last = np.searchsorted(self.agent, agents, side="right")
        lo = np.where(first > 0, self.cum[np.maximum(first - 1, 0)], 0)
        hi = np.where(last > 0, self.cum[np.maximum(last - 1, 0)], 0)
        walking = hi > lo
        self.agents, self.lo, self.hi = agents[walking], lo[walking], hi[walking]

    def locate(self, u: np.ndarray):
        """Global flat numbers (0-based) → (index into the facts' buildings, flat 1…, agent)."""
        k = np.searchsorted(self.cum, u, side="right")
        return self.pos[k], u - (self.cum[k] - self.apts[k]) + 1, self.agent[k]


def make_contracts(f: dict, world: World, n: int, rng: np.random.Generator) -> dict:
    """``n`` contracts on distinct flats (so at most one active per flat), signed over YEAR."""
    if n > world.flats:
        raise SystemExit(f"--contracts {n:,} exceeds the {world.flats:,} flats in zones")
    u = rng.choice(world.flats, size=n, replace=False)
    bpos, flat, agent = world.locate(u)
    month = rng.choice(12, size=n, p=SEASON / SEASON.sum())
    at = working_times(month, rng)
    order = np.argsort(at, kind="stable")
    bpos, flat, agent, at, month = bpos[order], flat[order], agent[order], at[order], month[order]
    now = int(NOW.timestamp() * 1_000_000)
    cancel = rng.random(n) < 0.12
    after = cancel & (rng.random(n) < 0.5)           # cancelled after activation
    before = cancel & ~after
    stuck = ~cancel & (rng.random(n) < 0.04)         # never activated (yet)
    act = at + (rng.uniform(2, 14, n) * DAY_US).astype(np.int64)
    cancelled_at = np.where(after, act + (rng.uniform(1, 90, n) * DAY_US).astype(np.int64),
                            at + (rng.uniform(0.2, 10, n) * DAY_US).astype(np.int64))
    is_cancelled = (before & (cancelled_at <= now)) | (after & (act <= now) & (cancelled_at <= now))
    is_activated = ~is_cancelled & ~stuck & ~before & (act <= now)
    activated_at_set = is_activated | (is_cancelled & after)
    pending = ~is_cancelled & ~is_activated
    age_days = (now - at) / DAY_US
    pending_status = np.where(stuck, np.array(["signed", "paid", "installation_scheduled"])[rng.integers(0, 3, n)],
                              np.where(age_days < 1, "signed", np.where(age_days < 4, "paid", "installation_scheduled")))
    status = np.where(is_cancelled, "cancelled", np.where(is_activated, "activated", pending_status)).astype(object)
    assert not (pending & (status == "activated")).any()
    tariff = pick(rng, TARIFF_MIX, n)
    addons = {code: rng.random(n) < p for code, p in ADDON_RATE}
    fee = np.array([f["tariffs"][t][1] for t in tariff], dtype=np.int64)
    for code, mask in addons.items():
        fee += mask * f["tariffs"][code][1]
    reason = pick(rng, CANCEL_REASONS, n)
    rate_from = f["rate_from"] if f["rate_from"].tzinfo else f["rate_from"].replace(tzinfo=timezone.utc)
    rate_from = int(rate_from.timestamp() * 1_000_000)
    return {"n": n, "bpos": bpos, "building": f["b_id"][bpos], "flat": flat, "agent": agent, "at": at,
            "month": month, "status": status, "activated_at": np.where(activated_at_set, act, -1),
            "cancelled_at": np.where(is_cancelled, cancelled_at, -1), "cancelled": is_cancelled,
            "reason": reason, "tariff": tariff, "addons": addons, "fee": fee,
            "rate": at >= rate_from, "recorded_at": at + rng.integers(1_000_000, 600_000_000, n)}


def contract_rows(f: dict, c: dict):
    n = c["n"]
    width = max(6, len(str(n)))
    at_text, rec_text = ts_text(c["at"]), ts_text(c["recorded_at"])
    act_idx, can_idx = np.flatnonzero(c["activated_at"] >= 0), np.flatnonzero(c["cancelled_at"] >= 0)
    activated = sparse(n, act_idx, ts_text(c["activated_at"][act_idx]))
    cancelled = sparse(n, can_idx, ts_text(c["cancelled_at"][can_idx]))
    reasons = sparse(n, can_idx, c["reason"][can_idx].tolist())
    tariff_ids = [f["tariffs"][t][0] for t in c["tariff"]]
    rate = f["rate_version_id"]
    agent, sup = c["agent"].tolist(), [f["manager"][a] for a in c["agent"].tolist()]
    building, flat, fee, has_rate = c["building"].tolist(), c["flat"].tolist(), c["fee"].tolist(), c["rate"].tolist()
    status = c["status"].tolist()
    for i in range(n):
        k = i + 1
        yield (k, f"D-{at_text[i][:4]}-{k:0{width}d}", None, agent[i], sup[i], building[i], flat[i], "Иван Петров",
               "+79123456789", tariff_ids[i], fee[i], True, at_text[i], rec_text[i], rate if has_rate[i] else None,
               status[i], activated[i], cancelled[i], reasons[i])


def addon_rows(f: dict, c: dict):
    for code, mask in c["addons"].items():
        tid = f["tariffs"][code][0]
        for i in np.flatnonzero(mask).tolist():
            yield (i + 1, tid)


def make_visits(f: dict, world: World, c: dict, n: int, rng: np.random.Generator) -> dict:
    """``n`` visits: one signed visit per contract (same door, agent and moment) and the rest
    knocks on the flats of the agent's zones, over YEAR, in time order."""
    n_signed = c["n"]
    if n_signed > n:
        raise SystemExit(f"--visits {n:,} must be at least --contracts {n_signed:,} (a signed visit per contract)")
    m = n - n_signed
    activity = rng.lognormal(0.0, 0.35, len(world.agents))
    who = rng.choice(len(world.agents), size=m, p=activity / activity.sum())
    u = world.lo[who] + np.floor(rng.random(m) * (world.hi[who] - world.lo[who])).astype(np.int64)
    bpos, flat, agent = world.locate(u)
    month = rng.choice(12, size=m, p=SEASON / SEASON.sum())
    at = working_times(month, rng)
    names = list(OUTCOMES)
    p = np.array([OUTCOMES[k] for k in names])
    outcome = rng.choice(len(names), size=m, p=p / p.sum())
    outcome_names = np.array(names + ["signed"], dtype=object)
    signed_code = len(names)
    # the signed visits
    bpos = np.concatenate([bpos, c["bpos"]])
    flat = np.concatenate([flat, c["flat"]])
    agent = np.concatenate([agent, c["agent"]])
    at = np.concatenate([at, c["at"]])
    month = np.concatenate([month, c["month"]])
    outcome = np.concatenate([outcome, np.full(n_signed, signed_code)])
    contract = np.concatenate([np.zeros(m, dtype=np.int64), np.arange(1, n_signed + 1)])
    order = np.argsort(at, kind="stable")
    bpos, flat, agent, at, month, outcome, contract = (x[order] for x in (bpos, flat, agent, at, month, outcome,
                                                                         contract))
    # GPS: 2 % without a fix, most within tens of metres, a tail far away
    no_fix = rng.random(n) < 0.02
    dist = rng.lognormal(math.log(28), 0.9, n)
    far = rng.random(n) < 0.02
    dist[far] = rng.uniform(150, 2000, int(far.sum()))
    theta = rng.uniform(0, 2 * math.pi, n)
    blat, blon = f["b_lat"][bpos], f["b_lon"][bpos]
    lat = np.round(blat + dist * np.cos(theta) / 111_320.0, 6)
    lon = np.round(blon + dist * np.sin(theta) / (111_320.0 * np.cos(np.radians(blat))), 6)
    p1, p2 = np.radians(blat), np.radians(lat)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon - blon) / 2) ** 2
    distance = 2 * 6_371_008.8 * np.arcsin(np.minimum(1.0, np.sqrt(a)))  # crm.visits.rules.distance_m
    accuracy = np.round(rng.lognormal(math.log(12), 0.6, n), 1)
    bad_acc = rng.random(n) < 0.04
    accuracy[bad_acc] = np.round(rng.uniform(101, 400, int(bad_acc.sum())), 1)
    colour = np.where(no_fix | (distance > 300), "red", np.where(distance > 100, "amber", "green")).astype(object)
    reason = np.where(no_fix, "no GPS position", np.where(accuracy > 100, "GPS accuracy worse than 100 m",
                      np.where(distance > 150, "farther than 150 m from the building", ""))).astype(object)
    flagged = reason != ""
    return {"n": n, "building": f["b_id"][bpos], "flat": flat, "agent": agent, "at": at, "month": month,
            "outcome": outcome_names[outcome], "contract": contract, "no_fix": no_fix, "lat": lat, "lon": lon,
            "accuracy": accuracy, "distance": np.round(distance, 1), "colour": colour, "flagged": flagged,
            "reason": reason, "recorded_at": at + rng.integers(1_000_000, 7_200_000_000, n)}


def visit_rows(f: dict, v: dict, start: int, stop: int, rng: np.random.Generator) -> list[tuple]:
    """Rows ``start``…``stop`` of the visits (ids start+1…)."""
    sl = slice(start, stop)
    n = stop - start
    outcome = v["outcome"][sl]
    at = v["at"][sl]
    at_text, rec_text = ts_text(at), ts_text(v["recorded_at"][sl])
    fix = np.flatnonzero(~v["no_fix"][sl])
    lat = sparse(n, fix, v["lat"][sl][fix].tolist())
    lon = sparse(n, fix, v["lon"][sl][fix].tolist())
    acc = sparse(n, fix, v["accuracy"][sl][fix].tolist())
    dist = sparse(n, fix, v["distance"][sl][fix].tolist())
    flagged = v["flagged"][sl]
    fl = np.flatnonzero(flagged)
    flag_reason = sparse(n, fl, v["reason"][sl][fl].tolist())
    cb = np.flatnonzero(outcome == "callback")
    callback = sparse(n, cb, ts_text(at[cb] + (rng.uniform(1, 7, len(cb)) * DAY_US).astype(np.int64)))
    ld = np.flatnonzero(outcome == "lead")
    phone = sparse(n, ld, [f"+79{x:09d}" for x in rng.integers(0, 10**9, len(ld)).tolist()])
    cp = np.flatnonzero(outcome == "competitor")
    names = pick(rng, COMPETITORS, len(cp))
    variant = rng.random(len(cp))  # what agents type: some in lower case, some with a trailing space
    names = [nm.lower() if r < 0.04 else (nm + " " if r < 0.07 else nm) for nm, r in zip(names, variant.tolist())]
    competitor = sparse(n, cp, names)
    contract = v["contract"][sl]
    cid = np.flatnonzero(contract)
    contract_col = sparse(n, cid, contract[cid].tolist())
    agent = v["agent"][sl].tolist()
    manager = f["manager"]
    building, flat, colour = v["building"][sl].tolist(), v["flat"][sl].tolist(), v["colour"][sl].tolist()
    outcome, flagged = outcome.tolist(), flagged.tolist()
    rows = []
    for i in range(n):
        k = start + i + 1
        rows.append((k, f"bench-{k:09d}#signed" if contract_col[i] else f"bench-{k:09d}", agent[i],
                     manager[agent[i]], building[i], flat[i], outcome[i], None, at_text[i], rec_text[i], lat[i],
                     lon[i], acc[i], dist[i], colour[i], flagged[i], flag_reason[i], callback[i], competitor[i],
                     phone[i], contract_col[i], "{}"))
    return rows


def plan_rows(f: dict, c: dict) -> list[tuple]:
    """A plan for every supervisor and agent for every month of YEAR (about what they bring, ±25 %)."""
    rng = np.random.default_rng(7)
    per_month = np.bincount(c["month"], minlength=12)
    agents = f["agents"]
    rows, pid = [], 0
    starts = month_starts_us()
    for m in range(12):
        period = f"{YEAR}-{m + 1:02d}"
        set_at = ts_text(np.array([starts[m] - 3 * DAY_US]))[0]
        team: dict[int, list[int]] = {}
        for a in agents:
            contracts = max(1, int(round(per_month[m] / len(agents) * rng.uniform(0.8, 1.25))))
            activations = int(round(contracts * 0.8))
            team.setdefault(f["manager"][a], [0, 0])
            team[f["manager"][a]][0] += contracts
            team[f["manager"][a]][1] += activations
            pid += 1
            rows.append((pid, period, a, contracts, activations, f["head"], set_at))
        for s in f["supervisors"]:
            contracts, activations = team.get(s, [0, 0])
            pid += 1
            rows.append((pid, period, s, contracts, activations, f["head"], set_at))
    return rows


def bulk(dbs, conn, table: str, columns, rows) -> int:
    """Insert ``rows`` with the raw driver: SQLite executemany, PostgreSQL COPY … FROM STDIN."""
    cur = conn.cursor()
    count = 0
    if dbs.dialect == "sqlite":
        sql = common.insert_sql("sqlite", table, columns)
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                cur.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cur.executemany(sql, batch)
            count += len(batch)
    else:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def fill(dbs, url: str, f: dict, world: World, args, rng) -> dict:
    """The raw part of the set-up; returns the generated contracts and visits and stage times."""
    times = {}
    t = time.perf_counter()
    c = make_contracts(f, world, args.contracts, rng)
    v = make_visits(f, world, c, args.visits, rng)
    times["generate"] = time.perf_counter() - t
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        if dbs.dialect == "sqlite":
            cur.execute("PRAGMA cache_size=-1000000")  # 1 GB page cache for this loading connection only
        t = time.perf_counter()
        common.begin(dbs.dialect, cur)
        bulk(dbs, conn, "contracts", CONTRACT_COLUMNS, contract_rows(f, c))
        bulk(dbs, conn, "contract_addons", ("contract_id", "tariff_id"), addon_rows(f, c))
        bulk(dbs, conn, "plans", ("id", "period", "user_id", "contracts", "activations", "set_by_id", "set_at"),
             plan_rows(f, c))
        common.commit(dbs.dialect, conn, cur)
        times["contracts"] = time.perf_counter() - t
        t = time.perf_counter()
        step = 500_000
        for start in range(0, v["n"], step):
            stop = min(v["n"], start + step)
            common.begin(dbs.dialect, cur)
            bulk(dbs, conn, "visits", VISIT_COLUMNS, visit_rows(f, v, start, stop, rng))
            common.commit(dbs.dialect, conn, cur)
            elapsed = time.perf_counter() - t
            progress(f"visits {stop:,}/{v['n']:,} ({stop / elapsed:,.0f}/s)")
        print(file=sys.stderr)
        times["visits"] = time.perf_counter() - t
        if dbs.dialect == "postgresql":
            for table in ("contracts", "visits", "plans"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            conn.commit()
        t = time.perf_counter()
        if dbs.dialect == "sqlite":
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.execute("ANALYZE")
        else:
            conn.autocommit = True
            cur.execute("VACUUM ANALYZE")
        times["analyze"] = time.perf_counter() - t
    finally:
        conn.close()
    return {"contracts": c, "visits": v, "times": times}


def counts(url: str) -> list[str]:
    from sqlalchemy import text

    from crm.extensions import db

    app = common.make_app(url)
    out = []
    with app.app_context():
        def one(sql):
            return db.session.scalar(text(sql))
        users = dict(db.session.execute(text("SELECT role, count(*) FROM users GROUP BY role")).all())
        out.append("users: " + ", ".join(f"{k} {v:,}" for k, v in sorted(users.items())))
        out.append(f"territories {one('SELECT count(*) FROM territories'):,}, zones {one('SELECT count(*) FROM zones'):,}, "
                   f"zone assignments {one('SELECT count(*) FROM zone_assignments'):,}")
        out.append(f"buildings {one('SELECT count(*) FROM buildings'):,} ({one('SELECT count(*) FROM buildings WHERE zone_id IS NOT NULL'):,} "
                   f"in a zone), flats {one('SELECT sum(apartments) FROM buildings'):,}")
        out.append(f"tariffs {one('SELECT count(*) FROM tariffs'):,}, rate versions {one('SELECT count(*) FROM rate_versions'):,}, "
                   f"plans {one('SELECT count(*) FROM plans'):,}")
        status = dict(db.session.execute(text("SELECT status, count(*) FROM contracts GROUP BY status")).all())
        out.append(f"contracts {sum(status.values()):,} (" + ", ".join(f"{k} {v:,}" for k, v in sorted(status.items()))
                   + f"; no rate {one('SELECT count(*) FROM contracts WHERE rate_version_id IS NULL'):,}), "
                   f"contract add-ons {one('SELECT count(*) FROM contract_addons'):,}")
        outcome = dict(db.session.execute(text("SELECT outcome, count(*) FROM visits GROUP BY outcome")).all())
        total = sum(outcome.values())
        out.append(f"visits {total:,}: " + ", ".join(f"{k} {v / total:.1%}" for k, v in
                                                     sorted(outcome.items(), key=lambda kv: -kv[1])))
        colour = dict(db.session.execute(text("SELECT gps_colour, count(*) FROM visits GROUP BY gps_colour")).all())
        out.append("  gps " + ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(colour.items()))
                   + f"; flagged {one('SELECT count(*) FROM visits WHERE flagged') / total:.1%}")
    common.dispose(app)
    return out


# --- measuring ------------------------------------------------------------------------------


class SqlLog:
    """Every statement the engine runs while ``on``: (statement, parameters, seconds)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.on, self.items = False, []
        key = f"bench_t_{id(self)}"

        def before(conn, _cursor, statement, parameters, _context, _many):
            conn.info[key] = time.perf_counter()

        def after(conn, _cursor, statement, parameters, _context, _many):
            t = conn.info.pop(key, None)
            if self.on and t is not None:
                self.items.append((statement, parameters, time.perf_counter() - t))

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

    def capture(self, fn):
        self.items, self.on = [], True
        try:
            t = time.perf_counter()
            result = fn()
            return time.perf_counter() - t, list(self.items), result
        finally:
            self.on = False


def timed_pages(pages, repeat: int):
    """One warm-up each, then ``repeat`` interleaved rounds; per page (times, statuses)."""
    out = {label: ([], []) for label, _c, _p in pages}
    for label, client, path in pages:
        out[label][1].append(client.get(path).status_code)
    for _ in range(repeat):
        for label, client, path in pages:
            gc.collect()
            t = time.perf_counter()
            response = client.get(path)
            response.get_data()
            out[label][0].append(time.perf_counter() - t)
            out[label][1].append(response.status_code)
    return out


def shorten(statement: str, parameters) -> tuple[str, str]:
    """The statement on one line with long IN lists collapsed, and its parameters likewise."""
    import re

    text = " ".join(statement.split())
    text = re.sub(r"((?:%\((\w+?)_\d+\)s(?:::\w+)?|\?)(?:, (?:%\(\2_\d+\)s(?:::\w+)?|\?)){9,})",
                  lambda m: f"<{m.group(1).count(',') + 1} values>", text)
    if isinstance(parameters, dict):
        expanded = [k for k in parameters if re.search(r"_\d+_\d+$", k)]  # an IN list's values
        shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items() if k not in expanded)
        if expanded:
            shown += f", and {len(expanded)} IN-list values"
    else:
        values = list(parameters or ())
        shown = ", ".join(repr(v) for v in values[:12]) + (f", … ({len(values)} in all)" if len(values) > 12 else "")
    return text, shown


def explain(dialect: str, statement: str, parameters) -> list[str]:
    from crm.extensions import db

    raw = db.session.connection().connection.dbapi_connection
    cur = raw.cursor()
    if dialect == "sqlite":
        cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        rows = cur.fetchall()
        depth, lines = {0: 0}, []
        for node, parent, _aux, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * depth[node] + detail)
    else:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        lines = [r[0] for r in cur.fetchall()]
    cur.close()
    return lines


def diagnose(app, dialect: str, label: str, viewer_id: int, period: str, team, agent, members_of, records: bool,
             repeat: int) -> None:
    """Every function of crm.dashboards.figures for the page's scope, timed alone; EXPLAIN of the slowest statement."""
    import re

    from flask_login import login_user
    from sqlalchemy import select

    from crm.dashboards import figures
    from crm.extensions import db
    from crm.users.models import AGENT, User

    with app.test_request_context("/"):
        log = SqlLog(db.engine)
        viewer = db.session.get(User, viewer_id)
        login_user(viewer)
        s = figures.make_scope(viewer, period, team=team, agent=agent)
        members = list(db.session.scalars(select(User).where(User.manager_id == members_of, User.role == AGENT,
                                                             User.active.is_(True)))) if members_of else []
        calls = {"funnel": lambda: figures.funnel(s), "leaderboard": lambda: figures.leaderboard(s, members),
                 "plan_vs_fact": lambda: figures.plan_vs_fact(s), "competitor_share": lambda: figures.competitor_share(s),
                 "cancellations_by_reason": lambda: figures.cancellations_by_reason(s),
                 "tariff_mix": lambda: figures.tariff_mix(s), "no_rate": lambda: figures.no_rate(s),
                 "penetration_by_zone": lambda: figures.penetration_by_zone(s),
                 "penetration_by_building": lambda: figures.penetration_by_building(s)}
        if records:
            def rec():
                from crm.dashboards.routes import PAGE_SIZE
                _kind, q = figures.records(s, "contracts")
                model = q.column_descriptions[0]["entity"]
                rows = list(db.session.scalars(q.order_by(model.at.desc(), model.id.desc()).limit(PAGE_SIZE + 1)))
                for r in rows:  # what the template reads
                    _x = (r.building.address, r.agent.login, r.tariff.code)
                return rows
            calls["records(contracts) + page rows"] = rec
        scope_text = f"viewer {viewer.login} ({viewer.role})" + (f", team {team}" if team else "") + \
            (f", agent {agent}" if agent else "")
        print(f"  {label}: each function of crm/dashboards/figures.py alone, {scope_text}, period {period} "
              f"(1 warm-up + {repeat}; ms):")
        print(f"    {'function':<34} {'best':>8} {'median':>8}  statements  slowest statement")
        slowest, statements = None, []
        from flask import g

        def uncached(fn):  # figures share work within a request (g): time each one on its own
            def run():
                g.pop("dashboard_figures", None)
                return fn()
            return run

        for name, fn in calls.items():
            fn = uncached(fn)
            fn()
            samples, items = [], []
            for _ in range(repeat):
                gc.collect()
                seconds, items, _r = log.capture(fn)
                samples.append(seconds)
            top = max(items, key=lambda it: it[2]) if items else None
            statements.extend((it[2], name, it[0]) for it in items)
            print(f"    {name:<34} {min(samples) * 1000:8.1f} {statistics.median(samples) * 1000:8.1f}  "
                  f"{len(items):>10}  {top[2] * 1000 if top else 0:8.1f}")
            if top and (slowest is None or top[2] > slowest[3]):
                slowest = (name, top[0], top[1], top[2])
        print("  the slowest statements (their last run):")
        for seconds, name, statement in sorted(statements, key=lambda x: x[0], reverse=True)[:6]:
            text, _shown = shorten(statement, ())
            text = re.sub(r"^WITH RECURSIVE subtree\(id\) AS \(.*?\) SELECT", "WITH RECURSIVE subtree(…) SELECT", text)
            print(f"    {seconds * 1000:8.1f} ms  {name:<24} {text[:150]}{' …' if len(text) > 150 else ''}")
        if slowest:
            name, statement, parameters, seconds = slowest
            print(f"  slowest statement ({name}, {seconds * 1000:.1f} ms):")
            text, shown = shorten(statement, parameters)
            print("    " + text)
            print(f"    parameters: {shown}")
            head = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS)"
            print(f"  {head}:")
            for line in explain(dialect, statement, parameters):
                print("    " + (line if len(line) <= 200 else line[:200] + " …"))
        db.session.rollback()


def check_figures(app, f: dict, period: str, sup: int, agent: int) -> list[str]:
    """The head's funnel, the team's leaderboard and the competitor share against plain SQL counts,
    and the competitor click-through against the share (not timed)."""
    from sqlalchemy import func, select, text

    from crm.dashboards import figures
    from crm.extensions import db
    from crm.users.models import User

    out = []
    with app.test_request_context("/"):
        s = figures.make_scope(db.session.get(User, f["head"]), period)
        got = figures.funnel(s)
        dt = common.sqlite_dt if db.engine.dialect.name == "sqlite" else common.pg_dt
        params = {"a": dt(s.start), "b": dt(s.end)}
        q = lambda sql: db.session.scalar(text(sql), params)  # noqa: E731
        want = {"knocked": q("SELECT count(*) FROM visits WHERE at >= :a AND at < :b"),
                "contacts": q("SELECT count(*) FROM visits WHERE at >= :a AND at < :b "
                              "AND outcome NOT IN ('not_home', 'no_access')"),
                "leads": q("SELECT count(*) FROM visits WHERE at >= :a AND at < :b "
                           "AND outcome IN ('lead', 'callback', 'signed')"),
                "contracts": q("SELECT count(*) FROM contracts WHERE at >= :a AND at < :b"),
                "activations": q("SELECT count(*) FROM contracts WHERE activated_at >= :a AND activated_at < :b")}
        out.append(f"check: the head's funnel {got} vs plain SQL: {'ok' if got == want else f'WRONG (SQL {want})'}")
        st = figures.make_scope(db.session.get(User, sup), period, team=sup)
        rows = figures.leaderboard(st)
        total = sum(r.knocked for r in rows)
        params["s"] = sup
        want_team = q("SELECT count(*) FROM visits WHERE supervisor_id = :s AND at >= :a AND at < :b")
        out.append(f"check: team {f['login'][sup]}'s leaderboard knocked {total:,} over {len(rows)} agents vs plain SQL "
                   f"{want_team:,}: {'ok' if total == want_team else 'WRONG'}")
        # competitor names are compared case-blind; the click-through must find each group's doors
        _contacts, doors, shares = figures.competitor_share(s)
        want_doors = q("SELECT count(*) FROM visits WHERE at >= :a AND at < :b AND outcome = 'competitor'")
        behind = {sh.key: db.session.scalar(select(func.count()).select_from(
            figures.records(s, "competitor", sh.key)[1].subquery())) for sh in shares}
        wrong = [f"{sh.label!r} {sh.count:,} → {behind[sh.key]:,}" for sh in shares if behind[sh.key] != sh.count]
        out.append(f"check: competitor share: {doors:,} doors (plain SQL {want_doors:,}) in {len(shares)} groups "
                   f"({len(COMPETITORS)} names in the data, ~4 % of them typed in lower case, ~3 % with a trailing "
                   f"space): {', '.join(f'{sh.label!r} {sh.count:,}' for sh in shares)}")
        out.append(f"check: competitor click-through (records figure=competitor&key=…) finds each group's doors: "
                   + ("ok" if not wrong and doors == want_doors and len(shares) == len(COMPETITORS)
                      else f"WRONG ({'; '.join(wrong) or 'groups'})"))
        db.session.rollback()
    return out


# --- main -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--visits", type=int, default=5_000_000)
    parser.add_argument("--contracts", type=int, default=200_000)
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--diagnose", action="store_true",
                        help="time the figures and EXPLAIN the slowest statement for every page, not only slow ones")
    args = parser.parse_args(argv)
    dialect = args.db
    target = TARGET_MS[dialect]
    print(f"dashboards on {dialect}: code {common.revision()}; at the start: {common.load()}")

    with common.databases(dialect, "dash") as dbs:
        stages = {}
        t0 = t = time.perf_counter()
        url = dbs.create_empty("base")
        tt.AGENTS_PER_SUPERVISOR = AGENTS_PER_SUPERVISOR  # 20 agents a supervisor instead of the territory scripts' 5
        city = tt.build_city(url, ROWS, COLS, BLOCK, seed=args.seed)
        stages["city (services)"] = time.perf_counter() - t
        t = time.perf_counter()
        rng = np.random.default_rng(args.seed + 1)
        add_buildings(url, args.buildings, city, rng)
        add_catalogue(url)
        stages["buildings (importer) + catalogue"] = time.perf_counter() - t
        f = read_facts(url)
        world = World(f)
        built = fill(dbs, url, f, world, args, rng)
        for k, v in built["times"].items():
            stages[{"generate": "generating rows (numpy)", "contracts": "contracts, add-ons, plans (raw)",
                    "visits": "visits (raw)", "analyze": "ANALYZE" if dialect == "sqlite" else "VACUUM ANALYZE"}[k]] = v
        setup = time.perf_counter() - t0
        print(f"build {setup:.1f} s (not measured): " + "; ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        for line in counts(url):
            print("  " + line)

        v, c = built["visits"], built["contracts"]
        per_month = np.bincount(v["month"], minlength=12)
        busiest = int(np.argmax(per_month))
        period = f"{YEAR}-{busiest + 1:02d}"
        in_month = v["month"] == busiest
        sup_of = np.array([f["manager"][a] for a in v["agent"][in_month].tolist()])
        sups, n_sup = np.unique(sup_of, return_counts=True)
        sup = int(sups[np.argmax(n_sup)])
        team_agents = v["agent"][in_month][sup_of == sup]
        ags, n_ag = np.unique(team_agents, return_counts=True)
        agent = int(ags[np.argmax(n_ag)])
        c_month = int((c["month"] == busiest).sum())
        print(f"busiest month {period}: {int(per_month[busiest]):,} visits, {c_month:,} contracts signed; "
              f"supervisor {f['login'][sup]} ({int(n_sup.max()):,} visits), agent {f['login'][agent]} "
              f"({int(n_ag.max()):,} visits)")

        from crm.clock import FixedClock

        app = common.make_app(url, clock=FixedClock(NOW))
        clients = {}
        for who, login in (("head", "head"), ("sup", f["login"][sup]), ("agent", f["login"][agent])):
            clients[who] = app.test_client()
            city_map.sign_in(clients[who], login, "bench")
        pages = [("head   /dashboard", clients["head"], f"/dashboard?period={period}"),
                 ("sup    /dashboard/team", clients["sup"], f"/dashboard/team?period={period}"),
                 ("sup    /dashboard/team&agent", clients["sup"], f"/dashboard/team?period={period}&agent={agent}"),
                 ("agent  /dashboard/me", clients["agent"], f"/dashboard/me?period={period}"),
                 ("head   /dashboard/records", clients["head"], f"/dashboard/records?figure=contracts&period={period}")]
        print(f"timed: 1 warm-up + {args.repeat} interleaved rounds; clock {NOW.isoformat()}; {common.load()}")
        results = timed_pages(pages, args.repeat)
        failed, missed = False, []
        for label, _client, path in pages:
            times, statuses = results[label]
            best, median = min(times) * 1000, statistics.median(times) * 1000
            ok = all(code == 200 for code in statuses)
            failed |= not ok
            meets = best <= target and median <= target
            if not meets:
                missed.append(label)
            print(f"  {label:<29} best {best:7.1f} ms  median {median:7.1f} ms  "
                  f"(all {', '.join(f'{x * 1000:.0f}' for x in times)})  HTTP {sorted(set(statuses))}  "
                  f"target <= {target:.0f} ms: {'met' if meets else 'MISSED'}   {path}")

        from crm.extensions import db

        with app.app_context():
            log = SqlLog(db.engine)
        print("one more request each, its SQL (statements, time in the driver):")
        for label, client, path in pages:
            seconds, items, _r = log.capture(lambda: client.get(path).get_data())
            sql = sum(it[2] for it in items)
            top = max(items, key=lambda it: it[2]) if items else None
            print(f"  {label:<29} {seconds * 1000:7.1f} ms: {len(items):3} statements, SQL {sql * 1000:7.1f} ms "
                  f"({sql / seconds:.0%}), slowest statement {top[2] * 1000 if top else 0:.1f} ms")
        for line in check_figures(app, f, period, sup, agent):
            print(line)
        diagnosed = [label for label, _c, _p in pages] if args.diagnose else missed
        if diagnosed:
            print(f"{'pages over the target' if not args.diagnose else 'every page (--diagnose)'} "
                  f"({', '.join(label.split()[-1] for label in diagnosed) or 'none over the target'}): "
                  f"where the time goes")
            scopes = {"head   /dashboard": (f["head"], None, None, None, False),
                      "sup    /dashboard/team": (sup, sup, None, sup, False),
                      "sup    /dashboard/team&agent": (sup, sup, agent, sup, False),
                      "agent  /dashboard/me": (agent, None, None, None, False),
                      "head   /dashboard/records": (f["head"], None, None, None, True)}
            for label in diagnosed:
                viewer, team, who, members_of, records = scopes[label]
                diagnose(app, dialect, label.split()[-1], viewer, period, team, who, members_of, records,
                         max(1, min(args.repeat, 3)))
        common.dispose(app)
        print(f"at the end: {common.load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

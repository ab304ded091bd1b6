"""Shared set-up for the territory benchmarks: a zoned city, building files, databases named by URL.

Nothing here is timed. ``import_buildings.py`` and ``city_map.py`` import it as a sibling
module; ``_common`` puts the project root on ``sys.path``.

The city: a ``rows`` × ``cols`` grid of zones over a ~22 × 22 km square around
Yekaterinburg, slightly irregular polygons sharing their edges (jittered lattice
vertices plus ``edge_points`` shared jittered vertices per edge, as in ``assign.py``),
grouped into territories of ``block`` × ``block`` zones (a territory's polygon is the
union of its zones, so every zone lies exactly inside it). One sales head; one
supervisor per two territories; five agents per supervisor, who get the zones of their
supervisor's territories in turn. Everything goes through ``territories.services``
(``save_territory`` / ``save_zone`` with the agent), as the operator, clock at ``T0``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)

CENTRE_LAT, CENTRE_LON = 56.84, 60.6
SIDE_M = 22_000
M_PER_DEG_LAT = 111_320.0
AGENTS_PER_SUPERVISOR = 5
TERRITORIES_PER_SUPERVISOR = 2

from territories.demo import STREETS  # noqa: E402  (the demo city's street names)


# --- databases named by --database-url ------------------------------------------------


class UrlDatabases(common.Databases):
    """Like ``_common.Databases``, but the first database can be the one ``--database-url`` names.

    ``base(url)``: an existing database must be empty (no tables) and is left in place
    (whoever created it drops it); a missing one is created here and dropped at the end.
    Copies are named ``<base>_<suffix>`` (PostgreSQL) or sit in a temporary directory
    (SQLite) and are always removed.
    """

    def __init__(self, dialect: str, tag: str):
        super().__init__(dialect, tag)
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix=f"{self.tag}_")  # for the building file
        self.sqlite_created: list[str] = []

    def base(self, url: str | None) -> str:
        if url is None:
            return self.create_empty("base")
        if self.dialect == "sqlite":
            path = url[len("sqlite:///"):]
            if os.path.exists(path):
                with sqlite3.connect(path) as conn:
                    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                if tables:
                    raise SystemExit(f"{path} is not empty ({tables} tables); give a new or empty database")
            else:
                self.sqlite_created.append(path)
            return url
        name = urlsplit(url).path.lstrip("/")
        import psycopg

        with psycopg.connect(common.PG_ADMIN, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            with psycopg.connect(url) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            if tables:
                raise SystemExit(f"database {name} is not empty ({tables} tables); give a new or empty database")
        else:
            self._pg_admin(f'CREATE DATABASE "{name}"')
            self.pg_names.append(name)
        self.tag = name  # copies are <name>_<suffix>
        return url

    def drop(self, url: str) -> None:
        """Remove one copy now (keeps the disk and the server tidy between repeats)."""
        if self.dialect == "sqlite":
            path = url[len("sqlite:///"):]
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(path + suffix)
                except FileNotFoundError:
                    pass
            return
        name = urlsplit(url).path.lstrip("/")
        self._pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.pg_names:
            self.pg_names.remove(name)

    def cleanup(self) -> None:
        for path in self.sqlite_created:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(path + suffix)
                except FileNotFoundError:
                    pass
        super().cleanup()


def dialect_of(url: str | None, db: str) -> str:
    if url is None:
        return db
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return "sqlite"
    raise SystemExit(f"--database-url must be sqlite:///FILE or postgresql://…, not {url}")


@contextmanager
def url_databases(dialect: str, tag: str):
    dbs = UrlDatabases(dialect, tag)
    try:
        yield dbs
    finally:
        dbs.cleanup()


def copy_database(dbs: UrlDatabases, template_url: str, suffix: str) -> str:
    """A fresh copy of ``template_url`` (SQLite: checkpoint the WAL first, then copy the file)."""
    if dbs.dialect == "sqlite":
        conn = sqlite3.connect(template_url[len("sqlite:///"):])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        name = f"{dbs.tag}_{suffix}"
        target = os.path.join(dbs.tmp, name + ".db")
        shutil.copyfile(template_url[len("sqlite:///"):], target)
        return f"sqlite:///{target}"
    return dbs.copy(template_url, suffix)


# --- the city -------------------------------------------------------------------------


def zone_grid(rows: int, cols: int, edge_points: int, rng: np.random.Generator):
    """Polygons of a rows × cols grid (row-major, south to north, west to east) with shared,
    jittered edges, and every shared vertex (lon, lat)."""
    import shapely

    dlat = SIDE_M / M_PER_DEG_LAT / rows
    dlon = SIDE_M / (M_PER_DEG_LAT * math.cos(math.radians(CENTRE_LAT))) / cols
    lat0, lon0 = CENTRE_LAT - rows * dlat / 2, CENTRE_LON - cols * dlon / 2
    lat = lat0 + np.arange(rows + 1)[:, None] * dlat + rng.uniform(-0.2, 0.2, (rows + 1, cols + 1)) * dlat
    lon = lon0 + np.arange(cols + 1)[None, :] * dlon + rng.uniform(-0.2, 0.2, (rows + 1, cols + 1)) * dlon
    lattice = np.round(np.stack([lon, lat], axis=-1), 7)  # stored GeoJSON keeps 7 decimals

    def between(a, b, along_lat: bool) -> np.ndarray:
        t = (np.arange(1, edge_points + 1) / (edge_points + 1))[:, None]
        pts = a + t * (b - a)
        if along_lat:
            pts[:, 0] += rng.uniform(-0.08, 0.08, edge_points) * dlon
        else:
            pts[:, 1] += rng.uniform(-0.08, 0.08, edge_points) * dlat
        return np.round(pts, 7)

    horizontal = {(r, c): between(lattice[r, c], lattice[r, c + 1], False)
                  for r in range(rows + 1) for c in range(cols)}
    vertical = {(r, c): between(lattice[r, c], lattice[r + 1, c], True) for r in range(rows) for c in range(cols + 1)}
    polygons = []
    for r in range(rows):
        for c in range(cols):
            ring = np.concatenate([lattice[r, c][None], horizontal[(r, c)], lattice[r, c + 1][None],
                                   vertical[(r, c + 1)], lattice[r + 1, c + 1][None], horizontal[(r + 1, c)][::-1],
                                   lattice[r + 1, c][None], vertical[(r, c)][::-1]])
            polygons.append(shapely.Polygon(ring))
    shared = np.concatenate([lattice.reshape(-1, 2)] + list(horizontal.values()) + list(vertical.values()))
    return polygons, shared


def geojson(geom) -> dict:
    from shapely.geometry import mapping

    return json.loads(json.dumps(mapping(geom)))  # tuples → lists


def build_city(url: str, rows: int, cols: int, block: int, *, edge_points: int = 2, seed: int = 1,
               progress: bool = True) -> dict:
    """Migrate ``url`` and build the zoned city through the services; returns facts about it."""
    import shapely
    from flask_migrate import upgrade

    from crm.actors import CLI, set_actor
    from crm.extensions import db
    from crm.users import services as users
    from territories import services
    from territories.models import Zone

    rng = np.random.default_rng(seed)
    polygons, shared = zone_grid(rows, cols, edge_points, rng)
    t_rows, t_cols = math.ceil(rows / block), math.ceil(cols / block)
    n_territories = t_rows * t_cols
    n_supervisors = math.ceil(n_territories / TERRITORIES_PER_SUPERVISOR)

    app = common.make_app(url)
    with app.app_context():
        upgrade()
        logging.getLogger("alembic").setLevel(logging.WARNING)
        set_actor(CLI)
        head, _ = users.create_user(None, login="head", name="Ирина Соколова", role="sales_head",
                                    password="bench", must_change_password=False)
        supervisors, agents = [], {}
        for s in range(1, n_supervisors + 1):
            sup, _ = users.create_user(None, login=f"sup{s}", name=f"Супервайзер {s}", role="supervisor",
                                       manager=head, password="bench", must_change_password=False)
            supervisors.append(sup)
            agents[sup.id] = [users.create_user(None, login=f"agent{s}_{a}", name=f"Агент {s}.{a}", role="agent",
                                                manager=sup, password="bench", must_change_password=False)[0]
                              for a in range(1, AGENTS_PER_SUPERVISOR + 1)]
        db.session.commit()
        done = 0
        for tr in range(t_rows):
            for tc in range(t_cols):
                cells = [(r, c) for r in range(tr * block, min(rows, (tr + 1) * block))
                         for c in range(tc * block, min(cols, (tc + 1) * block))]
                k = tr * t_cols + tc
                sup = supervisors[k // TERRITORIES_PER_SUPERVISOR]
                union = shapely.union_all([polygons[r * cols + c] for r, c in cells])
                territory = services.save_territory(None, name=f"Территория {k + 1}", geometry_json=geojson(union),
                                                    supervisor=sup, region=head).polygon
                for i, (r, c) in enumerate(cells):
                    services.save_zone(None, name=f"Зона {k + 1}.{i + 1}", territory=territory,
                                       geometry_json=geojson(polygons[r * cols + c]),
                                       agent=agents[sup.id][i % AGENTS_PER_SUPERVISOR])
                    done += 1
                db.session.commit()
                if progress:
                    print(f"\r  zones {done:,}/{rows * cols:,}", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        zone_count = db.session.query(Zone).count()
        head_id = head.id
    common.dispose(app)
    return {"zones": zone_count, "territories": n_territories, "supervisors": n_supervisors,
            "agents": n_supervisors * AGENTS_PER_SUPERVISOR, "head_id": head_id, "shared": shared,
            "bounds": shapely.total_bounds(polygons)}


def stored_zones(url: str):
    """(zone ids, shapely polygons, zone id → territory id) exactly as stored."""
    import shapely
    from sqlalchemy import select

    from crm.extensions import db
    from territories.models import Zone

    app = common.make_app(url)
    with app.app_context():
        rows = db.session.execute(select(Zone.id, Zone.geometry, Zone.territory_id)
                                  .where(Zone.retired_at.is_(None)).order_by(Zone.id)).all()
    common.dispose(app)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    geoms = shapely.from_geojson([r[1] for r in rows])
    return ids, geoms, {r[0]: r[2] for r in rows}


# --- buildings --------------------------------------------------------------------------


def building_points(n: int, bounds, shared: np.ndarray, rng: np.random.Generator, ties: float = 0.01):
    """Random points over an area 10 % wider than the grid (so ~17 % fall in no zone),
    ``ties`` of them exactly on shared zone vertices; rounded to 6 decimals (~10 cm) like a
    real feed, the tie points keep the vertices' 7."""
    xmin, ymin, xmax, ymax = bounds
    padx, pady = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
    lons = np.round(rng.uniform(xmin - padx, xmax + padx, n), 6)
    lats = np.round(rng.uniform(ymin - pady, ymax + pady, n), 6)
    tie_idx = rng.choice(n, size=int(n * ties), replace=False)
    picked = shared[rng.integers(0, len(shared), len(tie_idx))]
    lons[tie_idx], lats[tie_idx] = picked[:, 0], picked[:, 1]
    return lats, lons, tie_idx


def building_features(lats, lons, rng: np.random.Generator, prefix: str = "NS") -> list[dict]:
    """GeoJSON Point features with a network system's properties."""
    import random

    r = random.Random(int(rng.integers(0, 2**31)))
    used: set[tuple[str, int, int]] = set()
    start = datetime(2019, 1, 1)
    features = []
    for i, (lat, lon) in enumerate(zip(lats.tolist(), lons.tolist()), 1):
        for _attempt in range(50):  # distinct addresses while there are plenty left
            street, number, korpus = r.choice(STREETS), r.randint(1, 999), r.choice([0, 0, 0, 0, 1, 2, 3, 4, 5])
            if (street, number, korpus) not in used:
                break
        used.add((street, number, korpus))
        floors = r.choice([5, 5, 5, 9, 9, 10, 12, 14, 16, 17, 20, 25])
        entrances = r.randint(1, 8 if floors <= 10 else 4)
        apartments = entrances * floors * r.choice([3, 4, 4, 4, 5, 6, 8])
        day = start + timedelta(days=r.randint(0, 7 * 365))
        if r.random() < 0.1:  # some feeds give the moment, with its offset
            connected = (day + timedelta(hours=r.randint(8, 19), minutes=r.randint(0, 59))).replace(
                tzinfo=timezone(timedelta(hours=5))).isoformat()
        else:
            connected = day.date().isoformat()
        props = {"external_id": f"{prefix}-{i:07d}",
                 "address": f"Екатеринбург, {street}, {number}" + (f" к{korpus}" if korpus else ""),
                 "apartments": apartments, "entrances": entrances, "floors": floors, "connected_at": connected}
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                         "properties": props})
    return features


def write_feature_collection(path: str, features: list[dict]) -> int:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"type": "FeatureCollection", "features": features}, fh, ensure_ascii=False)
    return os.path.getsize(path)

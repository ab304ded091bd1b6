"""Importing 100,000 buildings into a zoned city: ``flask territories import-buildings FILE`` against a floor.

    .venv/bin/python bench/import_buildings.py [--db sqlite|postgresql | --database-url URL]
        [--buildings 100000] [--rows 40 --cols 50 --block 10] [--repeat 3] [--seed 1]
        [--subprocess] [--profile]

Set-up (not measured): a migrated database with one sales head, a supervisor per two
territories, five agents per supervisor, and a ``rows`` × ``cols`` grid of zones (2,000
by default) in territories of ``block`` × ``block`` zones, all through
``territories.services.save_territory`` / ``save_zone`` (see ``_territories.py``); then a
GeoJSON FeatureCollection of ``--buildings`` Points with a network system's properties
(external_id, address, apartments, entrances, floors, connected_at) spread over an area
10 % wider than the grid, 1 % of them exactly on shared zone vertices (ties).

Timed, on fresh copies of that database, interleaved, best of ``--repeat``:

(a) import: ``flask territories import-buildings FILE`` run in-process through the app's
    CLI (``create_app(...)`` then ``app.test_cli_runner().invoke(...)``; creating the app
    is not timed, everything the command does is);
(b) floor: ``json.load`` of the same file, ``shapely.points``, ``STRtree(zones).query(points,
    predicate="intersects")`` (lowest zone id on ties with ``np.minimum.at``; zones as
    stored, read before timing), the rows built with the same values (connected_at turned
    into UTC through a cache, as the parser does), and one ``executemany`` INSERT of all
    of them into a scratch table of the same shape (columns, constraints, indexes, foreign
    keys) with the raw driver (sqlite3 / psycopg), one transaction.

Target: a/b ≤ 4. Checked afterwards: 100,000 rows, the command's report line, and a
sample of 1,000 buildings (100 of them ties): the zone the floor's STRtree gives (lowest
id on ties), its territory, and every other column equal to the floor's row.

``--subprocess`` also times the real ``flask --app app territories import-buildings FILE``
as a subprocess (wall time, interpreter and app start-up included) on another copy.
``--profile`` adds, on more copies, the command's stages timed without a profiler and a
cProfile run grouped by stage, with the top functions.

``--database-url``: ``sqlite:///FILE`` or ``postgresql://postgres@127.0.0.1:5432/NAME``; an
existing database must be empty and is left for its owner to drop, a missing one is
created and dropped at the end. Copies are ``NAME_<suffix>`` and are always dropped.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import shapely

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import _territories as tt  # noqa: E402

TARGET = 4.0
SAMPLE = 1_000
SCRATCH = "bench_floor_buildings"
COLUMNS = ("external_id", "address", "lat", "lon", "footprint", "apartments", "entrances", "floors", "connected_at",
           "created_at", "updated_at", "territory_id", "zone_id")
_NO_ID = np.iinfo(np.int64).max


# --- (b) the floor --------------------------------------------------------------------


def create_scratch(dbs, conn) -> None:
    """A table shaped like ``buildings``: same columns and types, checks, unique external_id,
    indexes and foreign keys (not timed)."""
    cur = conn.cursor()
    if dbs.dialect == "sqlite":
        ddl = [row[0] for row in cur.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'buildings' AND sql IS NOT NULL "
            "ORDER BY type = 'table' DESC")]
        for statement in ddl:
            cur.execute(statement.replace("buildings", SCRATCH))
    else:
        cur.execute(f"CREATE TABLE {SCRATCH} (LIKE buildings INCLUDING ALL)")
        cur.execute(f"CREATE SEQUENCE {SCRATCH}_id_seq OWNED BY {SCRATCH}.id")
        cur.execute(f"ALTER TABLE {SCRATCH} ALTER COLUMN id SET DEFAULT nextval('{SCRATCH}_id_seq')")
        cur.execute(f"ALTER TABLE {SCRATCH} ADD FOREIGN KEY (territory_id) REFERENCES territories (id)")
        cur.execute(f"ALTER TABLE {SCRATCH} ADD FOREIGN KEY (zone_id) REFERENCES zones (id)")
        conn.commit()


def run_floor(dbs, url: str, path: str, zones) -> dict:
    zone_ids, zone_geoms, zone_territory = zones
    dialect = dbs.dialect
    to_db = common.sqlite_dt if dialect == "sqlite" else common.pg_dt
    tz = common.COMPANY_TZ
    lookup = np.zeros(int(zone_ids.max()) + 1, dtype=np.int64)
    for zid, tid in zone_territory.items():
        lookup[zid] = tid
    now_db = to_db(common.T0)
    sql = common.insert_sql(dialect, SCRATCH, COLUMNS)
    conn = dbs.raw_connect(url)
    create_scratch(dbs, conn)
    cur = conn.cursor()
    gc.collect()

    started = time.perf_counter()
    with open(path, "rb") as fh:
        features = json.load(fh)["features"]
    n = len(features)
    coordinates = [f["geometry"]["coordinates"] for f in features]
    lons = np.fromiter((c[0] for c in coordinates), dtype=float, count=n)
    lats = np.fromiter((c[1] for c in coordinates), dtype=float, count=n)
    t_load = time.perf_counter()

    point_i, tree_i = shapely.STRtree(zone_geoms).query(shapely.points(lons, lats), predicate="intersects")
    zone = np.full(n, _NO_ID, dtype=np.int64)
    np.minimum.at(zone, point_i, zone_ids[tree_i])
    zone[zone == _NO_ID] = 0
    territory = lookup[zone]
    t_query = time.perf_counter()

    cache: dict[str, object] = {}
    rows = []
    for f, lat, lon, z, t in zip(features, lats.tolist(), lons.tolist(), zone.tolist(), territory.tolist()):
        p = f["properties"]
        raw = p["connected_at"]
        connected = cache.get(raw)
        if connected is None:
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            connected = cache[raw] = to_db(moment.astimezone(UTC))
        rows.append((p["external_id"], p["address"], lat, lon, None, p["apartments"], p["entrances"], p["floors"],
                     connected, now_db, None, t or None, z or None))
    t_rows = time.perf_counter()

    common.begin(dialect, cur)
    cur.executemany(sql, rows)
    common.commit(dialect, conn, cur)
    finished = time.perf_counter()
    conn.close()
    return {"seconds": finished - started, "load": t_load - started, "query": t_query - t_load,
            "rows": t_rows - t_query, "insert": finished - t_rows, "zone": zone, "pairs": len(point_i),
            "tied": int((np.bincount(point_i, minlength=n) > 1).sum())}


# --- (a) the command ------------------------------------------------------------------


def run_import(url: str, path: str) -> dict:
    from sqlalchemy import event as sa_event

    from crm.extensions import db

    app = common.make_app(url)
    statements = [0]
    with app.app_context():
        sa_event.listen(db.engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
    runner = app.test_cli_runner()
    gc.collect()
    started = time.perf_counter()
    result = runner.invoke(args=["territories", "import-buildings", path])
    elapsed = time.perf_counter() - started
    common.dispose(app)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return {"seconds": elapsed, "exit": result.exit_code, "output": result.output.strip(),
            "statements": statements[0]}


def run_subprocess(url: str, path: str) -> tuple[float, int, str]:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    command = [flask] if os.path.exists(flask) else [sys.executable, "-m", "flask"]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret"}
    started = time.perf_counter()
    proc = subprocess.run(command + ["--app", "app", "territories", "import-buildings", path], cwd=common.ROOT,
                          env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, proc.returncode, (proc.stdout + proc.stderr).strip()


def startup_only() -> float:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    command = [flask] if os.path.exists(flask) else [sys.executable, "-m", "flask"]
    started = time.perf_counter()
    subprocess.run(command + ["--app", "app", "territories", "--help"], cwd=common.ROOT, capture_output=True,
                   check=False)
    return time.perf_counter() - started


# --- checks -----------------------------------------------------------------------------


CHECKED = ("external_id", "address", "lat", "lon", "footprint", "apartments", "entrances", "floors", "connected_at",
           "created_at", "updated_at", "territory_id", "zone_id")


def fetch_rows(dbs, url: str, table: str, external_ids: list[str]) -> dict[str, tuple]:
    conn = dbs.raw_connect(url)
    mark = "?" if dbs.dialect == "sqlite" else "%s"
    out = {}
    try:
        cur = conn.cursor()
        for start in range(0, len(external_ids), 500):
            chunk = external_ids[start:start + 500]
            cur.execute(f"SELECT {', '.join(CHECKED)} FROM {table} WHERE external_id IN "
                        f"({', '.join([mark] * len(chunk))})", chunk)
            for row in cur.fetchall():
                out[row[0]] = tuple(row)
        if dbs.dialect == "postgresql":
            conn.rollback()
    finally:
        conn.close()
    return out


def scalar(dbs, url: str, sql: str):
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        conn.close()


# --- the breakdown ----------------------------------------------------------------------

#: (label, module, function) wrapped with a timer for the stage breakdown
STAGES = [
    ("read the file", "territories.cli", "_read"),
    ("parse (decode + json + records)", "territories.importfile", "parse_buildings"),
    ("  json.loads", "territories.importfile", "_load_json"),
    ("import_buildings", "territories.importer", "import_buildings"),
    ("  _existing (lookup by external_id)", "territories.importer", "_existing"),
    ("  locate (polygons + 2 × assign_points)", "territories.services", "locate"),
    ("    active_polygons (load + parse)", "territories.services", "active_polygons"),
    ("    assign_points", "territories.geometry", "assign_points"),
    ("  audit record", "territories.importer", "record"),
    ("  notify_arrivals", "territories.services", "notify_arrivals"),
    ("report lines", "territories.cli", "_report"),
]


def stage_breakdown(url: str, path: str) -> tuple[float, list[tuple[str, float, int]], dict]:
    """Run the command once with timers around its stages and around every SQL statement."""
    import importlib

    from sqlalchemy import event as sa_event

    from crm.extensions import db

    totals = {label: [0.0, 0] for label, _m, _f in STAGES}
    originals = []
    for label, module_name, name in STAGES:
        module = importlib.import_module(module_name)
        fn = getattr(module, name)
        originals.append((module, name, fn))

        def timed(*args, __fn=fn, __label=label, **kwargs):
            t = time.perf_counter()
            try:
                return __fn(*args, **kwargs)
            finally:
                totals[__label][0] += time.perf_counter() - t
                totals[__label][1] += 1

        setattr(module, name, timed)
    sql = {"INSERT": [0.0, 0], "SELECT": [0.0, 0], "other": [0.0, 0]}
    # the buildings INSERT as the importer issues it: SQLAlchemy's compile + parameter processing + the driver
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.dml import Insert

    session_execute = Session.execute
    insert_total = [0.0, 0]

    def execute(self, statement, *args, **kwargs):
        if not isinstance(statement, Insert) or statement.table.name != "buildings":
            return session_execute(self, statement, *args, **kwargs)
        t = time.perf_counter()
        try:
            return session_execute(self, statement, *args, **kwargs)
        finally:
            insert_total[0] += time.perf_counter() - t
            insert_total[1] += 1

    Session.execute = execute
    app = common.make_app(url)
    with app.app_context():
        engine = db.engine

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["bench_t"] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):
            verb = statement.lstrip().split(None, 1)[0].upper()
            slot = sql[verb if verb in sql else "other"]
            slot[0] += time.perf_counter() - conn.info.pop("bench_t")
            slot[1] += 1

        sa_event.listen(engine, "before_cursor_execute", before)
        sa_event.listen(engine, "after_cursor_execute", after)
    runner = app.test_cli_runner()
    collections = {"t": 0.0, "seconds": [0.0, 0.0, 0.0], "count": [0, 0, 0]}

    def on_gc(phase, info):
        if phase == "start":
            collections["t"] = time.perf_counter()
        else:
            collections["seconds"][info["generation"]] += time.perf_counter() - collections["t"]
            collections["count"][info["generation"]] += 1

    try:
        gc.collect()
        gc.callbacks.append(on_gc)
        t = time.perf_counter()
        runner.invoke(args=["territories", "import-buildings", path])
        total = time.perf_counter() - t
    finally:
        gc.callbacks.remove(on_gc)
        for module, name, fn in originals:
            setattr(module, name, fn)
        Session.execute = session_execute
        common.dispose(app)
    sql["gc"] = collections
    stages = [(label, *totals[label]) for label, _m, _f in STAGES]
    at = next(i for i, (label, _s, _c) in enumerate(stages) if label.startswith("  audit"))
    stages.insert(at, ("  session.execute(insert(buildings), rows)", *insert_total))
    return total, stages, sql


def profile_import(url: str, path: str, top: int = 25) -> None:
    app = common.make_app(url)
    runner = app.test_cli_runner()
    profiler = cProfile.Profile()
    gc.collect()
    t = time.perf_counter()
    profiler.enable()
    runner.invoke(args=["territories", "import-buildings", path])
    profiler.disable()
    total = time.perf_counter() - t
    common.dispose(app)
    stats = pstats.Stats(profiler)
    print(f"cProfile of the command: {total:.2f} s under the profiler "
          f"(profiler overhead inflates Python-heavy parts)")
    # cumulative time of chosen functions
    wanted = [("importfile.py", "parse_buildings"), ("importfile.py", "_load_json"),
              ("importfile.py", "parse_buildings_json"), ("importfile.py", "_building_fields"),
              ("importer.py", "import_buildings"), ("importer.py", "_existing"), ("services.py", "locate"),
              ("geometry.py", "assign_points"), ("services.py", "active_polygons"), ("geometry.py", "parse_polygon"),
              ("session.py", "execute"), ("default.py", "do_executemany"), ("default.py", "do_execute"),
              ("type_api.py", "process"), ("types.py", "process_bind_param"), ("audit/services.py", "record"),
              ("services.py", "notify_arrivals"), ("session.py", "flush"), ("session.py", "commit"),
              ("cli.py", "_report")]
    by_key = {}
    for (filename, _line, func), (cc, nc, tt_, ct, _callers) in stats.stats.items():
        for suffix, name in wanted:
            if func == name and filename.endswith(suffix):
                entry = by_key.setdefault((suffix, name), [0, 0.0, 0.0])
                entry[0] += nc
                entry[1] += tt_
                entry[2] += ct
    print("  cumulative time of the command's parts:")
    for suffix, name in wanted:
        if (suffix, name) in by_key:
            calls, own, cum = by_key[(suffix, name)]
            label = f"{suffix}:{name}"
            print(f"    {label:<40} {cum:7.3f} s cumulative  {own:7.3f} s own  {calls:>9,} calls")
    print(f"  top {top} functions by own time:")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (filename, line, func), (cc, nc, own, cum, _callers) in rows:
        short = filename.replace(common.ROOT + "/", "").replace(sys.prefix + "/", "")
        if "site-packages/" in short:
            short = short.split("site-packages/", 1)[1]
        print(f"    {own:7.3f} s own  {cum:7.3f} s cum  {nc:>9,}  {short}:{line}({func})")


# --- main -------------------------------------------------------------------------------


def runs(results: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.2f}" for r in results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="sqlite:///FILE or postgresql://…/NAME (new or empty)")
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--block", type=int, default=10, help="zones per territory side")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subprocess", action="store_true", help="also time the CLI as a subprocess")
    parser.add_argument("--profile", action="store_true", help="stage timings and a cProfile run of the command")
    args = parser.parse_args(argv)
    dialect = tt.dialect_of(args.database_url, args.db)

    with tt.url_databases(dialect, "import") as dbs:
        t = time.perf_counter()
        base = dbs.base(args.database_url)
        facts = tt.build_city(base, args.rows, args.cols, args.block, seed=args.seed)
        zones = tt.stored_zones(base)
        rng = np.random.default_rng(args.seed + 1)
        lats, lons, ties = tt.building_points(args.buildings, facts["bounds"], facts["shared"], rng)
        path = os.path.join(dbs.tmp, "buildings.geojson")
        size = tt.write_feature_collection(path, tt.building_features(lats, lons, rng))
        setup = time.perf_counter() - t
        vertices = int(np.median(shapely.get_num_coordinates(zones[1]))) - 1
        print(f"import_buildings on {dialect}: {args.buildings:,} buildings ({size / 1e6:.1f} MB GeoJSON, "
              f"{len(ties):,} on shared zone vertices) into {facts['zones']:,} zones of {vertices} vertices in "
              f"{facts['territories']} territories ({facts['supervisors']} supervisors, {facts['agents']} agents); "
              f"set-up {setup:.1f} s, not measured; code {common.revision()}; {common.load()}")

        floors, imports, first = [], [], None
        for k in range(args.repeat):
            floor_url = tt.copy_database(dbs, base, f"floor{k}")
            floors.append(run_floor(dbs, floor_url, path, zones))
            import_url = tt.copy_database(dbs, base, f"import{k}")
            imports.append(run_import(import_url, path))
            if first is None:
                first = (floor_url, import_url)
            else:
                dbs.drop(floor_url)
                dbs.drop(import_url)

        floor_url, import_url = first
        fb = min(floors, key=lambda r: r["seconds"])
        ia = min(imports, key=lambda r: r["seconds"])
        n = args.buildings
        print(f"(a) import-buildings (in-process CLI): {ia['seconds']:7.2f} s  {common.rate(n, ia['seconds'])} "
              f"buildings/s  ({runs(imports)} s; "
              f"{ia['statements']} SQL statements)")
        print(f"    output: {imports[0]['output'].splitlines()[0] if imports[0]['output'] else '(none)'} "
              f"(exit {imports[0]['exit']})")
        print(f"(b) floor, raw {'sqlite3' if dialect == 'sqlite' else 'psycopg'}:          {fb['seconds']:7.2f} s  "
              f"{common.rate(n, fb['seconds'])} buildings/s  ({runs(floors)} s)")
        print(f"    json.load {fb['load']:.2f} s, points + STRtree query {fb['query']:.2f} s, rows {fb['rows']:.2f} s, "
              f"executemany INSERT + commit {fb['insert']:.2f} s; {fb['pairs']:,} pairs, {fb['tied']:,} buildings in "
              f"more than one zone")
        ratio = ia["seconds"] / fb["seconds"]
        print(f"ratio a/b: {ratio:.2f} (target <= {TARGET:g}: {'met' if ratio <= TARGET else 'MISSED'})")

        # checks on the first import and floor copies
        count = scalar(dbs, import_url, "SELECT count(*) FROM buildings")
        zoned = scalar(dbs, import_url, "SELECT count(*) FROM buildings WHERE zone_id IS NOT NULL")
        floor_zone = floors[0]["zone"]
        plain = np.setdiff1d(np.arange(n), ties)
        sample = np.concatenate([ties[:100], rng.choice(plain, size=min(SAMPLE - len(ties[:100]), len(plain)),
                                                        replace=False)])
        ext = [f"NS-{i + 1:07d}" for i in sample.tolist()]
        imported = fetch_rows(dbs, import_url, "buildings", ext)
        floor_rows = fetch_rows(dbs, floor_url, SCRATCH, ext)
        zone_col = CHECKED.index("zone_id")
        wrong_zone = sum(1 for i, e in zip(sample.tolist(), ext)
                         if e not in imported or (imported[e][zone_col] or 0) != int(floor_zone[i]))
        wrong_row = sum(1 for e in ext if imported.get(e) != floor_rows.get(e))
        sample_ties = int(np.isin(sample, ties).sum())
        report_ok = bool(imports[0]["output"]) and imports[0]["output"].splitlines()[0] == \
            f"imported {n}, updated 0, unchanged 0, rejected 0"
        print(f"check: {count:,} rows in buildings ({'ok' if count == n else 'WRONG'}), {zoned:,} in a zone "
              f"(floor: {int((floor_zone > 0).sum()):,}); report line {'ok' if report_ok else 'WRONG'}")
        print(f"check: {len(sample):,} sampled buildings ({sample_ties} on shared vertices): zone = the floor's "
              f"STRtree (lowest id): {'all agree' if not wrong_zone else f'{wrong_zone} DISAGREE'}; "
              f"whole row = the floor's row: {'all agree' if not wrong_row else f'{wrong_row} DIFFER'}")
        ok = count == n and report_ok and not wrong_zone and not wrong_row and all(r["exit"] == 0 for r in imports)
        dbs.drop(floor_url)
        dbs.drop(import_url)

        if args.subprocess:
            sub_url = tt.copy_database(dbs, base, "subprocess")
            start = startup_only()
            wall, rc, out = run_subprocess(sub_url, path)
            print(f"flask --app app territories import-buildings (subprocess): {wall:6.2f} s wall, exit {rc}: "
                  f"{out.splitlines()[0] if out else ''}; start-up alone (territories --help) {start:.2f} s")
            ok = ok and rc == 0
            dbs.drop(sub_url)

        if args.profile:
            stage_url = tt.copy_database(dbs, base, "stages")
            total, stages, sql = stage_breakdown(stage_url, path)
            dbs.drop(stage_url)
            print(f"stages of one run ({total:.2f} s, timers only):")
            for label, seconds, calls in stages:
                print(f"    {label:<42} {seconds:7.3f} s  {seconds / total:6.1%}  ({calls} calls)")
            top = sum(seconds for label, seconds, _c in stages if not label.startswith(" "))
            print(f"    {'the rest (commit, app context, click)':<42} {total - top:7.3f} s  {(total - top) / total:6.1%}")
            print("  of which in the driver (cursor.execute/executemany, all stages):")
            collections = sql.pop("gc")
            for verb, (seconds, calls) in sql.items():
                print(f"    SQL {verb:<38} {seconds:7.3f} s  {seconds / total:6.1%}  ({calls} statements)")
            spent = collections["seconds"]
            print(f"  and in the garbage collector (all stages): {sum(spent):.3f} s  {sum(spent) / total:6.1%}  ("
                  f"{', '.join(f'gen{g} {n:,}× {spent[g]:.3f} s' for g, n in enumerate(collections['count']))})")
            prof_url = tt.copy_database(dbs, base, "profile")
            profile_import(prof_url, path)
            dbs.drop(prof_url)
        print(f"at the end: {common.load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

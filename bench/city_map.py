"""The sales head's city map: server time of the page and its two JSON feeds, and the bytes it loads.

    .venv/bin/python bench/city_map.py [--db sqlite|postgresql | --database-url URL]
        [--buildings 50000] [--rows 20 --cols 25 --block 5] [--contracts 10000] [--repeat 5] [--seed 1]
        [--profile]

Set-up (not measured): a migrated database with the zoned city of ``_territories.py`` —
one sales head, a supervisor per two territories, five agents per supervisor walking the
zones, ``rows`` × ``cols`` zones (500 by default) in territories of ``block`` × ``block``
zones — then ``--buildings`` buildings imported through ``territories.importer`` (so their
territory and zone are the app's own), spread over an area 10 % wider than the grid (the
ones outside every territory are the sales head's queue), and ``--contracts`` signed
contracts inserted raw (some buildings in work, a few small ones done) so that building
statuses and zone figures have something to count.

Timed with the Flask test client signed in as the sales head (``POST /login`` with the
CSRF token): ``GET /map``, ``GET /api/v1/map/polygons``, ``GET /api/v1/map/buildings``, one
warm-up each, then best of ``--repeat`` in interleaved rounds. Target: the three bests
sum to ≤ 500 ms.

Bytes: the HTML, the two JSON payloads and every ``/vendor`` and ``/static`` script and
stylesheet the HTML references (fetched with the test client), as served (the app does
not compress; gzip sizes are printed for reference). Target: ≤ 3 MB.

``--profile`` adds the SQL time and statement count of each request and a cProfile run
of each, with the top functions.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import math
import os
import pstats
import re
import sys
import time
from datetime import timedelta

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import _territories as tt  # noqa: E402

TARGET_MS = 500.0
TARGET_BYTES = 3_000_000
PAGES = [("GET /map", "/map"), ("GET /api/v1/map/polygons", "/api/v1/map/polygons"),
         ("GET /api/v1/map/buildings", "/api/v1/map/buildings")]
ASSET_RE = re.compile(r"""<script\b[^>]*\bsrc=["']([^"']+)["']|<link\b[^>]*\bhref=["']([^"']+)["'][^>]*>""",
                      re.IGNORECASE)
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


# --- set-up -----------------------------------------------------------------------------


def add_buildings(url: str, lats, lons, rng) -> None:
    """Import the buildings through the app's importer (set-up)."""
    from crm.actors import CLI, set_actor
    from crm.extensions import db
    from territories import importer, importfile

    features = tt.building_features(lats, lons, rng)
    app = common.make_app(url)
    with app.app_context():
        set_actor(CLI)
        records, rejections = importfile.parse_buildings_json({"type": "FeatureCollection", "features": features},
                                                              tz=common.COMPANY_TZ)
        assert not rejections, rejections[:3]
        importer.import_buildings(records, rejections, source="bench")
        db.session.commit()
    common.dispose(app)


def add_contracts(dbs, url: str, n: int, rng: np.random.Generator) -> dict:
    """A catalogue, a rate version and ``n`` signed contracts, raw (set-up): most buildings that
    have one get 1–6 flats signed (in work); a few of the smallest get every flat (done)."""
    from sqlalchemy import select

    from crm.actors import CLI, set_actor
    from crm.catalogue import services as catalogue
    from crm.catalogue.models import Tariff
    from crm.extensions import db
    from crm.ledger import services as ledger
    from crm.ledger.models import RateVersion
    from crm.users.models import User
    from territories.models import Building, ZoneAssignment

    app = common.make_app(url)
    with app.app_context():
        set_actor(CLI)
        for code, name, kind, fee, speed, addon in common.TARIFFS:
            catalogue.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee, speed_mbit=speed,
                                 is_addon=addon)
        ledger.add_rate_version(None, {**common.RATES, "effective_from": common.T0.isoformat()})
        db.session.commit()
        tariff = db.session.scalar(select(Tariff).where(Tariff.code == "net100"))
        rate_version_id = db.session.scalar(select(RateVersion.id))
        buildings = db.session.execute(select(Building.id, Building.apartments, Building.zone_id)
                                       .where(Building.zone_id.is_not(None)).order_by(Building.id)).all()
        walker = dict(db.session.execute(select(ZoneAssignment.zone_id, ZoneAssignment.agent_id)).all())
        manager = dict(db.session.execute(select(User.id, User.manager_id)).all())
    common.dispose(app)

    contracts = []
    smallest = sorted(buildings, key=lambda b: (b[1], b[0]))
    done_ids = set()
    budget_done = n // 5
    for bid, apartments, zone_id in smallest:
        if len(contracts) + apartments > budget_done:
            break
        done_ids.add(bid)
        for flat in range(1, apartments + 1):
            contracts.append((bid, flat, zone_id))
    order = rng.permutation(len(buildings))
    for i in order:
        if len(contracts) >= n:
            break
        bid, apartments, zone_id = buildings[int(i)]
        if bid in done_ids:
            continue
        for flat in rng.choice(np.arange(1, apartments + 1), size=min(apartments, int(rng.integers(1, 7))),
                               replace=False).tolist():
            contracts.append((bid, flat, zone_id))
    contracts = contracts[:n]
    rows = []
    for k, (bid, flat, zone_id) in enumerate(contracts, 1):
        agent = walker[zone_id]
        at = common.T0 - timedelta(days=int(rng.integers(1, 300)), seconds=int(rng.integers(0, 86400)))
        rows.append({"id": k, "number": f"D-{at.year}-{k:06d}", "agent_id": agent, "supervisor_id": manager[agent],
                     "building_id": bid, "flat": flat, "tariff_id": tariff.id, "monthly_fee": tariff.monthly_fee,
                     "at": at, "rate_version_id": rate_version_id})
    if rows:
        common.insert_contracts(dbs, url, rows)
    return {"contracts": len(rows), "done": len(done_ids),
            "in_work": len({bid for bid, _f, _z in contracts} - done_ids)}


def vacuum(dbs, url: str) -> None:
    """PostgreSQL: VACUUM ANALYZE after the bulk loads (what autovacuum does within a minute or so).
    SQLite: only a WAL checkpoint; the app never runs ANALYZE, so neither does the bench."""
    conn = dbs.raw_connect(url)
    try:
        if dbs.dialect == "sqlite":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
    finally:
        conn.close()


# --- measuring --------------------------------------------------------------------------


def sign_in(client, login: str, password: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    match = TOKEN_RE.search(html)
    assert match, "no CSRF token on /login"
    response = client.post("/login", data={"login": login, "password": password,
                                           "csrf_token": match.group(1) or match.group(2)})
    assert response.status_code == 302, f"sign-in failed: {response.status_code}"


def get(client, path: str):
    response = client.get(path)
    data = response.get_data()
    assert response.status_code == 200, f"{path}: {response.status_code}"
    return response, data


def best_of(client, repeat: int) -> list[tuple[float, list[float], bytes, str]]:
    """One warm-up each, then ``repeat`` rounds of the three requests."""
    bodies = {path: get(client, path) for _label, path in PAGES}
    times = {path: [] for _label, path in PAGES}
    for _ in range(repeat):
        for _label, path in PAGES:
            gc.collect()
            t = time.perf_counter()
            response, data = get(client, path)
            times[path].append(time.perf_counter() - t)
            bodies[path] = (response, data)
    return [(min(times[path]), times[path], bodies[path][1], bodies[path][0].mimetype) for _label, path in PAGES]


def assets_of(html: str) -> list[str]:
    """The /vendor and /static scripts and stylesheets the page references, in order."""
    urls = []
    for match in ASSET_RE.finditer(html):
        src, href = match.group(1), match.group(2)
        if href is not None:
            tag = match.group(0).lower()
            if "stylesheet" not in tag:
                continue
            url = href
        else:
            url = src
        url = url.replace("&amp;", "&")
        if url.startswith(("/vendor/", "/static/")) and url not in urls:
            urls.append(url)
    return urls


def best_ms(fn, repeat: int = 5, collector: bool = True):
    """Best time of ``fn()`` in ms after a warm-up, and its last result; ``collector=False``
    runs it with the cyclic garbage collector switched off."""
    result = fn()
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        if not collector:
            gc.disable()
        try:
            t = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
    return best * 1000, result


def stage_timings(app, repeat: int) -> None:
    """The views' steps re-run one by one (no profiler), signed in as the sales head, best of ``repeat``."""
    import json

    from flask_login import login_user
    from sqlalchemy import func, select

    from crm.extensions import db
    from crm.users.models import User
    from territories import api, maps, routes, services, stats
    from territories.models import Building, Territory, Zone

    lines = []
    with app.test_request_context("/api/v1/map/buildings"):
        user = db.session.scalar(select(User).where(User.login == "head"))
        login_user(user)
        # the views as a whole first, while the heap holds only what a worker holds
        wholes = {}
        for name, view in (("map_buildings()", api.map_buildings.__wrapped__),
                           ("map_polygons()", api.map_polygons.__wrapped__),
                           ("city_map()", routes.city_map.__wrapped__)):
            wholes[name] = [(f"{name} as a whole", best_ms(view, repeat)[0]),
                            (f"{name} as a whole, garbage collector off", best_ms(view, repeat, collector=False)[0])]
        # GET /api/v1/map/buildings
        where = api.building_scope(user)
        lines.extend(wholes["map_buildings()"])
        ms, counts = best_ms(lambda: stats.flat_counts(where), repeat)
        lines.append(("  stats.flat_counts(scope)", ms))
        query = select(Building.id, Building.lat, Building.lon, Building.apartments, Building.zone_id) \
            .where(where).order_by(Building.id)
        ms, rows = best_ms(lambda: db.session.execute(query).all(), repeat)
        lines.append((f"  session.execute(select(5 columns)).all(): {len(rows):,} rows", ms))
        lines.append(("    the same, garbage collector off", best_ms(lambda: db.session.execute(query).all(), repeat,
                                                                     collector=False)[0]))
        lines.append(("    the same through Core (connection.execute)",
                      best_ms(lambda: db.session.connection().execute(query).all(), repeat)[0]))
        compiled = query.compile(dialect=db.engine.dialect)

        def raw():
            cur = db.session.connection().connection.dbapi_connection.cursor()
            if db.engine.dialect.name == "sqlite":
                cur.execute(str(compiled), [compiled.params[k] for k in compiled.positiontup])
            else:
                cur.execute(str(compiled), compiled.params)
            out = cur.fetchall()
            cur.close()
            return out

        lines.append(("    the same SQL through the raw driver", best_ms(raw, repeat)[0]))

        def shape():
            return [[bid, round(lat, 5), round(lon, 5), stats.STATUS_CODES[stats.status_of(apts, counts.get(bid))],
                     zone or 0] for bid, lat, lon, apts, zone in rows]

        ms, out = best_ms(shape, repeat)
        lines.append(("  rows → lists (round ×2, status_of)", ms))
        lines.append(("  json.dumps", best_ms(lambda: json.dumps(
            {"fields": ["id", "lat", "lon", "status", "zone"], "statuses": list(stats.STATUS_CODES), "rows": out},
            separators=(",", ":")), repeat)[0]))
        rows = out = counts = None  # let the heap shrink back before the next view
        # GET /api/v1/map/polygons
        lines.extend(wholes["map_polygons()"])
        ms, territories = best_ms(lambda: db.session.scalars(services.visible_territories(user).where(
            Territory.retired_at.is_(None)).order_by(Territory.id)).all(), repeat)
        lines.append((f"  territories ({len(territories)} ORM objects)", ms))
        ms, zones = best_ms(lambda: db.session.scalars(services.visible_zones(user).where(
            Zone.retired_at.is_(None)).order_by(Zone.id)).all(), repeat)
        lines.append((f"  zones ({len(zones)} ORM objects)", ms))
        zone_ids = [z.id for z in zones]
        lines.append(("  services.current_agents(zone ids)", best_ms(lambda: services.current_agents(zone_ids),
                                                                     repeat)[0]))
        lines.append(("  stats.zone_figures(zone ids)", best_ms(lambda: stats.zone_figures(zone_ids), repeat)[0]))
        lines.append((f"    buildings, flats per zone (zone_id IN {len(zone_ids)} ids, GROUP BY)", best_ms(
            lambda: db.session.execute(select(Building.zone_id, func.count(), func.sum(Building.apartments))
                                       .where(Building.zone_id.in_(zone_ids)).group_by(Building.zone_id)).all(),
            repeat)[0]))
        ms, zone_counts = best_ms(lambda: stats.flat_counts(Building.zone_id.in_(zone_ids)), repeat)
        lines.append((f"    stats.flat_counts(zone_id IN {len(zone_ids)} ids)", ms))
        lines.append((f"    zone of each counted building (id IN {len(zone_counts):,} ids)", best_ms(
            lambda: db.session.execute(select(Building.id, Building.zone_id)
                                       .where(Building.id.in_(list(zone_counts)))).all(), repeat)[0]))
        lines.append(("  json.loads of every geometry", best_ms(
            lambda: [json.loads(p.geometry) for p in [*territories, *zones]], repeat)[0]))
        features = api.map_polygons.__wrapped__().get_json()
        from flask import jsonify
        lines.append((f"  jsonify of the {len(features['features'])} features", best_ms(lambda: jsonify(features),
                                                                                         repeat)[0]))
        features = territories = zones = None
        # GET /map
        lines.extend(wholes["city_map()"])
        lines.append(("  _centre (AVG over the scope)", best_ms(lambda: routes._centre(user), repeat)[0]))
        lines.append(("  maps.build (folium)", best_ms(lambda: maps.build(
            app.config["TILE_URL"], app.config["TILE_ATTRIBUTION"], centre=routes.DEFAULT_CENTRE, zoom=13,
            editable=True), repeat)[0]))
        lines.append(("  services.head_queue(limit=50)", best_ms(lambda: services.head_queue(user, limit=50),
                                                                 repeat)[0]))
        db.session.rollback()
    print(f"the views' steps, re-run one by one without a profiler (best of {repeat}, ms):")
    for label, ms in lines:
        print(f"    {label:<66} {ms:8.1f}")


def profile_requests(app, client) -> None:
    from sqlalchemy import event as sa_event

    from crm.extensions import db

    sql = [0.0, 0]
    with app.app_context():
        engine = db.engine

        def before(conn, *_a):
            conn.info["bench_t"] = time.perf_counter()

        def after(conn, *_a):
            sql[0] += time.perf_counter() - conn.info.pop("bench_t")
            sql[1] += 1

        sa_event.listen(engine, "before_cursor_execute", before)
        sa_event.listen(engine, "after_cursor_execute", after)
    collections = {"t": 0.0, "seconds": [0.0, 0.0, 0.0], "count": [0, 0, 0]}

    def on_gc(phase, info):
        if phase == "start":
            collections["t"] = time.perf_counter()
        else:
            collections["seconds"][info["generation"]] += time.perf_counter() - collections["t"]
            collections["count"][info["generation"]] += 1

    gc.collect()
    print(f"one request each (no profiler); the process tracks {len(gc.get_objects()):,} objects before them, "
          f"gc thresholds {gc.get_threshold()}:")
    gc.callbacks.append(on_gc)
    try:
        for label, path in PAGES:
            sql[0], sql[1] = 0.0, 0
            collections["seconds"], collections["count"] = [0.0, 0.0, 0.0], [0, 0, 0]
            gc.collect()
            collections["seconds"], collections["count"] = [0.0, 0.0, 0.0], [0, 0, 0]
            t = time.perf_counter()
            get(client, path)
            total = time.perf_counter() - t
            spent = collections["seconds"]
            print(f"    {label:<26} {total * 1000:5.0f} ms: SQL (driver execute) {sql[0] * 1000:4.0f} ms in {sql[1]:2} "
                  f"statements; garbage collector {sum(spent) * 1000:4.0f} ms "
                  f"({', '.join(f'gen{g} {n}× {spent[g] * 1000:.0f} ms' for g, n in enumerate(collections['count']))})")
    finally:
        gc.callbacks.remove(on_gc)
    for label, path in PAGES:
        profiler = cProfile.Profile()
        profiler.enable()
        get(client, path)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = sum(v[2] for v in stats.stats.values())
        print(f"cProfile {label} ({total * 1000:.0f} ms own time in all, profiler overhead included); "
              f"top 12 by own time:")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
        for (filename, line, func), (_cc, nc, own, cum, _callers) in rows:
            short = filename.replace(common.ROOT + "/", "")
            if "site-packages/" in short:
                short = short.split("site-packages/", 1)[1]
            print(f"    {own * 1000:7.1f} ms own  {cum * 1000:7.1f} ms cum  {nc:>8,}  {short}:{line}({func})")
        print("  the project's functions and templates, top 10 by cumulative time:")
        shown = 0
        for (filename, line, func), (_cc, nc, own, cum, _callers) in sorted(
                stats.stats.items(), key=lambda kv: kv[1][3], reverse=True):
            short = filename.replace(common.ROOT + "/", "")
            if short.startswith(("territories/", "crm/", "templates/")) and shown < 10:
                print(f"    {cum * 1000:7.1f} ms cum  {own * 1000:7.1f} ms own  {nc:>8,}  {short}:{line}({func})")
                shown += 1
        print()


# --- main -------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="sqlite:///FILE or postgresql://…/NAME (new or empty)")
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--cols", type=int, default=25)
    parser.add_argument("--block", type=int, default=5, help="zones per territory side")
    parser.add_argument("--contracts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="SQL time and a cProfile run of each request")
    args = parser.parse_args(argv)
    dialect = tt.dialect_of(args.database_url, args.db)

    with tt.url_databases(dialect, "citymap") as dbs:
        t = time.perf_counter()
        url = dbs.base(args.database_url)
        facts = tt.build_city(url, args.rows, args.cols, args.block, seed=args.seed)
        rng = np.random.default_rng(args.seed + 1)
        lats, lons, _ties = tt.building_points(args.buildings, facts["bounds"], facts["shared"], rng, ties=0.0)
        add_buildings(url, lats, lons, rng)
        sold = add_contracts(dbs, url, args.contracts, rng)
        vacuum(dbs, url)
        setup = time.perf_counter() - t

        app = common.make_app(url)
        client = app.test_client()
        sign_in(client, "head", "bench")
        from sqlalchemy import func, select

        from crm.extensions import db
        from territories.models import Building
        with app.app_context():
            queue = db.session.scalar(select(func.count()).select_from(Building)
                                      .where(Building.territory_id.is_(None)))
        print(f"city_map on {dialect}: the sales head's map of {args.buildings:,} buildings ({queue:,} in no "
              f"territory), {facts['zones']:,} zones in {facts['territories']} territories ({facts['supervisors']} "
              f"supervisors, {facts['agents']} agents), {sold['contracts']:,} contracts ({sold['in_work']:,} "
              f"buildings in work, {sold['done']:,} done); set-up {setup:.1f} s, not measured; "
              f"code {common.revision()}; {common.load()}")

        results = best_of(client, args.repeat)
        total_ms = 0.0
        sizes = []
        for (label, path), (best, times, body, mimetype) in zip(PAGES, results):
            total_ms += best * 1000
            sizes.append((path, len(body), len(gzip.compress(body, 6))))
            print(f"{label:<28} best {best * 1000:7.1f} ms  (all: {', '.join(f'{x * 1000:.0f}' for x in times)} ms)"
                  f"  {len(body):>10,} bytes {mimetype}")
        print(f"server time, sum of the three bests: {total_ms:.0f} ms "
              f"(target <= {TARGET_MS:.0f} ms: {'met' if total_ms <= TARGET_MS else 'MISSED'})")

        html = results[0][2].decode("utf-8")
        assets = assets_of(html)
        for asset in assets:
            _response, body = get(client, asset)
            sizes.append((asset, len(body), len(gzip.compress(body, 6))))
        print("bytes the page loads (as served; gzip -6 for reference):")
        for path, raw, packed in sizes:
            print(f"    {raw:>10,}  {packed:>9,} gz  {path}")
        total_bytes = sum(raw for _p, raw, _z in sizes)
        total_gz = sum(z for _p, _r, z in sizes)
        print(f"total: {total_bytes:,} bytes = {total_bytes / 1e6:.2f} MB in {len(sizes)} responses ({len(assets)} "
              f"scripts/stylesheets; {total_gz / 1e6:.2f} MB if gzipped) "
              f"(target <= {TARGET_BYTES / 1e6:.0f} MB: {'met' if total_bytes <= TARGET_BYTES else 'MISSED'})")

        import json
        buildings = json.loads(results[2][2])
        polygons = json.loads(results[1][2])
        kinds = {}
        for feature in polygons["features"]:
            kinds[feature["properties"]["kind"]] = kinds.get(feature["properties"]["kind"], 0) + 1
        statuses = np.bincount([row[3] for row in buildings["rows"]], minlength=3)
        ok = len(buildings["rows"]) == args.buildings and kinds.get("zone") == facts["zones"] \
            and kinds.get("territory") == facts["territories"]
        print(f"check: buildings feed has {len(buildings['rows']):,} rows (new {statuses[0]:,}, in work "
              f"{statuses[1]:,}, done {statuses[2]:,}); polygons feed has {kinds.get('territory', 0)} territories "
              f"and {kinds.get('zone', 0)} zones: {'ok' if ok else 'WRONG'}")

        if args.profile:
            stage_timings(app, args.repeat)
            profile_requests(app, client)
        common.dispose(app)
        print(f"at the end: {common.load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

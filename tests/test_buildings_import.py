"""Buildings and polygons arrive: `flask territories import-buildings|import-polygons` and `POST /api/v1/buildings`.

The report lines are the literal forms of PRODUCT.md §5.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.helpers import operator

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------- helpers

def rect(lon0, lat0, lon1, lat1):
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def point(lon, lat):
    return {"type": "Point", "coordinates": [lon, lat]}


def building(external_id, geometry, **props):
    properties = {"external_id": external_id, "address": f"ул. Ленина, {external_id}", "apartments": 40}
    properties.update(props)
    return {"type": "Feature", "geometry": geometry,
            "properties": {k: v for k, v in properties.items() if v is not DROP}}


def polygon(kind, name, geometry, owner=None, territory=None):
    properties = {"kind": kind, "name": name}
    if owner:
        properties["owner"] = owner
    if territory:
        properties["territory"] = territory
    return {"type": "Feature", "geometry": geometry, "properties": properties}


DROP = object()


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
                    encoding="utf-8")
    return str(path)


def counts(app):
    from crm.audit.models import AuditEvent
    from crm.extensions import db
    from territories.models import (
        Building,
        Notification,
        PolygonVersion,
        Territory,
        Zone,
        ZoneAssignment,
    )

    with app.app_context():
        return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                for model in (Building, AuditEvent, Notification, Territory, Zone, ZoneAssignment, PolygonVersion)}


def buildings(app):
    """external_id → a dict of the stored row."""
    from crm.extensions import db
    from territories.models import Building

    with app.app_context():
        return {b.external_id: {"address": b.address, "lat": b.lat, "lon": b.lon, "apartments": b.apartments,
                                "entrances": b.entrances, "floors": b.floors, "connected_at": b.connected_at,
                                "footprint": b.footprint, "updated_at": b.updated_at,
                                "zone": b.zone.name if b.zone else None,
                                "territory": b.territory.name if b.territory else None}
                for b in db.session.scalars(select(Building))}


def import_buildings(runner, path):
    return runner.invoke(args=["territories", "import-buildings", path])


def import_polygons(runner, path):
    return runner.invoke(args=["territories", "import-polygons", path])


# ---------------------------------------------------------------- import-buildings, GeoJSON

FOOTPRINT = rect(60.6100, 56.8400, 60.6104, 56.8403)

MIXED = collection(
    building("b-1", point(60.605, 56.845), apartments=40, entrances=2, floors=5, connected_at="2026-10-01"),
    building("b-2", FOOTPRINT, apartments=80),
    building("bad-lat", point(60.6, 160.17)),
    building("no-geom", None),
    building("no-apts", point(60.6, 56.84), apartments=DROP),
    building("text-apts", point(60.6, 56.84), apartments="ten"),
    building("half-apts", point(60.6, 56.84), apartments=12.5),
    building("zero-apts", point(60.6, 56.84), apartments=0),
    building("neg-apts", point(60.6, 56.84), apartments=-3),
    building(DROP, point(60.6, 56.84)),
    building("no-addr", point(60.6, 56.84), address=DROP),
    building("b-1", point(60.607, 56.846)),
    building("b-3", point(60.608, 56.847), apartments=9),
    building("bad-lon", point(200.5, 56.84)),
)

MIXED_REJECTIONS = [
    "rejected #3 (external_id=bad-lat): latitude 160.17 out of range",
    "rejected #4 (external_id=no-geom): no geometry",
    "rejected #5 (external_id=no-apts): missing apartments",
    "rejected #6 (external_id=text-apts): apartments must be a whole number, got 'ten'",
    "rejected #7 (external_id=half-apts): apartments must be a whole number, got 12.5",
    "rejected #8 (external_id=zero-apts): apartments must be at least 1, got 0",
    "rejected #9 (external_id=neg-apts): apartments must be at least 1, got -3",
    "rejected #10 (external_id=): missing external_id",
    "rejected #11 (external_id=no-addr): missing address",
    "rejected #12 (external_id=b-1): duplicate external_id, first seen at #1",
    "rejected #14 (external_id=bad-lon): longitude 200.5 out of range",
]


def test_import_buildings_geojson_reports_each_rejection_and_imports_the_rest(app, runner, tmp_path):
    path = write(tmp_path, "feed.geojson", MIXED)
    before = counts(app)

    result = import_buildings(runner, path)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["imported 3, updated 0, unchanged 0, rejected 11"] + MIXED_REJECTIONS
    rows = buildings(app)
    assert set(rows) == {"b-1", "b-2", "b-3"}
    assert rows["b-1"]["lat"] == pytest.approx(56.845) and rows["b-1"]["lon"] == pytest.approx(60.605)
    assert (rows["b-1"]["apartments"], rows["b-1"]["entrances"], rows["b-1"]["floors"]) == (40, 2, 5)
    # a date is midnight in the company zone (Asia/Yekaterinburg, +05:00)
    assert rows["b-1"]["connected_at"] == datetime(2026, 9, 30, 19, 0, tzinfo=UTC)
    assert rows["b-1"]["footprint"] is None
    # the footprint is kept and its location is a point inside it
    assert json.loads(rows["b-2"]["footprint"])["type"] == "Polygon"
    assert 60.6100 < rows["b-2"]["lon"] < 60.6104 and 56.8400 < rows["b-2"]["lat"] < 56.8403
    after = counts(app)
    assert after["Building"] == before["Building"] + 3
    assert after["AuditEvent"] > before["AuditEvent"]

    # the same file again changes nothing
    again = import_buildings(runner, path)

    assert again.exit_code == 0
    assert again.output.splitlines() == ["imported 0, updated 0, unchanged 3, rejected 11"] + MIXED_REJECTIONS
    assert counts(app) == after
    assert buildings(app) == rows
    assert all(row["updated_at"] is None for row in rows.values())


CSV = (
    "external_id,address,apartments,entrances,floors,connected_at,lat,lon\n"   # line 1
    "c-1,\"ул. Мира, 1\",30,2,5,2026-11-01T10:00:00+05:00,56.8451,60.6051\n"  # line 2
    "bad-lat,\"ул. Мира, 2\",30,,,,160.17,60.6\n"                                # line 3
    "no-lat,\"ул. Мира, 3\",30,,,,,60.6\n"                                       # line 4
    "c-1,\"ул. Мира, 1\",30,,,,56.8451,60.6051\n"                               # line 5
    "c-2,\"ул. Мира, 5\",abc,,,,56.8452,60.6052\n"                              # line 6
    "c-3,,12,,,,56.8453,60.6053\n"                                               # line 7
    ",\"ул. Мира, 9\",12,,,,56.8453,60.6053\n"                                   # line 8
    "c-4,\"ул. Мира, 11\",24,,,,56.8454,60.6054\n"                              # line 9
)

CSV_REJECTIONS = [
    "rejected line 3 (external_id=bad-lat): latitude 160.17 out of range",
    "rejected line 4 (external_id=no-lat): missing lat or lon",
    "rejected line 5 (external_id=c-1): duplicate external_id, first seen at line 2",
    "rejected line 6 (external_id=c-2): apartments must be a whole number, got 'abc'",
    "rejected line 7 (external_id=c-3): missing address",
    "rejected line 8 (external_id=): missing external_id",
]


def test_import_buildings_csv_labels_rejections_by_line(app, runner, tmp_path):
    path = write(tmp_path, "feed.csv", CSV)

    result = import_buildings(runner, path)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["imported 2, updated 0, unchanged 0, rejected 6"] + CSV_REJECTIONS
    rows = buildings(app)
    assert set(rows) == {"c-1", "c-4"}
    assert rows["c-1"]["address"] == "ул. Мира, 1"
    assert rows["c-1"]["connected_at"] == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert (rows["c-4"]["entrances"], rows["c-4"]["floors"]) == (1, None)

    before = counts(app)
    again = import_buildings(runner, path)
    assert again.output.splitlines() == ["imported 0, updated 0, unchanged 2, rejected 6"] + CSV_REJECTIONS
    assert counts(app) == before


UNREADABLE = [
    ("broken.geojson", '{"type": "FeatureCollection", "features": ['),
    ("list.geojson", '[1, 2, 3]'),
    ("not-a-collection.geojson", '{"type": "Feature", "geometry": null, "properties": {}}'),
    ("empty.csv", ""),
    ("semicolons.csv", "external_id;address;apartments;lat;lon\nx;y;1;56.8;60.6\n"),
]


def test_an_unreadable_file_exits_1_and_changes_nothing(app, runner, tmp_path):
    assert import_buildings(runner, write(tmp_path, "ok.geojson", collection(
        building("keep-1", point(60.605, 56.845))))).exit_code == 0
    before, rows = counts(app), buildings(app)

    for name, content in UNREADABLE:
        result = import_buildings(runner, write(tmp_path, name, content))
        assert result.exit_code == 1, name
        assert result.output.startswith("refused: "), name
        assert "imported" not in result.output
    missing = import_buildings(runner, str(tmp_path / "nowhere.geojson"))
    assert missing.exit_code == 1 and "imported" not in missing.output
    assert counts(app) == before and buildings(app) == rows


# ---------------------------------------------------------------- defaults only on create

def test_defaults_apply_on_create_only_and_an_update_changes_only_present_fields(app, runner, tmp_path, clock):
    created = import_buildings(runner, write(tmp_path, "first.geojson", collection(
        building("d-1", point(60.605, 56.845), apartments=30),
        building("d-2", point(60.606, 56.845), apartments=30, entrances=3, floors=9, connected_at="2026-10-01"))))
    assert created.output.splitlines() == ["imported 2, updated 0, unchanged 0, rejected 0"]
    rows = buildings(app)
    assert (rows["d-1"]["entrances"], rows["d-1"]["floors"], rows["d-1"]["connected_at"]) == (1, None, START)

    clock.advance(days=2)
    # the same file a day later: connected_at is not re-defaulted to the new now
    same = import_buildings(runner, write(tmp_path, "first-again.geojson", collection(
        building("d-1", point(60.605, 56.845), apartments=30))))
    assert same.output.splitlines() == ["imported 0, updated 0, unchanged 1, rejected 0"]
    assert buildings(app)["d-1"]["connected_at"] == START

    update = import_buildings(runner, write(tmp_path, "update.geojson", collection(
        building("d-2", point(60.606, 56.845), address="ул. Ленина, 7а", apartments=36))))
    assert update.exit_code == 0
    assert update.output.splitlines() == ["imported 0, updated 1, unchanged 0, rejected 0"]
    d2 = buildings(app)["d-2"]
    assert d2["address"] == "ул. Ленина, 7а" and d2["apartments"] == 36
    assert (d2["entrances"], d2["floors"]) == (3, 9)
    assert d2["connected_at"] == datetime(2026, 9, 30, 19, 0, tzinfo=UTC)
    assert d2["updated_at"] == clock.now()
    untouched = buildings(app)["d-1"]
    assert untouched == rows["d-1"]

    only_entrances = import_buildings(runner, write(tmp_path, "entrances.geojson", collection(
        building("d-2", point(60.606, 56.845), address="ул. Ленина, 7а", apartments=36, entrances=4))))
    assert only_entrances.output.splitlines() == ["imported 0, updated 1, unchanged 0, rejected 0"]
    d2 = buildings(app)["d-2"]
    assert (d2["entrances"], d2["floors"], d2["apartments"]) == (4, 9, 36)
    assert d2["connected_at"] == datetime(2026, 9, 30, 19, 0, tzinfo=UTC)


# ---------------------------------------------------------------- an update may not drop used flats

def test_an_update_dropping_a_flat_with_a_contract_is_rejected(demo_app, clock, tmp_path):
    from tests.money import build_world, sign

    build_world(demo_app, clock, buildings=0)
    runner = demo_app.test_cli_runner()
    first = import_buildings(runner, write(tmp_path, "a.geojson", collection(
        building("k-1", point(60.605, 56.845), apartments=55, entrances=2),
        building("k-2", point(60.606, 56.845), apartments=20))))
    assert first.output.splitlines() == ["imported 2, updated 0, unchanged 0, rejected 0"]
    sign(demo_app, clock, building="k-1", flat=50)
    before = counts(demo_app)

    shrink = import_buildings(runner, write(tmp_path, "b.geojson", collection(
        building("k-1", point(60.605, 56.845), apartments=40),
        building("k-2", point(60.606, 56.845), apartments=10))))
    assert shrink.exit_code == 0
    assert shrink.output.splitlines() == [
        "imported 0, updated 1, unchanged 0, rejected 1",
        "rejected #1 (external_id=k-1): apartments 40 would drop flats that have visits or contracts (flat 50)",
    ]
    rows = buildings(demo_app)
    assert rows["k-1"]["apartments"] == 55 and rows["k-2"]["apartments"] == 10

    # keeping flat 50 is fine, growing is fine
    keep = import_buildings(runner, write(tmp_path, "c.geojson", collection(
        building("k-1", point(60.605, 56.845), apartments=50))))
    assert keep.output.splitlines() == ["imported 0, updated 1, unchanged 0, rejected 0"]
    grow = import_buildings(runner, write(tmp_path, "d.geojson", collection(
        building("k-1", point(60.605, 56.845), apartments=60))))
    assert grow.output.splitlines() == ["imported 0, updated 1, unchanged 0, rejected 0"]
    assert buildings(demo_app)["k-1"]["apartments"] == 60
    assert counts(demo_app)["Building"] == before["Building"]


# ---------------------------------------------------------------- import-polygons

T1 = rect(60.60, 56.84, 60.63, 56.85)
T2 = rect(60.63, 56.84, 60.65, 56.85)
Z1 = rect(60.60, 56.84, 60.61, 56.85)
Z2 = rect(60.61, 56.84, 60.62, 56.85)
Z_OUT = rect(60.625, 56.842, 60.64, 56.848)        # starts in T1's free strip, ends in T2
Z_OVERLAP = rect(60.615, 56.842, 60.625, 56.848)   # half of it on Z2
T_OVERLAP = rect(60.64, 56.84, 60.66, 56.85)       # half of it on T2
BOWTIE = {"type": "Polygon", "coordinates": [[[60.70, 56.84], [60.71, 56.85], [60.71, 56.84], [60.70, 56.85],
                                              [60.70, 56.84]]]}

POLYGONS = collection(
    polygon("zone", "Z1", Z1, owner="agent1", territory="T1"),       # 1: a zone before its territory in the file
    polygon("territory", "T1", T1, owner="sup1"),                    # 2
    polygon("territory", "T2", T2, owner="sup2"),                    # 3
    polygon("zone", "Z2", Z2, owner="agent2", territory="T1"),       # 4
    polygon("zone", "Z-out", Z_OUT, owner="agent3", territory="T1"),  # 5
    polygon("zone", "Z-overlap", Z_OVERLAP, territory="T1"),         # 6
    polygon("territory", "T-overlap", T_OVERLAP, owner="sup3"),      # 7
    polygon("territory", "T-bowtie", BOWTIE, owner="sup3"),          # 8
    polygon("zone", "Z-nowhere", rect(60.80, 56.84, 60.81, 56.85), territory="T-missing"),  # 9
    polygon("territory", "T-stranger", rect(60.90, 56.84, 60.91, 56.85), owner="nobody"),   # 10
)

OUT_RE = re.compile(r"rejected #5 \(name=Z-out\): lies outside territory T1 by up to (\d+(\.\d)?) m")
POLYGON_REJECTIONS = [
    "rejected #6 (name=Z-overlap): overlaps zone Z2",
    "rejected #7 (name=T-overlap): overlaps territory T2",
    "rejected #8 (name=T-bowtie): self-intersection at 60.705 56.845",
    "rejected #9 (name=Z-nowhere): unknown territory T-missing",
    "rejected #10 (name=T-stranger): unknown owner nobody",
]


def _polygon_state(app):
    from crm.extensions import db
    from territories import services
    from territories.models import Territory, Zone

    with app.app_context():
        territories = {t.name: (t.supervisor.login if t.supervisor else None, t.version, t.geometry)
                       for t in db.session.scalars(select(Territory))}
        zones = db.session.scalars(select(Zone)).all()
        agents = services.current_agents([z.id for z in zones])
        return territories, {z.name: (z.territory.name, agents[z.id].login if z.id in agents else None, z.version)
                             for z in zones}


def test_import_polygons_reports_conflicts_naming_the_other_polygon(demo_app, tmp_path):
    runner = demo_app.test_cli_runner()
    path = write(tmp_path, "polygons.geojson", POLYGONS)

    result = import_polygons(runner, path)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "imported 4, updated 0, unchanged 0, rejected 6"
    match = OUT_RE.fullmatch(lines[1])
    assert match, lines[1]
    # 0.01° of longitude at 56.845° N is ~608 m; Z-out sticks 0.01° out of T1
    assert 560 < float(match.group(1)) < 660
    assert lines[2:] == POLYGON_REJECTIONS
    territories, zones = _polygon_state(demo_app)
    assert {name: (owner, version) for name, (owner, version, _g) in territories.items()} == {
        "T1": ("sup1", 1), "T2": ("sup2", 1)}
    assert zones == {"Z1": ("T1", "agent1", 1), "Z2": ("T1", "agent2", 1)}
    assert ("zone_assigned", "agent1") in _notes(demo_app)
    assert ("territory_assigned", "sup2") in _notes(demo_app)

    # the same file again changes nothing
    before, state = counts(demo_app), _polygon_state(demo_app)
    again = import_polygons(runner, path)
    assert again.exit_code == 0
    lines = again.output.splitlines()
    assert lines[0] == "imported 0, updated 0, unchanged 4, rejected 6"
    assert OUT_RE.fullmatch(lines[1]) and lines[2:] == POLYGON_REJECTIONS
    assert counts(demo_app) == before
    assert _polygon_state(demo_app) == state


def _notes(app):
    from crm.extensions import db
    from crm.users.models import User
    from territories.models import Notification

    with app.app_context():
        return set(db.session.execute(select(Notification.kind, User.login).join(User, User.id == Notification.user_id)))


def test_an_existing_name_updates_the_geometry_and_keeps_the_old_one(demo_app, tmp_path):
    from crm.extensions import db
    from territories.models import PolygonVersion, Territory

    runner = demo_app.test_cli_runner()
    import_polygons(runner, write(tmp_path, "a.geojson", collection(polygon("territory", "T1", T1, owner="sup1"))))
    (_owner, _v, old_geometry), = _polygon_state(demo_app)[0].values()
    bigger = rect(60.60, 56.84, 60.63, 56.86)

    result = import_polygons(runner, write(tmp_path, "b.geojson", collection(polygon("territory", "T1", bigger))))

    assert result.exit_code == 0
    assert result.output.splitlines() == ["imported 0, updated 1, unchanged 0, rejected 0"]
    with demo_app.app_context():
        territory = db.session.scalar(select(Territory).where(Territory.name == "T1"))
        assert territory.version == 2 and territory.supervisor.login == "sup1"
        versions = db.session.execute(select(PolygonVersion.version, PolygonVersion.geometry).where(
            PolygonVersion.kind == "territory", PolygonVersion.polygon_id == territory.id)
            .order_by(PolygonVersion.version)).all()
        assert [v for v, _g in versions] == [1, 2]
        assert versions[0][1] == old_geometry
        assert json.loads(versions[0][1])["coordinates"] == T1["coordinates"]
        assert json.loads(versions[1][1])["coordinates"] == bigger["coordinates"]
        assert json.loads(territory.geometry)["coordinates"] == bigger["coordinates"]

    before = counts(demo_app)
    for name, content in [("bad.geojson", "{nope"), ("zones.csv", "kind,name\nzone,Z\n")]:
        refused = import_polygons(runner, write(tmp_path, name, content))
        assert refused.exit_code == 1 and refused.output.startswith("refused: ")
    assert counts(demo_app) == before


def test_buildings_imported_after_polygons_land_in_their_zones(demo_app, tmp_path):
    runner = demo_app.test_cli_runner()
    import_polygons(runner, write(tmp_path, "p.geojson", POLYGONS))
    result = import_buildings(runner, write(tmp_path, "b.geojson", collection(
        building("in-z1", point(60.605, 56.845)),
        building("in-z2", point(60.615, 56.845)),
        building("in-t1-only", point(60.625, 56.845)),
        building("in-t2", point(60.64, 56.845)),
        building("nowhere", point(60.75, 56.845)))))
    assert result.output.splitlines() == ["imported 5, updated 0, unchanged 0, rejected 0"]
    rows = buildings(demo_app)
    assert {k: (v["territory"], v["zone"]) for k, v in rows.items()} == {
        "in-z1": ("T1", "Z1"), "in-z2": ("T1", "Z2"), "in-t1-only": ("T1", None), "in-t2": ("T2", None),
        "nowhere": (None, None)}


# ---------------------------------------------------------------- POST /api/v1/buildings

def _key(app, name, scopes):
    from crm.apikeys.services import create_key

    with operator(app):
        return create_key(None, name, list(scopes))[1]


def _zones(app):
    from crm.users.services import find_by_login
    from territories import services

    with operator(app):
        head = find_by_login("head")
        t1 = services.save_territory(None, name="T1", geometry_json=T1, supervisor=find_by_login("sup1"),
                                     region=head).polygon
        services.save_zone(None, name="Z1", geometry_json=Z1, territory=t1, agent=find_by_login("agent1"))


def test_post_buildings_imports_and_answers_with_zones(demo_app, demo_client):
    _zones(demo_app)
    key = _key(demo_app, "network", ["buildings:write"])
    body = collection(
        building("api-1", point(60.605, 56.845)),
        building("api-2", point(60.75, 56.845)),
        building("bad-lat", point(60.6, 160.17)),
        building("api-3", point(60.625, 56.845)))
    headers = {"Authorization": f"Bearer {key}"}

    response = demo_client.post("/api/v1/buildings", json=body, headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "imported": 3, "updated": 0, "unchanged": 0,
        "rejected": [{"index": 3, "external_id": "bad-lat", "reason": "latitude 160.17 out of range"}],
        "zones": {"api-1": "Z1", "api-2": None, "api-3": None}}
    rows = buildings(demo_app)
    assert {k: (v["territory"], v["zone"]) for k, v in rows.items()} == {
        "api-1": ("T1", "Z1"), "api-2": (None, None), "api-3": ("T1", None)}

    before = counts(demo_app)
    again = demo_client.post("/api/v1/buildings", json=body, headers=headers)
    assert again.status_code == 200
    assert again.get_json() == {
        "imported": 0, "updated": 0, "unchanged": 3,
        "rejected": [{"index": 3, "external_id": "bad-lat", "reason": "latitude 160.17 out of range"}],
        "zones": {"api-1": "Z1", "api-2": None, "api-3": None}}
    assert counts(demo_app) == before

    moved = demo_client.post("/api/v1/buildings", json=collection(building("api-2", point(60.606, 56.846))),
                             headers=headers)
    assert moved.get_json() == {"imported": 0, "updated": 1, "unchanged": 0, "rejected": [],
                                "zones": {"api-2": "Z1"}}
    assert buildings(demo_app)["api-2"]["zone"] == "Z1"


def _error_shape(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_post_buildings_refuses_callers_without_a_valid_key_with_the_right_scope(demo_app, demo_client):
    from crm.apikeys.services import revoke_key

    good = _key(demo_app, "network", ["buildings:write"])
    events_only = _key(demo_app, "billing", ["contracts:events"])
    revoked = _key(demo_app, "old-feed", ["buildings:write"])
    with operator(demo_app):
        revoke_key(None, "old-feed")
    body = collection(building("x-1", point(60.605, 56.845)))
    url = "/api/v1/buildings"

    _error_shape(demo_client.post(url, json=body), 401)
    _error_shape(demo_client.post(url, json=body, headers={"Authorization": "Bearer " + good[:-2] + "zz"}), 401)
    _error_shape(demo_client.post(url, json=body, headers={"Authorization": "Bearer nonsense"}), 401)
    _error_shape(demo_client.post(url, json=body, headers={"Authorization": f"Bearer {revoked}"}), 401)
    _error_shape(demo_client.post(url, json=body, headers={"Authorization": f"Bearer {events_only}"}), 403)
    assert buildings(demo_app) == {}
    ok = demo_client.post(url, json=body, headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200 and set(buildings(demo_app)) == {"x-1"}


def test_post_buildings_refuses_a_body_that_is_not_a_feature_collection(demo_app, demo_client):
    key = _key(demo_app, "network", ["buildings:write"])
    before = counts(demo_app)
    headers = {"Authorization": f"Bearer {key}"}
    for body in [{"type": "Feature", "geometry": None, "properties": {}},
                 [building("x-1", point(60.605, 56.845))],
                 {"type": "FeatureCollection"},
                 "text"]:
        error = _error_shape(demo_client.post("/api/v1/buildings", json=body, headers=headers), 422)
        assert error["code"] == "invalid_body", body
    broken = demo_client.post("/api/v1/buildings", data="{not json", headers=headers, content_type="application/json")
    assert _error_shape(broken, 422)["code"] == "invalid_body"
    assert counts(demo_app) == before


def test_post_buildings_for_a_territory_notifies_its_supervisor_and_outside_every_territory_the_heads(
        demo_app, demo_client):
    from crm.extensions import db
    from crm.users.services import find_by_login
    from territories.models import Notification

    _zones(demo_app)
    key = _key(demo_app, "network", ["buildings:write"])
    with demo_app.app_context():
        db.session.execute(Notification.__table__.delete())
        db.session.commit()
    response = demo_client.post("/api/v1/buildings", headers={"Authorization": f"Bearer {key}"}, json=collection(
        building("n-1", point(60.605, 56.845)), building("n-2", point(60.625, 56.845)),
        building("n-3", point(60.75, 56.845))))
    assert response.status_code == 200
    with demo_app.app_context():
        notes = {(n.user_id, n.kind): json.loads(n.params) for n in db.session.scalars(select(Notification))}
        sup1, head = find_by_login("sup1").id, find_by_login("head").id
        assert set(notes) == {(sup1, "buildings_arrived"), (head, "buildings_unassigned")}
        assert notes[(sup1, "buildings_arrived")]["count"] == 2
        assert notes[(head, "buildings_unassigned")]["count"] == 1

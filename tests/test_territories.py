"""Territories and zones: membership, queues, assignments with dates, notifications, scope and pages.

Geometry (lon, lat), around Yekaterinburg:

    T1 (sup1)  60.60–60.63 × 56.84–56.85      T2 (sup2)  60.63–60.65 × 56.84–56.85
      W  60.60–60.61   E  60.61–60.62   free strip 60.62–60.63     Z2 60.63–60.64
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, login, operator, post


def rect(lon0, lat0, lon1, lat1):
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


T1 = rect(60.60, 56.84, 60.63, 56.85)
T2 = rect(60.63, 56.84, 60.65, 56.85)
WEST = rect(60.60, 56.84, 60.61, 56.85)
EAST = rect(60.61, 56.84, 60.62, 56.85)
Z2 = rect(60.63, 56.84, 60.64, 56.85)

IN_WEST, IN_EAST, IN_STRIP, IN_Z2, IN_T2, NOWHERE = (
    (60.605, 56.845), (60.615, 56.845), (60.625, 56.845), (60.635, 56.845), (60.645, 56.845), (60.75, 56.845))


def feature(external_id, lon, lat, **props):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"external_id": external_id, "address": f"ул. Мира, {external_id}", "apartments": 20,
                           **props}}


def arrive(app, *features):
    """Buildings arrive through the importer, as from the feed."""
    from crm import clock
    from territories import importer, importfile

    with operator(app):
        records, rejections = importfile.parse_buildings_json(
            {"type": "FeatureCollection", "features": list(features)}, tz=clock.company_zone())
        result = importer.import_buildings(records, rejections, source="test")
        assert not result.rejected
        return result


def u(login_name):
    from crm.users.services import find_by_login

    return find_by_login(login_name)


def zone_id(name):
    from crm.extensions import db
    from territories.models import Zone

    return db.session.scalar(select(Zone.id).where(Zone.name == name))


def territory_id(name):
    from crm.extensions import db
    from territories.models import Territory

    return db.session.scalar(select(Territory.id).where(Territory.name == name))


def membership(app):
    """external_id → (territory name, zone name)."""
    from crm.extensions import db
    from territories.models import Building

    with app.app_context():
        return {b.external_id: (b.territory.name if b.territory else None, b.zone.name if b.zone else None)
                for b in db.session.scalars(select(Building))}


def notes(app, login_name, kind=None):
    from crm.extensions import db
    from territories.models import Notification

    with app.app_context():
        query = select(Notification).where(Notification.user_id == u(login_name).id).order_by(Notification.id)
        if kind:
            query = query.where(Notification.kind == kind)
        return [(n.kind, json.loads(n.params)) for n in db.session.scalars(query)]


def make_world(app, *, east_first=True):
    from territories import services

    with operator(app):
        head = u("head")
        t1 = services.save_territory(None, name="T1", geometry_json=T1, supervisor=u("sup1"), region=head).polygon
        t2 = services.save_territory(None, name="T2", geometry_json=T2, supervisor=u("sup2"), region=head).polygon
        order = [("E", EAST), ("W", WEST)] if east_first else [("W", WEST), ("E", EAST)]
        for name, shape in order:
            services.save_zone(None, name=name, geometry_json=shape, territory=t1)
        services.save_zone(None, name="Z2", geometry_json=Z2, territory=t2)


@pytest.fixture
def world(demo_app):
    make_world(demo_app)
    return demo_app


@pytest.fixture
def city(world):
    """The world with a building in every place."""
    arrive(world, feature("west", *IN_WEST), feature("east", *IN_EAST), feature("strip", *IN_STRIP),
           feature("z2", *IN_Z2), feature("t2", *IN_T2), feature("nowhere", *NOWHERE))
    return world


# ---------------------------------------------------------------- membership

def test_buildings_land_in_the_zone_and_territory_around_them(city):
    assert membership(city) == {"west": ("T1", "W"), "east": ("T1", "E"), "strip": ("T1", None),
                                "z2": ("T2", "Z2"), "t2": ("T2", None), "nowhere": (None, None)}


@pytest.mark.parametrize("east_first", [True, False])
def test_a_point_on_a_shared_edge_goes_to_the_zone_with_the_lowest_id(demo_app, east_first):
    make_world(demo_app, east_first=east_first)
    arrive(demo_app, feature("edge", 60.61, 56.845))
    assert membership(demo_app)["edge"] == ("T1", "E" if east_first else "W")
    with demo_app.app_context():
        assert (zone_id("E") < zone_id("W")) == east_first


def test_queues_hold_buildings_without_a_zone_or_territory(city):
    from territories import services

    with city.app_context():
        buildings, total, idle = services.supervisor_queue(u("sup1"))
        assert [b.external_id for b in buildings] == ["strip"] and total == 1
        assert sorted(z.name for z in idle) == ["E", "W"]  # nobody walks them yet
        buildings, total, _idle = services.supervisor_queue(u("sup2"))
        assert [b.external_id for b in buildings] == ["t2"] and total == 1
        buildings, total = services.head_queue(u("head"))
        assert [b.external_id for b in buildings] == ["nowhere"] and total == 1


def test_editing_a_zone_moves_buildings_in_and_out_and_keeps_the_old_shape(city):
    from crm.extensions import db
    from territories import services
    from territories.models import Building, PolygonVersion, Zone

    with operator(city):
        east = db.session.get(Zone, zone_id("E"))
        change = services.save_zone(None, name="E", geometry_json=rect(60.61, 56.84, 60.63, 56.85),
                                    territory=east.territory, zone=east)
        strip = db.session.scalar(select(Building.id).where(Building.external_id == "strip"))
        assert [m[0] for m in change.moved] == [strip]
    assert membership(city)["strip"] == ("T1", "E")

    with operator(city):
        west = db.session.get(Zone, zone_id("W"))
        services.save_zone(None, name="W", geometry_json=rect(60.60, 56.84, 60.603, 56.85),
                           territory=west.territory, zone=west)
    assert membership(city)["west"] == ("T1", None)
    with city.app_context():
        buildings, total, _idle = services.supervisor_queue(u("sup1"))
        assert total == 1
        assert [b.external_id for b in buildings] == ["west"]
        west = db.session.get(Zone, zone_id("W"))
        assert west.version == 2
        versions = db.session.execute(select(PolygonVersion.version, PolygonVersion.geometry).where(
            PolygonVersion.kind == "zone", PolygonVersion.polygon_id == west.id).order_by(PolygonVersion.version)).all()
        assert [v for v, _g in versions] == [1, 2]
        assert json.loads(versions[0][1])["coordinates"] == WEST["coordinates"]


def test_editing_a_territory_moves_buildings_between_the_queues(city):
    from crm.extensions import db
    from territories import services
    from territories.models import Territory

    with operator(city):
        t2 = db.session.get(Territory, territory_id("T2"))
        services.save_territory(None, name="T2", geometry_json=rect(60.63, 56.84, 60.76, 56.85), supervisor=t2.supervisor,
                                territory=t2)
    assert membership(city)["nowhere"] == ("T2", None)
    assert ("buildings_arrived", {"count": 1, "territory": "T2"}) in notes(city, "sup2")
    with city.app_context():
        assert services.head_queue(u("head"))[1] == 0


def test_retiring_a_zone_puts_its_buildings_in_the_supervisors_queue(city):
    from crm.extensions import db
    from territories import services
    from territories.models import Zone

    with operator(city):
        services.assign_zone(None, db.session.get(Zone, zone_id("W")), u("agent1"))
    with operator(city):
        services.retire_zone(None, db.session.get(Zone, zone_id("W")))
    assert membership(city)["west"] == ("T1", None)
    with city.app_context():
        buildings, total, idle = services.supervisor_queue(u("sup1"))
        assert sorted(b.external_id for b in buildings) == ["strip", "west"] and total == 2
        assert [z.name for z in idle] == ["E"]  # a retired zone is nobody's work
        assert zone_id("W") not in db.session.scalars(services.agent_zone_ids(u("agent1"))).all()


def test_retiring_a_territory_puts_its_buildings_in_the_heads_queue(city):
    from crm.extensions import db
    from territories import services
    from territories.models import Territory, Zone

    with operator(city):
        services.assign_zone(None, db.session.get(Zone, zone_id("E")), u("agent2"))
    with operator(city):
        services.retire_territory(None, db.session.get(Territory, territory_id("T1")))
    assert {k: v for k, v in membership(city).items() if k in ("west", "east", "strip", "nowhere")} == {
        "west": (None, None), "east": (None, None), "strip": (None, None), "nowhere": (None, None)}
    with city.app_context():
        buildings, total = services.head_queue(u("head"))
        assert sorted(b.external_id for b in buildings) == ["east", "nowhere", "strip", "west"] and total == 4
        assert services.supervisor_queue(u("sup1")) == ([], 0, [])
        assert all(not z.active for z in db.session.scalars(select(Zone).where(Zone.name.in_(["E", "W"]))))
        assert services.current_agents([zone_id("E")]) == {}


def test_arrivals_notify_the_territorys_supervisor_and_every_active_sales_head(world):
    from crm.users import services as users

    with operator(world):
        users.create_user(None, login="head2", name="Второй руководитель", role="sales_head", password="x" * 12)
        gone, _ = users.create_user(None, login="head3", name="Ушедший руководитель", role="sales_head",
                                    password="x" * 12)
        users.deactivate(None, gone)

    arrive(world, feature("a", *IN_WEST), feature("b", *IN_STRIP), feature("c", *IN_Z2),
           feature("d", *NOWHERE), feature("e", NOWHERE[0] + 0.001, NOWHERE[1]))

    assert notes(world, "sup1", "buildings_arrived") == [("buildings_arrived", {"count": 2, "territory": "T1"})]
    assert notes(world, "sup2", "buildings_arrived") == [("buildings_arrived", {"count": 1, "territory": "T2"})]
    for head in ("head", "head2"):
        assert [p["count"] for _k, p in notes(world, head)] == [2], head
    assert notes(world, "head3") == []
    assert notes(world, "sup3") == []

    # the same buildings again: nothing arrived, nobody is told
    arrive(world, feature("a", *IN_WEST), feature("d", *NOWHERE))
    assert len(notes(world, "sup1", "buildings_arrived")) == 1 and len(notes(world, "head")) == 1

    # an update that moves a building into a territory announces it there
    arrive(world, feature("d", *IN_STRIP))
    assert membership(world)["d"] == ("T1", None)
    assert notes(world, "sup1", "buildings_arrived")[-1] == ("buildings_arrived", {"count": 1, "territory": "T1"})
    assert len(notes(world, "head")) == 1


# ---------------------------------------------------------------- assignments

def _assign(app, zone, agent, **dates):
    from crm.extensions import db
    from territories import services
    from territories.models import Zone

    with operator(app):
        services.assign_zone(None, db.session.get(Zone, zone_id(zone)), u(agent), **dates)


def _walker(app, zone):
    from territories import services

    with app.app_context():
        agents = services.current_agents([zone_id(zone)])
        return agents[zone_id(zone)].login if agents else None


def _idle(app, supervisor="sup1"):
    from territories import services

    with app.app_context():
        return sorted(z.name for z in services.supervisor_queue(u(supervisor))[2])


def test_an_assignment_runs_from_its_first_to_its_last_day_then_expires(world, clock):
    from datetime import date

    today = date(2026, 11, 20)  # 09:00 UTC is 14:00 in Yekaterinburg
    _assign(world, "W", "agent1", valid_from=today + timedelta(days=1), valid_to=today + timedelta(days=10))
    assert notes(world, "agent1", "zone_assigned") == [("zone_assigned", {"zone": "W", "from": "2026-11-21",
                                                                          "to": "2026-11-30"})]
    assert _walker(world, "W") is None and "W" in _idle(world)
    clock.advance(days=1)
    assert _walker(world, "W") == "agent1" and "W" not in _idle(world)
    clock.advance(days=9)  # 2026-11-30, the last day
    assert _walker(world, "W") == "agent1"
    clock.advance(days=1)
    assert _walker(world, "W") is None
    assert "W" in _idle(world)
    with world.app_context():
        from crm.extensions import db
        from territories import services

        assert db.session.scalars(services.agent_zone_ids(u("agent1"))).all() == []


def test_an_assignment_cannot_start_in_the_past_or_end_before_it_starts(world):
    from datetime import date

    from crm.errors import DomainError

    today = date(2026, 11, 20)
    with pytest.raises(DomainError):
        _assign(world, "W", "agent1", valid_from=today - timedelta(days=1))
    with pytest.raises(DomainError):
        _assign(world, "W", "agent1", valid_from=today + timedelta(days=3), valid_to=today + timedelta(days=2))
    assert _walker(world, "W") is None and notes(world, "agent1") == []


def test_reassigning_cuts_the_previous_assignment(world, clock):
    from datetime import date

    from crm.extensions import db
    from territories.models import ZoneAssignment

    today = date(2026, 11, 20)
    _assign(world, "W", "agent1")
    _assign(world, "W", "agent2", valid_from=today + timedelta(days=5))
    assert _walker(world, "W") == "agent1"
    with world.app_context():
        first = db.session.scalar(select(ZoneAssignment).where(ZoneAssignment.agent_id == u("agent1").id))
        assert first.valid_to == today + timedelta(days=4) and first.end_reason == "reassigned"
    clock.advance(days=4)
    assert _walker(world, "W") == "agent1"
    clock.advance(days=1)
    assert _walker(world, "W") == "agent2"
    # a reassignment from today takes the zone away today
    _assign(world, "W", "agent3")
    assert _walker(world, "W") == "agent3"
    with world.app_context():
        from territories import services

        assert zone_id("W") not in db.session.scalars(services.agent_zone_ids(u("agent2"))).all()
        assert db.session.scalars(services.agent_zone_ids(u("agent3"))).all() == [zone_id("W")]


def test_a_later_assignment_that_does_not_overlap_survives_an_earlier_short_one(world, clock):
    """Only assignments that would overlap are cut: a cover for the next three days leaves
    the assignment starting in ten days alone."""
    from datetime import date

    today = date(2026, 11, 20)
    _assign(world, "W", "agent1", valid_from=today + timedelta(days=10))
    _assign(world, "W", "agent2", valid_from=today, valid_to=today + timedelta(days=3))
    assert _walker(world, "W") == "agent2"
    clock.advance(days=10)
    assert _walker(world, "W") == "agent1"


def test_a_short_cover_inside_an_open_assignment_hands_the_zone_back_afterwards(world, clock):
    from datetime import date

    _assign(world, "W", "agent1")
    _assign(world, "W", "agent2", valid_from=date(2026, 11, 22), valid_to=date(2026, 11, 24))
    walkers = []
    for _day in range(6):  # 20 … 25 November
        walkers.append(_walker(world, "W"))
        clock.advance(days=1)
    assert walkers == ["agent1", "agent1", "agent2", "agent2", "agent2", "agent1"]


def test_handing_a_territory_to_another_supervisor_takes_the_zones_from_the_old_team(city):
    from crm.extensions import db
    from territories import services
    from territories.models import Territory

    _assign(city, "W", "agent1")
    with operator(city):
        t1 = db.session.get(Territory, territory_id("T1"))
        services.save_territory(None, name="T1", geometry_json=t1.geometry, supervisor=u("sup3"), territory=t1)
    assert _walker(city, "W") is None
    assert _idle(city, "sup3") == ["E", "W"]
    assert _idle(city, "sup1") == []
    with city.app_context():
        assert [b.external_id for b in services.supervisor_queue(u("sup3"))[0]] == ["strip"]
    assert ("territory_assigned", {"territory": "T1"}) in notes(city, "sup3")
    _assign(city, "W", "agent9")
    assert _walker(city, "W") == "agent9"


def test_only_an_active_agent_of_the_territorys_supervisor_gets_a_zone(world):
    from crm.errors import DomainError
    from crm.users import services as users

    with operator(world):
        users.deactivate(None, u("agent4"))
    for agent in ("agent5", "sup1", "agent9", "agent4"):
        with pytest.raises(DomainError):
            _assign(world, "W", agent)
    assert _walker(world, "W") is None
    _assign(world, "W", "agent3")
    assert _walker(world, "W") == "agent3"


def test_deactivating_an_agent_returns_their_zones_to_the_supervisor(world):
    from crm.users import services as users

    _assign(world, "W", "agent1")
    _assign(world, "E", "agent1")
    assert _idle(world) == [] and [k for k, _p in notes(world, "agent1")] == ["zone_assigned", "zone_assigned"]

    with operator(world):
        users.deactivate(None, u("agent3"))  # walks nothing: nothing comes back
    assert notes(world, "sup1", "zones_returned") == []
    with operator(world):
        users.deactivate(None, u("agent1"))

    assert _walker(world, "W") is None and _walker(world, "E") is None
    assert _idle(world) == ["E", "W"]
    returned = notes(world, "sup1", "zones_returned")
    assert len(returned) == 1 and returned[0][1]["count"] == 2


def test_deactivating_an_agent_ends_an_assignment_already_cut_to_a_later_day(world):
    """agent1 walks W until agent2 takes over in five days; agent1 leaves today: W is nobody's today."""
    from datetime import date

    from crm.extensions import db
    from crm.users import services as users
    from territories import services

    _assign(world, "W", "agent1")
    _assign(world, "W", "agent2", valid_from=date(2026, 11, 25))
    with operator(world):
        users.deactivate(None, u("agent1"))
    assert _walker(world, "W") is None
    with world.app_context():
        assert db.session.scalars(services.agent_zone_ids(u("agent1"))).all() == []
    assert [p["count"] for _k, p in notes(world, "sup1", "zones_returned")] == [1]


def test_zones_returned_counts_zones_not_assignment_rows(world):
    """agent1 walks W this week and again from next week (two rows, one zone): one zone comes back."""
    from datetime import date

    from crm.users import services as users

    _assign(world, "W", "agent1", valid_to=date(2026, 11, 22))
    _assign(world, "W", "agent1", valid_from=date(2026, 11, 25))
    with operator(world):
        users.deactivate(None, u("agent1"))
    assert _walker(world, "W") is None
    assert [p["count"] for _k, p in notes(world, "sup1", "zones_returned")] == [1]


def test_moving_an_agent_returns_their_zones_to_the_old_supervisor(world):
    from crm.users import services as users

    _assign(world, "W", "agent2")
    with operator(world):
        users.move_agent(None, u("agent2"), u("sup2"))
    assert _walker(world, "W") is None and "W" in _idle(world)
    returned = notes(world, "sup1", "zones_returned")
    assert len(returned) == 1 and returned[0][1]["count"] == 1
    assert notes(world, "sup2", "zones_returned") == []
    # and the moved agent can now only walk the new supervisor's zones
    _assign(world, "Z2", "agent2")
    assert _walker(world, "Z2") == "agent2"


# ---------------------------------------------------------------- scope over HTTP

def _session(app, who):
    client = app.test_client()
    login(client, who)
    return client, {"X-CSRFToken": csrf_token(client, "/home")}


def _zone_count(app):
    from crm.extensions import db
    from territories.models import Zone

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Zone).where(Zone.retired_at.is_(None)))


def test_a_supervisor_cannot_reach_another_supervisors_territory(city):
    with city.app_context():
        t1, t2, west = territory_id("T1"), territory_id("T2"), zone_id("W")
    client, headers = _session(city, "sup2")
    assert client.get(f"/territories/{t1}").status_code == 404
    assert client.get(f"/territories/{t2}").status_code == 200
    before = _zone_count(city)

    created = client.post("/api/v1/map/zones", headers=headers, json={
        "name": "Чужая", "territory_id": t1, "geometry": rect(60.62, 56.84, 60.63, 56.85)})
    assert created.status_code in (403, 404, 422)
    assert set(created.get_json()["error"]) == {"code", "message", "fields"}
    edited = client.put(f"/api/v1/map/zones/{west}", headers=headers, json={
        "name": "W", "geometry": rect(60.60, 56.84, 60.605, 56.85)})
    assert edited.status_code in (403, 404)
    retired = client.post(f"/api/v1/map/zones/{west}/retire", headers=headers, json={})
    assert retired.status_code in (403, 404)
    assign = post(client, f"/zones/{west}/assign", {"assign-agent_id": "0"})
    assert assign.status_code in (403, 404)

    assert _zone_count(city) == before
    assert membership(city)["west"] == ("T1", "W")
    with city.app_context():
        from crm.extensions import db
        from territories.models import Zone

        assert db.session.get(Zone, west).version == 1


def test_an_agent_sees_only_the_buildings_and_zones_they_walk(city):
    _assign(city, "W", "agent1")
    with city.app_context():
        from crm.extensions import db
        from territories.models import Building

        west_building = db.session.scalar(select(Building.id).where(Building.external_id == "west"))
        east_building = db.session.scalar(select(Building.id).where(Building.external_id == "east"))
        west = zone_id("W")
    client, _headers = _session(city, "agent1")

    rows = client.get("/api/v1/map/buildings").get_json()["rows"]
    assert [row[0] for row in rows] == [west_building]
    polygons = client.get("/api/v1/map/polygons").get_json()["features"]
    assert [(f["properties"]["kind"], f["properties"]["id"]) for f in polygons if f["properties"]["kind"] == "zone"] \
        == [("zone", west)]
    assert all(not f["properties"]["editable"] for f in polygons)
    assert client.get(f"/api/v1/map/buildings/{west_building}").status_code == 200
    assert client.get(f"/api/v1/map/buildings/{east_building}").status_code == 404

    other, _ = _session(city, "agent2")
    assert other.get("/api/v1/map/buildings").get_json()["rows"] == []
    assert [f for f in other.get("/api/v1/map/polygons").get_json()["features"]
            if f["properties"]["kind"] == "zone"] == []


def test_a_supervisor_sees_the_territorys_buildings_and_the_head_also_the_homeless_ones(city):
    from crm.extensions import db
    from territories.models import Building

    with city.app_context():
        ids = dict(db.session.execute(select(Building.external_id, Building.id)).all())
    sup1, _ = _session(city, "sup1")
    assert sorted(row[0] for row in sup1.get("/api/v1/map/buildings").get_json()["rows"]) == sorted(
        ids[k] for k in ("west", "east", "strip"))
    assert sup1.get(f"/api/v1/map/buildings/{ids['z2']}").status_code == 404
    head, _ = _session(city, "head")
    assert sorted(row[0] for row in head.get("/api/v1/map/buildings").get_json()["rows"]) == sorted(ids.values())


def test_admin_has_no_map_and_finance_sees_it_read_only(city):
    admin, _ = _session(city, "admin")
    assert admin.get("/map").status_code == 403
    assert admin.get("/api/v1/map/polygons").status_code == 403

    finance, headers = _session(city, "fin1")
    assert finance.get("/map").status_code == 200
    features = finance.get("/api/v1/map/polygons").get_json()["features"]
    assert sorted(f["properties"]["name"] for f in features) == ["E", "T1", "T2", "W", "Z2"]
    assert all(not f["properties"]["editable"] and not f["properties"].get("zones_editable") for f in features)
    with city.app_context():
        t1, west = territory_id("T1"), zone_id("W")
    before = _zone_count(city)
    assert finance.post("/api/v1/map/zones", headers=headers, json={
        "name": "Касса", "territory_id": t1, "geometry": rect(60.62, 56.84, 60.63, 56.85)}).status_code == 403
    assert finance.post("/api/v1/map/territories", headers=headers, json={
        "name": "Касса", "geometry": rect(60.70, 56.84, 60.71, 56.85)}).status_code == 403
    assert finance.post(f"/api/v1/map/zones/{west}/retire", headers=headers, json={}).status_code == 403
    assert _zone_count(city) == before


def test_a_supervisor_draws_zones_inside_the_territory_only(city):
    with city.app_context():
        t1 = territory_id("T1")
        agent1 = u("agent1").id
    client, headers = _session(city, "sup1")
    before = _zone_count(city)

    out = client.post("/api/v1/map/zones", headers=headers, json={
        "name": "Наружу", "territory_id": t1, "geometry": rect(60.62, 56.84, 60.64, 56.85)})
    assert out.status_code == 422
    error = out.get_json()["error"]
    assert "T1" in error["message"] and "geometry" in error["fields"]

    overlap = client.post("/api/v1/map/zones", headers=headers, json={
        "name": "Нахлёст", "territory_id": t1, "geometry": rect(60.615, 56.84, 60.625, 56.85)})
    assert overlap.status_code == 422 and re.search(r"\bE\b", overlap.get_json()["error"]["message"])
    assert _zone_count(city) == before

    ok = client.post("/api/v1/map/zones", headers=headers, json={
        "name": "Полоса", "territory_id": t1, "geometry": rect(60.62, 56.84, 60.63, 56.85), "agent_id": agent1})
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert ok.get_json()["buildings"] == 1
    assert membership(city)["strip"] == ("T1", "Полоса")
    assert _walker(city, "Полоса") == "agent1"

    # territories are the sales head's
    assert client.put(f"/api/v1/map/territories/{t1}", headers=headers, json={
        "name": "T1", "geometry": rect(60.60, 56.84, 60.64, 56.85)}).status_code == 403
    assert client.post(f"/api/v1/map/territories/{t1}/retire", headers=headers, json={}).status_code == 403
    with city.app_context():
        from crm.extensions import db
        from territories.models import Territory

        assert db.session.get(Territory, t1).version == 1 and db.session.get(Territory, t1).active


def test_a_sales_head_cannot_save_overlapping_territories(city):
    client, headers = _session(city, "head")
    with city.app_context():
        sup3 = u("sup3").id
    overlap = client.post("/api/v1/map/territories", headers=headers, json={
        "name": "T3", "supervisor_id": sup3, "geometry": rect(60.64, 56.84, 60.66, 56.85)})
    assert overlap.status_code == 422
    assert "T2" in overlap.get_json()["error"]["message"]
    self_crossing = client.post("/api/v1/map/territories", headers=headers, json={
        "name": "T3", "supervisor_id": sup3, "geometry": {"type": "Polygon", "coordinates": [
            [[60.70, 56.84], [60.71, 56.85], [60.71, 56.84], [60.70, 56.85], [60.70, 56.84]]]}})
    assert self_crossing.status_code == 422
    assert "60.705" in self_crossing.get_json()["error"]["message"]
    adjacent = client.post("/api/v1/map/territories", headers=headers, json={
        "name": "T3", "supervisor_id": sup3, "geometry": rect(60.65, 56.84, 60.77, 56.85)})
    assert adjacent.status_code == 201, adjacent.get_data(as_text=True)
    assert membership(city)["nowhere"] == ("T3", None)
    assert ("territory_assigned", {"territory": "T3"}) in notes(city, "sup3")


def test_a_territory_edit_that_would_leave_a_zone_outside_is_refused(city):
    with city.app_context():
        t1 = territory_id("T1")
    client, headers = _session(city, "head")
    shrunk = client.put(f"/api/v1/map/territories/{t1}", headers=headers, json={
        "name": "T1", "geometry": rect(60.605, 56.84, 60.63, 56.85)})
    assert shrunk.status_code == 422
    assert re.search(r"\bW\b", shrunk.get_json()["error"]["message"])
    assert membership(city)["west"] == ("T1", "W")
    grown = client.put(f"/api/v1/map/territories/{t1}", headers=headers, json={
        "name": "T1", "geometry": rect(60.60, 56.835, 60.63, 56.85)})
    assert grown.status_code == 200 and grown.get_json()["version"] == 2


# ---------------------------------------------------------------- pages

def test_the_map_page_opens_for_field_and_money_roles(city):
    for who in ("agent1", "sup1", "head", "fin1"):
        client, _ = _session(city, who)
        assert client.get("/map").status_code == 200, who


def test_the_territory_list_opens(city):
    for who in ("sup1", "head", "fin1"):
        client, _ = _session(city, who)
        index = client.get("/territories")
        assert index.status_code == 200, who
        html = index.get_data(as_text=True)
        assert "T1" in html
        assert ("T2" in html) == (who != "sup1")


def test_the_territory_page_shows_zones_and_who_walks_them(city):
    _assign(city, "W", "agent1")
    with city.app_context():
        t1 = territory_id("T1")
    for who in ("sup1", "head", "fin1"):
        client, _ = _session(city, who)
        page = client.get(f"/territories/{t1}")
        assert page.status_code == 200, who
        html = page.get_data(as_text=True)
        assert "T1" in html and u_name(city, "agent1") in html
        assert "ул. Мира, strip" in html  # the building waiting in no zone
        assert ('name="assign-agent_id"' in html) == (who != "fin1"), who  # finance only reads
    for who in ("agent1", "admin"):
        client, _ = _session(city, who)
        assert client.get(f"/territories/{t1}").status_code == 403, who
        assert client.get("/territories").status_code == 403, who


def test_a_supervisor_assigns_and_releases_a_zone_on_the_territory_page(city):
    with city.app_context():
        t1, east, agent2 = territory_id("T1"), zone_id("E"), u("agent2").id
    client, _ = _session(city, "sup1")
    assigned = post(client, f"/zones/{east}/assign", {"assign-agent_id": str(agent2), "assign-valid_from": "2026-11-20"},
                    token_from=f"/territories/{t1}")
    assert assigned.status_code == 302
    assert _walker(city, "E") == "agent2"
    released = post(client, f"/zones/{east}/release", token_from=f"/territories/{t1}")
    assert released.status_code == 302
    assert _walker(city, "E") is None and "E" in _idle(city)


def u_name(app, login_name):
    with app.app_context():
        return u(login_name).name


def test_head_uploads_a_csv_and_sees_the_counts(demo_app):
    client = demo_app.test_client()
    client.get("/login?lang=en")
    login(client, "head")
    token = csrf_token(client, "/buildings/import")
    csv = ("external_id,address,apartments,lat,lon\n"
           "u-1,\"ул. Мира, 1\",10,56.845,60.605\n"
           "u-2,\"ул. Мира, 2\",0,56.845,60.606\n"
           "u-3,\"ул. Мира, 3\",12,56.845,60.607\n").encode()
    import io

    response = client.post("/buildings/import", data={"csrf_token": token, "file": (io.BytesIO(csv), "feed.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Imported 2, updated 0, unchanged 0, rejected 1." in html
    assert "line 3" in html and "u-2" in html
    assert sorted(membership(demo_app)) == ["u-1", "u-3"]

    for who in ("sup1", "agent1", "fin1"):
        other = demo_app.test_client()
        login(other, who)
        assert other.get("/buildings/import").status_code == 403


def test_inbox_lists_notifications_and_marks_them_read(world):
    from crm.extensions import db
    from territories import services
    from territories.models import Notification

    _assign(world, "W", "agent1")
    client = world.test_client()
    client.get("/login?lang=en")
    login(client, "agent1")
    page = client.get("/inbox")
    assert page.status_code == 200
    assert "Zone W is assigned to you" in page.get_data(as_text=True)
    assert "Mark all read" in page.get_data(as_text=True)
    with world.app_context():
        assert services.unread_count(u("agent1")) == 1

    done = post(client, "/inbox", token_from="/inbox")
    assert done.status_code == 302

    with world.app_context():
        assert services.unread_count(u("agent1")) == 0
        assert all(n.read_at is not None for n in db.session.scalars(
            select(Notification).where(Notification.user_id == u("agent1").id)))
    again = client.get("/inbox").get_data(as_text=True)
    assert "Mark all read" not in again


def test_every_notification_link_opens_for_its_reader(world):
    """The inbox links somewhere useful: zones_returned included."""
    from crm.extensions import db
    from crm.users import services as users
    from territories.models import Notification

    _assign(world, "W", "agent1")
    with operator(world):
        users.deactivate(None, u("agent1"))
    arrive(world, feature("a", *IN_WEST))
    with world.app_context():
        links = db.session.execute(select(Notification.kind, Notification.link).where(
            Notification.user_id == u("sup1").id)).all()
    assert {kind for kind, _link in links} >= {"zones_returned", "buildings_arrived", "territory_assigned"}
    client, _ = _session(world, "sup1")
    for kind, link in links:
        assert client.get(link).status_code == 200, (kind, link)

"""Door visits and field contracts through the phone's sync (PRODUCT.md §3 Door visit, §5 /sync, /me/zones).

The field (built five days before the test clock, so offline visits up to 72 h back fall
inside the agent's assignment):

    T1 (sup1): W (agent1), E (agent2), S (agent1 only from tomorrow)      T2 (sup2): Z2 (agent5)
    buildings: w1 in W (10 flats, 3 entrances, 2 floors), tiny in W (3 flats),
               east in E, strip in S, z2 in Z2 (20 flats each)
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pyproj import Geod
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import START
from tests.helpers import csrf_token, login, operator
from tests.money import build_world
from tests.money import event as contract_event
from tests.test_territories import IN_EAST, IN_STRIP, IN_Z2, arrive, feature, make_world, rect, u, zone_id

GEOD = Geod(ellps="WGS84")
BEFORE = START - timedelta(days=5)
TOMORROW = (START + timedelta(days=1)).date()  # START is 14:00 in Yekaterinburg: same date there
STRIP = rect(60.62, 56.84, 60.63, 56.85)
W1 = (60.605, 56.845)
TINY = (60.606, 56.846)


def iso(moment) -> str:
    return moment.isoformat()


def moved(lon_lat, metres: float, azimuth: float = 0.0) -> tuple[float, float]:
    """(lat, lon) ``metres`` from a (lon, lat) point along ``azimuth``, on the WGS84 ellipsoid."""
    lon, lat, _back = GEOD.fwd(lon_lat[0], lon_lat[1], azimuth, metres)
    return lat, lon


def at_door(lon_lat, accuracy=10.0) -> dict:
    return {"lat": lon_lat[1], "lon": lon_lat[0], "accuracy": accuracy}


# ---------------------------------------------------------------- the field

def _assign(app, zone, agent, **dates):
    from crm.extensions import db
    from territories import services
    from territories.models import Zone

    with operator(app):
        services.assign_zone(None, db.session.get(Zone, zone_id(zone)), u(agent), **dates)


@pytest.fixture
def field(demo_app, clock):
    from crm.extensions import db
    from territories import services
    from territories.models import Building, Territory

    clock.set(BEFORE)
    make_world(demo_app)
    with operator(demo_app):
        t1 = db.session.scalar(select(Territory).where(Territory.name == "T1"))
        services.save_zone(None, name="S", geometry_json=STRIP, territory=t1)
    build_world(demo_app, clock, buildings=0)  # catalogue, and rates in force from BEFORE
    arrive(demo_app,
           feature("w1", *W1, apartments=10, entrances=3, floors=2),
           feature("tiny", *TINY, apartments=3),
           feature("east", *IN_EAST), feature("strip", *IN_STRIP), feature("z2", *IN_Z2))
    _assign(demo_app, "W", "agent1")
    _assign(demo_app, "E", "agent2")
    _assign(demo_app, "Z2", "agent5")
    clock.set(START)
    _assign(demo_app, "S", "agent1", valid_from=TOMORROW)
    with demo_app.app_context():
        ids = dict(db.session.execute(select(Building.external_id, Building.id)).all())
        zones = {name: zone_id(name) for name in ("W", "E", "S", "Z2")}
    return SimpleNamespace(app=demo_app, clock=clock, b=ids, zones=zones)


class Phone:
    """A logged-in session calling the API as the phone does (cookie + X-CSRFToken)."""

    def __init__(self, app, who):
        self.client = app.test_client()
        login(self.client, who)
        self.headers = {"X-CSRFToken": csrf_token(self.client, "/home")}

    def sync(self, *items, expect=200):
        response = self.client.post("/api/v1/sync", json={"items": list(items)}, headers=self.headers)
        assert response.status_code == expect, response.get_data(as_text=True)
        return response.get_json()["results"]

    def post(self, path, body):
        return self.client.post(path, json=body, headers=self.headers)

    def get(self, path):
        return self.client.get(path)


def visit(building_id, flat, outcome="not_home", at=None, gps="door", client_id=None, **extra) -> dict:
    item = {"type": "visit", "client_id": client_id or str(uuid.uuid4()), "building_id": building_id, "flat": flat,
            "outcome": outcome, "at": iso(at or START)}
    if gps == "door":
        item["gps"] = at_door(W1)
    elif gps is not None:
        item["gps"] = gps
    item.update(extra)
    return item


def contract(building_id, flat, at=None, client_id=None, **extra) -> dict:
    item = {"type": "contract", "client_id": client_id or str(uuid.uuid4()), "building_id": building_id,
            "flat": flat, "subscriber": {"name": "Иван Петров", "phone": "8 (912) 345-67-89"}, "tariff": "net100",
            "addons": ["tv"], "adult_confirmed": True, "at": iso(at or START), "gps": at_door(W1)}
    item.update(extra)
    return item


def statuses(results):
    return [r["status"] for r in results]


def count(app, model) -> int:
    from crm.extensions import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def visits_of(app, **where):
    from crm.extensions import db
    from crm.visits.models import Visit

    with app.app_context():
        query = select(Visit).order_by(Visit.id)
        for name, value in where.items():
            query = query.where(getattr(Visit, name) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def visit_count(app) -> int:
    from crm.visits.models import Visit

    return count(app, Visit)


def rejected_field(result, name):
    assert result["status"] == "rejected", result
    error = result["error"]
    assert error and set(error) == {"code", "message", "fields"} and error["message"]
    assert name in error["fields"], error
    return error


# ---------------------------------------------------------------- recording and validation

def test_each_outcome_needs_its_field_and_the_rest_of_the_batch_still_lands(field):
    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    later = START + timedelta(days=1)
    items = [
        visit(w1, 1, "callback"),                                                       # no callback_at
        visit(w1, 1, "callback", callback_at=iso(START - timedelta(hours=1))),          # before the visit
        visit(w1, 1, "callback", callback_at=iso(later)),
        visit(w1, 2, "lead"),                                                           # no phone
        visit(w1, 2, "lead", phone="12345"),                                            # not a phone
        visit(w1, 2, "lead", phone="8 (912) 345-67-89"),
        visit(w1, 3, "competitor"),                                                     # no name
        visit(w1, 3, "competitor", competitor="   "),
        visit(w1, 3, "competitor", competitor="  Ростелеком "),
        visit(w1, 4, "signed"),                                                         # a contract item's job
        visit(w1, 4, "knocked"),                                                        # no such outcome
        visit(w1, 4, "not_home", note="дверь с кодом"),
    ]
    results = phone.sync(*items)
    assert [r["client_id"] for r in results] == [i["client_id"] for i in items]
    assert statuses(results) == ["rejected", "rejected", "created", "rejected", "rejected", "created",
                                 "rejected", "rejected", "created", "rejected", "rejected", "created"]
    for index, name in [(0, "callback_at"), (1, "callback_at"), (3, "phone"), (4, "phone"), (6, "competitor"),
                        (7, "competitor"), (9, "outcome"), (10, "outcome")]:
        rejected_field(results[index], name)
        assert results[index]["id"] is None
    created = {r["id"]: r for r in results if r["status"] == "created"}
    assert all(isinstance(i, int) for i in created)

    stored = {v.id: v for v in visits_of(field.app)}
    assert set(stored) == set(created)
    by_flat = {v.flat: v for v in stored.values()}
    assert by_flat[1].outcome == "callback" and by_flat[1].callback_at == later
    assert by_flat[2].outcome == "lead" and by_flat[2].phone == "+79123456789"
    assert by_flat[3].outcome == "competitor" and by_flat[3].competitor == "Ростелеком"
    assert by_flat[4].outcome == "not_home" and by_flat[4].note == "дверь с кодом"
    with field.app.app_context():
        ids = (u("agent1").id, u("sup1").id)
    for v in stored.values():
        assert (v.agent_id, v.supervisor_id, v.building_id, v.at, v.recorded_at) == (ids[0], ids[1], w1, START, START)


def test_a_callback_must_come_after_the_visit(field):
    """"callback (needs callback_at)" after the visit: the same moment is not after it."""
    w1 = field.b["w1"]
    results = Phone(field.app, "agent1").sync(
        visit(w1, 1, "callback", callback_at=iso(START)),
        visit(w1, 1, "callback", callback_at=iso(START + timedelta(minutes=1))),
    )
    assert statuses(results) == ["rejected", "created"]
    rejected_field(results[0], "callback_at")


def test_only_buildings_in_zones_the_agent_walks_that_day(field):
    phone = Phone(field.app, "agent1")
    b = field.b
    results = phone.sync(
        visit(b["east"], 1),        # agent2's zone
        visit(b["z2"], 1),          # another territory, agent5's zone
        visit(b["strip"], 1),       # agent1's only from tomorrow
        visit(999_999, 1),          # no such building
        visit(str(b["w1"]), 1),     # not an id
        visit(b["w1"], 1),
    )
    assert statuses(results) == ["rejected"] * 5 + ["created"]
    for r in results[:5]:
        rejected_field(r, "building_id")

    field.clock.advance(days=1)
    tomorrow = Phone(field.app, "agent1")
    results = tomorrow.sync(
        visit(b["strip"], 2, at=field.clock.now()),
        visit(b["strip"], 3, at=START),  # offline from yesterday, when S was not agent1's yet
    )
    assert statuses(results) == ["created", "rejected"]
    rejected_field(results[1], "building_id")
    assert [(v.building_id, v.flat) for v in visits_of(field.app)] == [(b["w1"], 1), (b["strip"], 2)]


def test_the_flat_must_exist_in_the_building(field):
    cases = [(0, False), (-1, False), (11, False), (1000, False), ("3", False), (True, False), (2.0, False),
             (None, False), (1, True), (10, True)]
    results = Phone(field.app, "agent1").sync(*[visit(field.b["w1"], flat) for flat, _ok in cases])
    assert statuses(results) == ["created" if ok else "rejected" for _flat, ok in cases]
    for result, (_flat, ok) in zip(results, cases):
        if not ok:
            rejected_field(result, "flat")
    assert [v.flat for v in visits_of(field.app)] == [1, 10]


def test_business_time_within_five_minutes_ahead_and_the_offline_grace(field):
    w1 = field.b["w1"]
    cases = [
        (START + timedelta(minutes=6), "rejected"),
        (START + timedelta(minutes=5, seconds=1), "rejected"),
        (START + timedelta(minutes=5), "created"),
        (START + timedelta(minutes=4), "created"),
        (START - timedelta(hours=72, minutes=1), "rejected"),
        (START - timedelta(hours=72, seconds=1), "rejected"),
        (START - timedelta(hours=72), "created"),
        (START - timedelta(hours=71), "created"),
    ]
    items = [visit(w1, n + 1, at=moment) for n, (moment, _s) in enumerate(cases)]
    items.append({**visit(w1, 9), "at": "yesterday"})
    items.append({**visit(w1, 9), "at": None})
    items.append({**visit(w1, 10), "at": "2026-11-20T13:30:00"})  # no zone: company time (UTC+5)
    results = Phone(field.app, "agent1").sync(*items)
    assert statuses(results) == [s for _m, s in cases] + ["rejected", "rejected", "created"]
    for r in results:
        if r["status"] == "rejected":
            rejected_field(r, "at")
    stored = {v.flat: v.at for v in visits_of(field.app)}
    expected = {n + 1: moment for n, (moment, s) in enumerate(cases) if s == "created"}
    expected[10] = START - timedelta(minutes=30)
    assert stored == expected


def test_gps_is_checked_and_bad_positions_are_flagged_for_the_supervisor(field):
    w1 = field.b["w1"]
    lat200, lon200 = moved(W1, 200, 0)
    lat50, lon50 = moved(W1, 50, 90)
    lat10, lon10 = moved(W1, 10, 180)
    results = Phone(field.app, "agent1").sync(
        visit(w1, 1, gps={"lat": lat200, "lon": lon200, "accuracy": 10}),
        visit(w1, 2, gps={"lat": lat50, "lon": lon50, "accuracy": 20}),
        visit(w1, 3, gps=None),
        visit(w1, 4, gps={"lat": lat10, "lon": lon10, "accuracy": 350}),
        visit(w1, 5, gps={"lat": 91, "lon": 60.6, "accuracy": 5}),
        visit(w1, 6, gps={"lat": lat10}),
    )
    assert statuses(results) == ["created"] * 4 + ["rejected"] * 2
    rejected_field(results[4], "gps")
    rejected_field(results[5], "gps")
    stored = {v.flat: v for v in visits_of(field.app)}
    assert (stored[1].gps_colour, stored[1].flagged) == ("amber", True)
    assert stored[1].distance_m == pytest.approx(200, rel=0.005)
    assert (stored[1].lat, stored[1].lon, stored[1].accuracy) == (lat200, lon200, 10)
    assert (stored[2].gps_colour, stored[2].flagged) == ("green", False)
    assert stored[2].distance_m == pytest.approx(50, rel=0.005) and stored[2].flag_reason is None
    assert (stored[3].gps_colour, stored[3].flagged, stored[3].distance_m, stored[3].lat) == ("red", True, None, None)
    assert (stored[4].gps_colour, stored[4].flagged) == ("green", True)  # near, but a fix worse than 100 m
    assert all(stored[f].flag_reason for f in (1, 3, 4))


# ---------------------------------------------------------------- idempotency

def test_a_replayed_batch_answers_duplicate_with_the_same_ids(field):
    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    batch = [visit(w1, 11), visit(w1, 1, "refused"), visit(w1, 2, "lead", phone="+7 912 345 67 89"),
             visit(w1, 3, "not_interested", note="позже")]
    first = phone.sync(*batch)
    assert [r["client_id"] for r in first] == [i["client_id"] for i in batch]
    assert statuses(first) == ["rejected", "created", "created", "created"]
    rows = visit_count(field.app)
    assert rows == 3

    again = phone.sync(*batch)
    assert [r["client_id"] for r in again] == [i["client_id"] for i in batch]
    assert statuses(again) == ["rejected", "duplicate", "duplicate", "duplicate"]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert visit_count(field.app) == rows

    # the same client id with other data is not a replay; a rejected item's id was never used
    changed = {**batch[1], "outcome": "not_interested"}
    moved_flat = {**batch[2], "flat": 4}
    fixed = {**batch[0], "flat": 10}
    results = phone.sync(changed, moved_flat, fixed)
    assert statuses(results) == ["rejected", "rejected", "created"]
    assert results[0]["error"]["code"] == results[1]["error"]["code"] == "client_id_reused"
    assert "client_id" in results[0]["error"]["fields"]
    assert visit_count(field.app) == rows + 1
    assert [v.outcome for v in visits_of(field.app, client_id=batch[1]["client_id"])] == ["refused"]

    # another agent cannot claim (or learn about) a client id that is already taken
    other = Phone(field.app, "agent2").sync(batch[1])
    assert statuses(other) == ["rejected"] and other[0]["id"] is None
    assert visit_count(field.app) == rows + 1

    # the same item twice in one batch: stored once
    twice = visit(w1, 5)
    results = phone.sync(twice, twice)
    assert statuses(results) == ["created", "duplicate"] and results[0]["id"] == results[1]["id"]
    assert visit_count(field.app) == rows + 2

    # an answer lost on the way: the retry days later, past the offline grace, still finds the visits
    field.clock.advance(hours=80)
    late = Phone(field.app, "agent1").sync(*batch[1:])
    assert statuses(late) == ["duplicate"] * 3 and [r["id"] for r in late] == [r["id"] for r in first[1:]]
    assert visit_count(field.app) == rows + 2


def test_the_sync_body_is_checked_and_needs_an_agent_with_the_csrf_header(field):
    phone = Phone(field.app, "agent1")
    for body in ({}, {"items": {}}, [], {"items": "x"}):
        response = phone.client.post("/api/v1/sync", json=body, headers=phone.headers)
        assert response.status_code == 422, body
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}
    odd = phone.sync("visit", {"type": "meeting", "client_id": "x"}, {"client_id": "y"})
    assert statuses(odd) == ["rejected"] * 3
    assert phone.client.post("/api/v1/sync", json={"items": []}).status_code == 400  # no X-CSRFToken
    assert field.app.test_client().post("/api/v1/sync", json={"items": []}).status_code == 401
    supervisor = Phone(field.app, "sup1")
    assert supervisor.post("/api/v1/sync", {"items": [visit(field.b["w1"], 1)]}).status_code == 403
    assert visit_count(field.app) == 0


# ---------------------------------------------------------------- locks

def test_locking_outcomes_lock_the_door_until_the_supervisor_unlocks_it(field):
    from crm.audit.models import AuditEvent
    from crm.extensions import db
    from crm.visits.models import DoorUnlock

    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    first = phone.sync(visit(w1, 3, "do_not_knock"), visit(w1, 4, "already_subscriber"))
    assert statuses(first) == ["created", "created"]
    field.clock.advance(hours=1)
    later = field.clock.now()
    blocked = phone.sync(visit(w1, 3, at=later), visit(w1, 4, "lead", phone="89123456789", at=later),
                         contract(w1, 3, at=later), visit(w1, 5, at=later))
    assert statuses(blocked) == ["rejected", "rejected", "rejected", "created"]
    for r in blocked[:3]:
        assert r["error"]["code"] == "door_locked"
    assert count(field.app, DoorUnlock) == 0

    body = {"building_id": w1, "flat": 3, "reason": "Жилец сам попросил зайти"}
    assert phone.post("/api/v1/doors/unlock", body).status_code == 403                   # an agent
    assert Phone(field.app, "sup2").post("/api/v1/doors/unlock", body).status_code == 403  # not his territory
    sup1 = Phone(field.app, "sup1")
    for without in ({**body, "reason": None}, {**body, "reason": "   "}, {k: v for k, v in body.items() if k != "reason"}):
        response = sup1.post("/api/v1/doors/unlock", without)
        assert response.status_code == 422
        assert "reason" in response.get_json()["error"]["fields"]
    assert sup1.post("/api/v1/doors/unlock", {**body, "flat": 5}).status_code == 409    # not locked
    assert count(field.app, DoorUnlock) == 0

    unlocked = sup1.post("/api/v1/doors/unlock", body)
    assert unlocked.status_code == 201, unlocked.get_data(as_text=True)
    assert sup1.post("/api/v1/doors/unlock", body).status_code == 409                   # already open
    locking = visits_of(field.app, flat=3)[0]
    with field.app.app_context():
        rows = db.session.scalars(select(DoorUnlock)).all()
        assert [(r.building_id, r.flat, r.supervisor_id, r.reason) for r in rows] == [
            (w1, 3, u("sup1").id, "Жилец сам попросил зайти")]
        assert rows[0].visit_id == locking.id
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "door.unlocked")).all()
        assert len(audit) == 1
        assert audit[0].actor_id == u("sup1").id and audit[0].subject_id == u("agent1").id
        assert json.loads(audit[0].after)["reason"] == "Жилец сам попросил зайти"
        assert json.loads(audit[0].before)["flat"] == 3

    field.clock.advance(minutes=10)
    after = phone.sync(visit(w1, 3, "refused", at=field.clock.now()),
                       visit(w1, 4, at=field.clock.now()))  # flat 4 is still locked
    assert statuses(after) == ["created", "rejected"]
    assert after[1]["error"]["code"] == "door_locked"

    # a new locking outcome after the unlock locks the door again
    field.clock.advance(minutes=10)
    assert statuses(phone.sync(visit(w1, 3, "already_subscriber", at=field.clock.now()))) == ["created"]
    field.clock.advance(minutes=10)
    again = phone.sync(visit(w1, 3, at=field.clock.now()))
    assert again[0]["status"] == "rejected" and again[0]["error"]["code"] == "door_locked"


# ---------------------------------------------------------------- contracts

def test_a_contract_item_signs_and_links_a_signed_visit(field):
    from crm.contracts.models import Contract
    from crm.extensions import db
    from crm.ledger import services as ledger

    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    item = contract(w1, 5)
    result = phone.sync(item)[0]
    assert result["status"] == "created", result
    assert re.fullmatch(r"D-2026-\d{6}", result["contract_number"])
    assert result["client_id"] == item["client_id"] and isinstance(result["id"], int)

    with field.app.app_context():
        signed = db.session.scalars(select(Contract)).all()
        assert len(signed) == 1
        c = signed[0]
        assert (c.number, c.agent_id, c.supervisor_id, c.building_id, c.flat, c.phone, c.status, c.at) == (
            result["contract_number"], u("agent1").id, u("sup1").id, w1, 5, "+79123456789", "signed", START)
        assert c.tariff.code == "net100" and c.adult_confirmed is True
        assert c.rate_version_id is not None and c.rate_version_id == ledger.version_in_force(START).id
        contract_id = c.id
    linked = visits_of(field.app, outcome="signed")
    assert [(v.id, v.contract_id, v.flat, v.at) for v in linked] == [(result["id"], contract_id, 5, START)]

    replay = phone.sync(item)[0]
    assert (replay["status"], replay["contract_number"], replay["id"]) == (
        "duplicate", result["contract_number"], result["id"])
    assert count(field.app, Contract) == 1 and visit_count(field.app) == 1

    changed = phone.sync({**item, "tariff": "net300"})[0]
    assert changed["status"] == "rejected" and changed["error"]["code"] == "client_id_reused"
    assert count(field.app, Contract) == 1

    # one active contract per flat; cancelling (with a reason) frees the flat for a new one
    field.clock.advance(minutes=5)
    second = phone.sync(contract(w1, 5, at=field.clock.now()))[0]
    assert second["status"] == "rejected" and second["error"]["code"] == "flat_taken"
    assert result["contract_number"] in second["error"]["message"]
    contract_event(field.app, result["contract_number"], "cancelled", field.clock.now(), reason="ошибка в тарифе")
    field.clock.advance(minutes=5)
    again = phone.sync(contract(w1, 5, at=field.clock.now()))[0]
    assert again["status"] == "created" and again["contract_number"] != result["contract_number"]
    assert count(field.app, Contract) == 2


def test_a_contract_needs_an_adult_and_valid_fields(field):
    from crm.contracts.models import Contract

    w1 = field.b["w1"]
    results = Phone(field.app, "agent1").sync(
        contract(w1, 6, adult_confirmed=False),
        contract(w1, 6, adult_confirmed="yes"),
        {k: v for k, v in contract(w1, 6).items() if k != "adult_confirmed"},
        contract(w1, 6, subscriber={"name": "", "phone": "89123456789"}),
        contract(w1, 6, subscriber={"name": "Анна", "phone": "12"}),
        contract(w1, 6, tariff="tv"),
        contract(w1, 11),
        contract(field.b["east"], 6),
        contract(w1, 6, at=START + timedelta(minutes=10)),
        contract(w1, 6),
    )
    assert statuses(results) == ["rejected"] * 9 + ["created"]
    for r in results[:3]:
        rejected_field(r, "adult_confirmed")
    rejected_field(results[4], "phone")
    rejected_field(results[5], "tariff")
    rejected_field(results[6], "flat")
    rejected_field(results[7], "building_id")
    rejected_field(results[8], "at")
    assert count(field.app, Contract) == 1 and visit_count(field.app) == 1


def test_a_contract_with_a_long_client_id_is_signed_on_every_database(field):
    """The API takes client ids of up to 64 characters; the linked signed visit must store one too."""
    from crm.contracts.models import Contract

    item = contract(field.b["w1"], 7, client_id="c" * 64)
    result = Phone(field.app, "agent1").sync(item)[0]
    assert result["status"] == "created", result
    assert count(field.app, Contract) == 1 and visit_count(field.app) == 1


def test_two_agents_signing_one_flat_the_first_to_reach_the_server_wins(field):
    from crm.contracts.models import Contract
    from territories.models import Notification

    w1 = field.b["w1"]
    _assign(field.app, "W", "agent2", valid_from=TOMORROW)  # agent1 walks W today, agent2 from tomorrow
    field.clock.advance(days=1)
    tomorrow = field.clock.now()
    agent2 = Phone(field.app, "agent2")
    agent1 = Phone(field.app, "agent1")
    first = agent2.sync(contract(w1, 7, at=tomorrow))[0]
    assert first["status"] == "created"

    # agent1 signed the same flat yesterday, offline, and syncs only now
    late_item = contract(w1, 7, at=START)
    late = agent1.sync(late_item, visit(w1, 8, at=START))
    assert statuses(late) == ["rejected", "created"]
    error = late[0]["error"]
    assert error["code"] == "flat_taken" and first["contract_number"] in error["message"]
    with field.app.app_context():
        from crm.extensions import db

        rows = db.session.execute(select(Contract.number, Contract.agent_id)).all()
        assert rows == [(first["contract_number"], u("agent2").id)]
        notes = db.session.scalars(select(Notification).where(Notification.user_id == u("sup1").id,
                                                              Notification.kind == "sync_rejected")).all()
        assert len(notes) == 1
        assert first["contract_number"] in json.loads(notes[0].params)["message"]
        link = notes[0].link
        agent_ids = (u("agent1").id, u("agent2").id)
    assert [(v.agent_id, v.flat) for v in visits_of(field.app)] == [(agent_ids[1], 7), (agent_ids[0], 8)]

    # the supervisor can open the inbox and the notification's link
    sup1 = Phone(field.app, "sup1")
    assert sup1.get("/inbox").status_code == 200
    assert sup1.get(link).status_code == 200

    # the phone retries: still rejected, still naming the first contract
    retry = agent1.sync(late_item)[0]
    assert retry["status"] == "rejected" and retry["error"]["code"] == "flat_taken"
    assert first["contract_number"] in retry["error"]["message"]
    assert count(field.app, Contract) == 1


# ---------------------------------------------------------------- what the phone caches

def test_my_zones_gives_the_grid_and_each_flats_last_outcome(field):
    from crm.visits import rules

    w1, tiny = field.b["w1"], field.b["tiny"]
    phone = Phone(field.app, "agent1")
    number = phone.sync(contract(w1, 5))[0]["contract_number"]
    # the later visit arrives first, the older one afterwards (offline): the later one stays last
    results = phone.sync(
        visit(w1, 2, "callback", at=START - timedelta(hours=1), callback_at=iso(START + timedelta(days=2))),
        visit(w1, 3, "do_not_knock", at=START - timedelta(hours=2)),
        visit(w1, 7, "refused", at=START - timedelta(hours=3)),
    )
    assert statuses(results) == ["created"] * 3
    results = phone.sync(visit(w1, 2, "not_home", at=START - timedelta(hours=5)),
                         visit(w1, 7, "not_home", at=START - timedelta(hours=1)))
    assert statuses(results) == ["created", "created"]
    # agent2 works E: not agent1's business
    assert statuses(Phone(field.app, "agent2").sync(visit(field.b["east"], 1))) == ["created"]

    response = phone.get("/api/v1/me/zones")
    assert response.status_code == 200
    zones = response.get_json()["zones"]
    assert [(z["id"], z["name"]) for z in zones] == [(field.zones["W"], "W")]  # not E, not S (from tomorrow)
    buildings = {b["id"]: b for b in zones[0]["buildings"]}
    assert set(buildings) == {w1, tiny}
    b = buildings[w1]
    assert (b["apartments"], b["entrances"], b["floors"]) == (10, 3, 2)
    assert b["grid"] == rules.door_grid(10, 3, 2) == [[[1, 2], [3, 4]], [[5, 6], [7]], [[8, 9], [10]]]
    assert buildings[tiny]["grid"] == rules.door_grid(3, 1, None) == [[[1, 2, 3]]]
    flats = b["flats"]
    assert flats["2"]["outcome"] == "callback" and flats["2"]["locked"] is False
    assert flats["7"]["outcome"] == "not_home" and flats["7"]["locked"] is False
    assert flats["3"]["outcome"] == "do_not_knock" and flats["3"]["locked"] is True
    assert flats["5"]["contract"] == number and flats["5"]["outcome"] == "signed"
    assert flats["5"]["locked"] is False
    assert not any(flats.get(str(f), {}).get("outcome") for f in (1, 4, 6, 8, 9, 10))
    assert buildings[tiny]["flats"] == {}

    # unlocking shows at once
    sup1 = Phone(field.app, "sup1")
    assert sup1.post("/api/v1/doors/unlock", {"building_id": w1, "flat": 3, "reason": "ошибся"}).status_code == 201
    flats = {b["id"]: b for b in phone.get("/api/v1/me/zones").get_json()["zones"][0]["buildings"]}[w1]["flats"]
    assert flats["3"]["locked"] is False

    assert Phone(field.app, "agent3").get("/api/v1/me/zones").get_json()["zones"] == []  # walks nothing
    assert sup1.get("/api/v1/me/zones").status_code == 403
    assert Phone(field.app, "fin1").get("/api/v1/me/zones").status_code == 403
    assert field.app.test_client().get("/api/v1/me/zones").status_code == 401


# ---------------------------------------------------------------- coverage, penetration, status

def test_zone_figures_count_each_flat_once_from_visits_and_contracts(field):
    from territories import stats

    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    signed = phone.sync(contract(w1, 3), contract(w1, 4))
    assert statuses(signed) == ["created", "created"]
    results = phone.sync(
        visit(w1, 1, "not_home", at=START - timedelta(hours=3)),
        visit(w1, 1, "refused", at=START - timedelta(hours=2)),
        visit(w1, 2, "already_subscriber", at=START - timedelta(hours=2)),
        visit(w1, 3, "already_subscriber", at=START - timedelta(minutes=30)),  # and it has a contract
    )
    assert statuses(results) == ["created"] * 4
    contract_event(field.app, signed[1]["contract_number"], "cancelled", START + timedelta(minutes=1),
                   reason="передумал")
    with field.app.app_context():
        figures = stats.zone_figures([field.zones["W"], field.zones["E"]])
    w = figures[field.zones["W"]]
    # W holds w1 (10 flats) and tiny (3): visited flats 1, 2, 3, 4; penetrated: 2 (already a subscriber),
    # 3 (active contract and already_subscriber: once); flat 4's contract is cancelled
    assert (w["buildings"], w["flats"], w["visited"], w["penetrated"]) == (2, 13, 4, 2)
    assert w["coverage"] == pytest.approx(4 / 13) and w["penetration"] == pytest.approx(2 / 13)
    e = figures[field.zones["E"]]
    assert (e["visited"], e["penetrated"]) == (0, 0)


def test_a_building_is_done_when_every_flat_has_a_final_outcome(field):
    tiny, w1 = field.b["tiny"], field.b["w1"]
    phone = Phone(field.app, "agent1")

    def status():
        body = phone.get("/api/v1/map/buildings").get_json()
        names = body["statuses"]
        return {row[0]: names[row[3]] for row in body["rows"]}

    assert status() == {w1: "new", tiny: "new"}
    assert statuses(phone.sync(visit(tiny, 1, "refused"), visit(tiny, 2, "not_home"),
                               visit(tiny, 3, "no_access"), visit(w1, 1, "refused"))) == ["created"] * 4
    assert status() == {w1: "in_work", tiny: "in_work"}
    field.clock.advance(hours=2)
    now = field.clock.now()
    assert statuses(phone.sync(visit(tiny, 2, "not_interested", at=now), contract(tiny, 3, at=now))) == [
        "created", "created"]
    assert status() == {w1: "in_work", tiny: "done"}


# ---------------------------------------------------------------- imports cannot drop visited flats

def test_reimporting_fewer_apartments_than_a_visited_flat_is_rejected(field, tmp_path):
    from crm import clock
    from crm.extensions import db
    from territories import importer, importfile
    from territories.models import Building

    w1 = field.b["w1"]
    assert statuses(Phone(field.app, "agent1").sync(visit(w1, 8, "refused"))) == ["created"]

    def reimport(apartments):
        with operator(field.app):
            records, rejections = importfile.parse_buildings_json(
                {"type": "FeatureCollection", "features": [feature("w1", *W1, apartments=apartments)]},
                tz=clock.company_zone())
            return importer.import_buildings(records, rejections, source="test")

    result = reimport(7)
    assert (result.updated, len(result.rejected)) == (0, 1)
    assert result.rejected[0].external_id == "w1" and "8" in result.rejected[0].reason

    csv = tmp_path / "feed.csv"
    csv.write_text(f"external_id,address,apartments,lat,lon\nw1,\"ул. Мира, w1\",6,{W1[1]},{W1[0]}\n",
                   encoding="utf-8")
    out = field.app.test_cli_runner().invoke(args=["territories", "import-buildings", str(csv)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "imported 0, updated 0, unchanged 0, rejected 1"
    assert lines[1].startswith("rejected line 2 (external_id=w1): ") and "8" in lines[1]
    with field.app.app_context():
        assert db.session.get(Building, w1).apartments == 10

    assert reimport(8).updated == 1  # keeping the visited flat is fine
    with field.app.app_context():
        assert db.session.get(Building, w1).apartments == 8


# ---------------------------------------------------------------- append-only tables

def test_the_database_refuses_changes_to_visits_and_unlocks(field):
    from crm.extensions import db
    from crm.visits.models import DoorUnlock

    w1 = field.b["w1"]
    assert statuses(Phone(field.app, "agent1").sync(visit(w1, 3, "do_not_knock"), visit(w1, 4))) == [
        "created", "created"]
    assert Phone(field.app, "sup1").post("/api/v1/doors/unlock",
                                         {"building_id": w1, "flat": 3, "reason": "ошибка"}).status_code == 201
    statements = ["UPDATE visits SET outcome = 'refused'", "UPDATE visits SET flagged = false",
                  "DELETE FROM visits WHERE flat = 4", "DELETE FROM visits",
                  "UPDATE door_unlocks SET reason = 'другая'", "DELETE FROM door_unlocks"]
    with field.app.app_context():
        if db.engine.dialect.name == "postgresql":
            statements += ["TRUNCATE visits CASCADE", "TRUNCATE door_unlocks"]
        for statement in statements:
            with pytest.raises(DBAPIError, match=r"append-only|immutable"):
                db.session.execute(text(statement))
                db.session.flush()
            db.session.rollback()
    assert [(v.flat, v.outcome) for v in visits_of(field.app)] == [(3, "do_not_knock"), (4, "not_home")]
    with field.app.app_context():
        assert db.session.scalars(select(DoorUnlock.reason)).all() == ["ошибка"]


# ---------------------------------------------------------------- transactions of a sync (PostgreSQL)

def test_on_postgresql_a_one_visit_sync_runs_in_autocommit_and_a_batch_in_one_transaction(field, backend):
    """One visit is one INSERT, atomic by itself: no BEGIN/COMMIT round trips. A batch, or a
    contract, is one transaction after the sign-in read; the pooled connection then serves the
    next unit of work inside a transaction again."""
    if backend != "postgresql":
        pytest.skip("SQLite takes its write lock for every sync (tests/test_chain.py)")
    from psycopg.pq import TransactionStatus
    from sqlalchemy import event

    from crm.extensions import db

    with field.app.app_context():
        engine = db.engine
    seen: list[tuple[str, TransactionStatus]] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0].upper(), conn.connection.driver_connection.info.transaction_status))

    w1, idle, in_transaction = field.b["w1"], TransactionStatus.IDLE, TransactionStatus.INTRANS
    phone = Phone(field.app, "agent1")
    event.listen(engine, "after_cursor_execute", after)
    try:
        one = visit(w1, 1)
        assert statuses(phone.sync(one)) == ["created"]
        assert [kind for kind, _status in seen] == ["SELECT", "SELECT", "INSERT"]
        assert [status for _kind, status in seen] == [idle] * 3  # each statement committed on its own
        raw = engine.raw_connection()  # the pool's own hand-out, no unit of work around it
        try:
            assert raw.driver_connection.autocommit is False
        finally:
            raw.close()
        seen.clear()
        assert statuses(phone.sync(one)) == ["duplicate"]  # a retry: reads only
        assert [status for _kind, status in seen] == [idle] * 2
        seen.clear()
        assert statuses(phone.sync(visit(w1, 2), visit(w1, 3, "refused"))) == ["created", "created"]
        assert [kind for kind, _status in seen] == ["SELECT", "SELECT", "INSERT", "SELECT", "INSERT"]
        assert [status for _kind, status in seen] == [idle] + [in_transaction] * 4
        seen.clear()
        assert statuses(phone.sync(contract(w1, 5))) == ["created"]
        assert seen[0][1] == idle and {status for _kind, status in seen[1:]} == {in_transaction}
        seen.clear()
        with field.app.app_context():  # every pooled connection is back out of autocommit
            for _ in range(engine.pool.checkedin() + 1):
                db.session.execute(text("SELECT 1"))
                db.session.commit()
        assert [status for _kind, status in seen] == [in_transaction] * len(seen) and seen
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert [(v.flat, v.outcome) for v in visits_of(field.app)] == [
        (1, "not_home"), (2, "not_home"), (3, "refused"), (5, "signed")]


def test_on_postgresql_a_sync_on_a_connection_that_died_fails_once_and_the_next_is_transactional(field, backend):
    """The server restarted between two syncs: the request on the dead pooled connection fails
    (500, nothing stored); the pool renews its connections and the next sync, a batch, is one
    transaction again: no connection comes back from the pool in autocommit."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL's pooled server connections")
    from tests.conftest import _pg_admin_engine

    from crm.extensions import db

    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    assert statuses(phone.sync(visit(w1, 1))) == ["created"]
    with field.app.app_context():
        name = db.engine.url.database
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            others = "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({others}) AS o"), {"name": name})
            for _ in range(200):
                if not conn.execute(text(f"SELECT count(*) FROM ({others}) AS o"), {"name": name}).scalar():
                    break
                conn.execute(text("SELECT pg_sleep(0.01)"))
    finally:
        admin.dispose()
    lost = visit(w1, 2)
    response = phone.client.post("/api/v1/sync", json={"items": [lost]}, headers=phone.headers)
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal"
    results = phone.sync(lost, visit(w1, 3))  # the phone kept it and sends it again
    assert statuses(results) == ["created", "created"]
    with field.app.app_context():
        for _ in range(db.engine.pool.checkedin() + 1):
            db.session.execute(text("SELECT 1"))
            assert db.session.connection().connection.driver_connection.autocommit is False
            db.session.commit()
    assert [v.flat for v in visits_of(field.app)] == [1, 2, 3]


# ---------------------------------------------------------------- the agent's day: revisits, leads, offer

def test_the_day_lists_revisits_leads_and_what_is_on_offer(field):
    """Callbacks come back by due time, then not_home doors with the time of day they were tried;
    a door answered later leaves the list; a lead leaves it when the flat is signed."""
    from tests.money import RATES

    w1 = field.b["w1"]
    phone = Phone(field.app, "agent1")
    hour = timedelta(hours=1)
    results = phone.sync(
        visit(w1, 1, "not_home", at=START - hour),                                   # 13:00 in Yekaterinburg
        visit(w1, 2, "callback", at=START - 2 * hour, callback_at=iso(START + timedelta(days=1))),
        visit(w1, 4, "callback", at=START - 3 * hour, callback_at=iso(START + 2 * hour)),
        visit(w1, 6, "not_home", at=START - 6 * hour),                               # 08:00: tried in the morning
        visit(w1, 6, "refused", at=START - 5 * hour),                                # then answered: not a revisit
        visit(w1, 3, "not_home", at=START - 6 * hour),                               # 08:00, still not home
        visit(w1, 8, "lead", at=START - hour, phone="+7 912 000-00-08", note="после шести"),
        visit(w1, 9, "lead", at=START - 4 * hour, phone="+79120000009"),
        contract(w1, 9, at=START - hour),
    )
    assert statuses(results) == ["created"] * 9
    day = phone.get("/api/v1/me/zones").get_json()
    assert [(r["flat"], r["outcome"]) for r in day["revisits"]] == [
        (4, "callback"), (2, "callback"), (3, "not_home"), (1, "not_home")]
    tried = {r["flat"]: r["tried"] for r in day["revisits"] if r["outcome"] == "not_home"}
    assert tried == {3: "morning", 1: "day"}
    assert [(lead["flat"], lead["phone"], lead["note"]) for lead in day["leads"]] == [(8, "+79120000008", "после шести")]
    offer = day["offer"]
    assert {t["code"]: t["commission"] for t in offer["tariffs"]} == RATES["agent"]["tariffs"]
    assert {a["code"]: a["commission"] for a in offer["addons"]} == RATES["agent"]["addons"]
    # another agent's doors are not on agent1's lists
    assert statuses(Phone(field.app, "agent2").sync(visit(field.b["east"], 1, "not_home"))) == ["created"]
    assert all(r["building_id"] == w1 for r in phone.get("/api/v1/me/zones").get_json()["revisits"])

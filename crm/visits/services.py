"""Recording visits and field contracts (the phone's sync), door locks, and what the phone caches.

Every item is validated in full on the server: the agent's zones on the visit's day,
the flat, the outcome's extra field, business time within the offline grace, GPS.
A visit is its own record (append-only, with who, when, where and what the phone sent);
an unlock is audited. Services flush; the endpoint commits once per sync.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, bindparam, exists, func, literal, literal_column, select, text
from sqlalchemy.orm import aliased

from crm import clock
from crm.audit.services import record
from crm.contracts import services as contracts
from crm.contracts.models import Contract
from crm.errors import Conflict, DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.inputs import MAX_ID
from crm.ledger.services import parse_local_datetime
from crm.users.models import SALES_HEAD, SUPERVISOR, User
from crm.visits import rules
from crm.visits.models import DoorUnlock, Visit
from territories import services as territories
from territories.models import Building, Territory

NOTE_MAX = 2000


def _canonical(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _invalid(field: str, message) -> DomainError:
    return DomainError("invalid", message, {field: message})


def _client_id(item: dict) -> str:
    value = item.get("client_id")
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 64:
        raise _invalid("client_id", _l("A client id of 1 to 64 characters is required."))
    return value.strip()


def _moment(raw, field: str) -> datetime:
    try:
        if isinstance(raw, str):
            return parse_local_datetime(raw)
    except ValueError:
        pass
    raise _invalid(field, _l("An ISO 8601 date and time."))


def _business_time(raw) -> datetime:
    return _in_grace(_moment(raw, "at"))


def _in_grace(at: datetime) -> datetime:
    try:
        clock.check_business_time(at, clock.now(), grace=current_app.config["OFFLINE_GRACE"])
    except clock.BusinessTimeError as exc:
        raise _invalid("at", _l("The time is in the future.") if exc.code == "future"
                       else _l("The time is older than the offline grace."))
    return clock.ensure_utc(at)


def _number(value, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise _invalid("gps", _l("GPS needs lat (-90..90), lon (-180..180) and accuracy in metres."))
    return float(value)


def _gps(raw) -> tuple[float | None, float | None, float | None]:
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        raise _invalid("gps", _l("GPS needs lat (-90..90), lon (-180..180) and accuracy in metres."))
    lat, lon = _number(raw.get("lat"), -90, 90), _number(raw.get("lon"), -180, 180)
    accuracy = _number(raw.get("accuracy"), 0, 1_000_000)
    if (lat is None) != (lon is None):
        raise _invalid("gps", _l("GPS needs lat (-90..90), lon (-180..180) and accuracy in metres."))
    return lat, lon, accuracy


def building_for(agent: User, building_id, at: datetime) -> Building:
    """The building if it lies in a zone ``agent`` walks on the (company-time) day of ``at``."""
    if isinstance(building_id, bool) or not isinstance(building_id, int):
        raise _invalid("building_id", _l("Unknown building."))
    day = at.astimezone(clock.company_zone()).date()
    building = db.session.scalar(select(Building).where(
        Building.id == building_id, Building.zone_id.in_(territories.agent_zone_ids(agent, day))))
    if building is None:
        raise _not_your_zone()
    return building


def _not_your_zone() -> NotFound:
    return NotFound("not_your_zone", _l("This building is not in a zone you walk."),
                    {"building_id": _l("Not in your zones.")})


def _locked(flat: int, outcome: str) -> Conflict:
    return Conflict("door_locked", _l("Flat %(flat)d is locked (%(outcome)s); your supervisor can unlock it.",
                                      flat=flat, outcome=outcome), {"flat": _l("Locked.")})


def _flat(apartments: int, flat) -> int:
    """``flat`` if the building (of ``apartments`` flats) has it, else a DomainError."""
    if isinstance(flat, bool) or not isinstance(flat, int) or not 1 <= flat <= apartments:
        raise _invalid("flat", _l("Flat must be a number from 1 to %(n)d.", n=apartments))
    return flat


def _key(value) -> int | None:
    """``value`` if it can be an id or a flat number in the database (an int column), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID else None


#: The outcomes that lock a door, written into the SQL (our own constants): no list parameter to
#: expand on every execution of the sync's statement, and constants the planner can see.
_LOCKING_OUTCOME = Visit.outcome.in_([literal_column(f"'{outcome}'") for outcome in sorted(rules.LOCKING)])


def _last_lock(building_id, flat):
    """The id of the door's last locking visit (already_subscriber / do_not_knock, latest by business
    time), as a scalar subquery; ``building_id`` and ``flat`` are values or bind parameters."""
    return (select(Visit.id).where(Visit.building_id == building_id, Visit.flat == flat, _LOCKING_OUTCOME)
            .order_by(Visit.at.desc(), Visit.id.desc()).limit(1).scalar_subquery())


def _lifted(visit_id):
    """An unlock lifted the locking visit ``visit_id`` (a column or a value)."""
    return exists().where(DoorUnlock.visit_id == visit_id)


def last_locking_visit(building_id: int, flat: int) -> Visit | None:
    """The visit that locks this door now (its last locking visit, unless an unlock lifted it)."""
    lock = aliased(Visit)
    return db.session.scalar(select(lock).where(lock.id == _last_lock(building_id, flat), ~_lifted(lock.id)))


def _refuse_if_locked(building: Building, flat: int, at: datetime) -> None:
    """A locked door takes no new knocks; one that happened before the lock (an offline queue
    arriving late) is still the record of what happened and is accepted."""
    locked = last_locking_visit(building.id, flat)
    if locked is not None and at > locked.at:
        raise _locked(flat, locked.outcome)


@dataclass
class Outcome:
    status: str  # created | duplicate
    visit_id: int | None = None
    contract: Contract | None = None


@functools.cache
def _door_facts_statement():
    """What one visit item needs to know, in one round trip: the stored visit with this client id
    (a replay), the building and whether it lies in a zone the agent walks on the visit's day,
    and the door's lock — its last locking visit and whether an unlock lifted it. The phone's
    sync sends thousands of these an hour: built once, at the first sync (its aliases configure
    every ORM mapper, which a CLI command like ``ledger verify`` never needs), run on the
    session's connection."""
    from territories.models import ZoneAssignment

    replay, building, lock = aliased(Visit), aliased(Building), aliased(Visit)
    in_zone = exists().where(ZoneAssignment.zone_id == building.zone_id,
                             territories.assignment_in_force(bindparam("agent_id"), bindparam("day", type_=Date)))
    one = select(literal(1).label("one")).subquery("one")
    return (select(replay.id.label("visit_id"), replay.agent_id.label("visit_agent_id"),
                   replay.request.label("visit_request"), building.id.label("building_id"), building.lat,
                   building.lon, building.apartments, in_zone.label("in_zone"), lock.id.label("lock_id"),
                   lock.at.label("lock_at"), lock.outcome.label("lock_outcome"), _lifted(lock.id).label("lifted"))
            .select_from(one)
            .outerjoin(replay, replay.client_id == bindparam("client_id"))
            .outerjoin(building, building.id == bindparam("building_id"))
            .outerjoin(lock, lock.id == _last_lock(bindparam("building_id"), bindparam("flat"))))


_VISIT_COLUMNS = [c for c in Visit.__table__.columns if c.name != "id"]
#: Stores a visit unless its client id is stored already (a parallel retry): then no row comes back.
_INSERT_VISIT = text(
    f"INSERT INTO visits ({', '.join(c.name for c in _VISIT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c.name for c in _VISIT_COLUMNS)}) ON CONFLICT (client_id) DO NOTHING RETURNING id"
).bindparams(*[bindparam(c.name, type_=c.type) for c in _VISIT_COLUMNS])
_STORED_VISIT = text("SELECT id, agent_id, request, contract_id FROM visits WHERE client_id = :client_id")


def record_visit(agent: User, item: dict) -> Outcome:
    """One ``{"type": "visit", …}`` item of the sync (PRODUCT.md §5)."""
    client_id = _client_id(item)
    request = _canonical({k: item.get(k) for k in ("building_id", "flat", "outcome", "at", "gps", "note",
                                                   "callback_at", "competitor", "phone")})
    building_id, flat = item.get("building_id"), item.get("flat")
    try:
        moment, bad_time = _moment(item.get("at"), "at"), None
    except DomainError as exc:  # refused below, after the replay check; meanwhile the zone is looked up for today
        moment, bad_time = None, exc
    day = clock.ensure_utc(moment).astimezone(clock.company_zone()).date() if moment else clock.today()
    facts = db.session.connection().execute(_door_facts_statement(), {
        "client_id": client_id, "agent_id": agent.id, "day": day, "building_id": _key(building_id),
        "flat": _key(flat)}).one()
    if facts.visit_id is not None:
        return _replay(facts.visit_id, facts.visit_agent_id, facts.visit_request, agent, request)
    outcome = item.get("outcome")
    if outcome not in rules.OUTCOMES:
        raise _invalid("outcome", _l("One of: %(outcomes)s.", outcomes=", ".join(rules.OUTCOMES)))
    if outcome == "signed":
        raise _invalid("outcome", _l("A signed door is sent as a contract item."))
    if bad_time is not None:
        raise bad_time
    at = _in_grace(moment)
    if facts.building_id is None or not facts.in_zone:
        raise _not_your_zone()
    _flat(facts.apartments, flat)
    fields: dict = {}
    if outcome == "callback":
        fields["callback_at"] = clock.ensure_utc(_moment(item.get("callback_at"), "callback_at"))
        if fields["callback_at"] <= at:
            raise _invalid("callback_at", _l("The callback must be after the visit."))
    if outcome == "lead":
        if not item.get("phone"):
            raise _invalid("phone", _l("A lead needs the resident's phone."))
        fields["phone"] = contracts.normalise_phone(str(item.get("phone")))
    if outcome == "competitor":
        name = item.get("competitor")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 120:
            raise _invalid("competitor", _l("Name the competitor (up to 120 characters)."))
        fields["competitor"] = name.strip()
    note = item.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise _invalid("note", _l("Text of up to %(n)d characters.", n=NOTE_MAX))
    lat, lon, accuracy = _gps(item.get("gps"))
    if facts.lock_id is not None and not facts.lifted and at > facts.lock_at:
        raise _locked(flat, facts.lock_outcome)
    visit_id, inserted = _insert(agent, building_id, facts.lat, facts.lon, flat, outcome, at, client_id, request,
                                 lat, lon, accuracy, note=(note or "").strip() or None, **fields)
    if not inserted:  # a parallel retry stored it first: a duplicate, not a second create
        stored = db.session.connection().execute(_STORED_VISIT, {"client_id": client_id}).one()
        return _replay(stored.id, stored.agent_id, stored.request, agent, request)
    return Outcome("created", visit_id)


def _insert(agent, building_id, building_lat, building_lon, flat, outcome, at, client_id, request,
            lat, lon, accuracy, **fields) -> tuple[int, bool]:
    """Store a visit; (its id, True), or (None, False) when a parallel retry stored this client id first."""
    gps = rules.check_gps(building_lat, building_lon, lat, lon, accuracy)
    values = dict.fromkeys(c.name for c in _VISIT_COLUMNS)
    values.update(client_id=client_id, agent_id=agent.id, supervisor_id=agent.manager_id, building_id=building_id,
                  flat=flat, outcome=outcome, at=at, recorded_at=clock.now(), lat=lat, lon=lon, accuracy=accuracy,
                  distance_m=round(gps.distance_m, 1) if gps.distance_m is not None else None,
                  gps_colour=gps.colour, flagged=gps.flagged, flag_reason=gps.reason, request=request, **fields)
    visit_id = db.session.connection().execute(_INSERT_VISIT, values).scalar()
    return visit_id, visit_id is not None


def _replay(visit_id: int, visit_agent_id: int, stored_request: str, agent: User, request: str) -> Outcome:
    if visit_agent_id != agent.id or stored_request != request:
        raise Conflict("client_id_reused", _l("This client id was already used for different data."),
                       {"client_id": _l("Already used.")})
    return Outcome("duplicate", visit_id)


def record_contract(agent: User, item: dict) -> Outcome:
    """One ``{"type": "contract", …}`` item: the contract service signs; a ``signed`` visit links it."""
    client_id = _client_id(item)
    subscriber = item.get("subscriber") if isinstance(item.get("subscriber"), dict) else {}
    addons = item.get("addons") or []
    if not isinstance(addons, list) or not all(isinstance(a, str) for a in addons):
        raise _invalid("addons", _l("A list of add-on codes."))
    if not isinstance(item.get("tariff"), str):
        raise _invalid("tariff", _l("A tariff code."))
    for name in ("name", "phone"):
        if not isinstance(subscriber.get(name), str):
            raise _invalid(f"subscriber.{name}", _l("Required."))
    request = _canonical({k: item.get(k) for k in ("building_id", "flat", "subscriber", "tariff", "addons",
                                                   "adult_confirmed", "at", "gps")})
    visit_key = f"{client_id}#signed"
    existing = db.session.connection().execute(_STORED_VISIT, {"client_id": visit_key}).one_or_none()
    if existing is not None:
        outcome = _replay(existing.id, existing.agent_id, existing.request, agent, request)
        outcome.contract = db.session.get(Contract, existing.contract_id)
        return outcome
    at = _business_time(item.get("at"))
    building = building_for(agent, item.get("building_id"), at)
    flat = _flat(building.apartments, item.get("flat"))
    lat, lon, accuracy = _gps(item.get("gps"))
    _refuse_if_locked(building, flat, at)
    contract, created = contracts.sign(agent, agent=agent, building=building, flat=flat,
                                       subscriber_name=subscriber.get("name") or "", phone=subscriber.get("phone") or "",
                                       tariff_code=item.get("tariff") or "", addon_codes=addons,
                                       adult_confirmed=item.get("adult_confirmed") is True, at=at, client_id=client_id)
    if not created:  # a parallel retry signed it first: answer as its replay would be answered
        existing = db.session.connection().execute(_STORED_VISIT, {"client_id": visit_key}).one_or_none()
        if existing is None:
            raise Conflict("client_id_reused", _l("This client id was already used for different data."),
                           {"client_id": _l("Already used.")})
        outcome = _replay(existing.id, existing.agent_id, existing.request, agent, request)
        outcome.contract = contract
        return outcome
    visit_id = link_signed_visit(contract, visit_key, request, lat, lon, accuracy)
    return Outcome("created", visit_id, contract)


def link_signed_visit(contract: Contract, client_id: str, request: str, lat=None, lon=None, accuracy=None) -> int:
    """The ``signed`` visit of a contract signed at the door (the funnel counts it); its id."""
    building = contract.building
    visit_id, inserted = _insert(contract.agent, building.id, building.lat, building.lon, contract.flat, "signed",
                                 contract.at, client_id, request, lat, lon, accuracy, contract_id=contract.id)
    if not inserted:
        visit_id = db.session.connection().execute(_STORED_VISIT, {"client_id": client_id}).one().id
    return visit_id


def unlock(actor: User | None, building: Building, flat: int, reason: str) -> DoorUnlock:
    """Reopen a locked door: the territory's supervisor (or the sales head above), with a reason."""
    territory = db.session.get(Territory, building.territory_id) if building.territory_id else None
    allowed = actor is None or (territory is not None and (
        (actor.role == SUPERVISOR and territory.supervisor_id == actor.id)
        or (actor.role == SALES_HEAD and territory.region_id == actor.id)))
    if not allowed:
        raise Forbidden("forbidden", _l("Only the territory's supervisor unlocks its doors."))
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise _invalid("reason", _l("Say why the door is unlocked (up to 1000 characters)."))
    visit = last_locking_visit(building.id, flat)
    if visit is None:
        raise Conflict("not_locked", _l("Flat %(flat)d is not locked.", flat=flat))
    unlock_ = DoorUnlock(building_id=building.id, flat=flat, visit_id=visit.id,
                         supervisor_id=actor.id if actor else None, reason=reason, at=clock.now())
    db.session.add(unlock_)
    db.session.flush()
    record("door.unlocked", "building", building.id, subject_id=visit.agent_id,
           before={"flat": flat, "outcome": visit.outcome, "visit": visit.id}, after={"reason": reason})
    return unlock_


# ---------------------------------------------------------------- what the phone caches

def doors(building_ids: list[int]) -> dict[int, dict[int, dict]]:
    """building id → flat → {"outcome", "at", "locked", "contract"} for every flat with a visit or contract."""
    result: dict[int, dict[int, dict]] = {b: {} for b in building_ids}
    if not building_ids:
        return result
    unlocked = set(db.session.scalars(select(DoorUnlock.visit_id).where(DoorUnlock.building_id.in_(building_ids))))
    for visit in db.session.scalars(select(Visit).where(Visit.building_id.in_(building_ids))
                                    .order_by(Visit.building_id, Visit.flat, Visit.at, Visit.id)):
        door = result[visit.building_id].setdefault(visit.flat, {"locked": False, "contract": None})
        door["outcome"], door["at"] = visit.outcome, visit.at.isoformat()
        if visit.outcome in rules.LOCKING:
            door["locked"] = visit.id not in unlocked
    for building_id, flat, number in db.session.execute(
            select(Contract.building_id, Contract.flat, Contract.number)
            .where(Contract.building_id.in_(building_ids), Contract.status != "cancelled")):
        door = result[building_id].setdefault(flat, {"locked": False, "outcome": "signed", "at": None})
        door["contract"] = number
    return result


def my_zones(agent: User) -> list[dict]:
    """``GET /api/v1/me/zones``: today's zones, their buildings with the door grid and each flat's state."""
    from territories.models import Zone

    zones = db.session.scalars(select(Zone).where(Zone.id.in_(territories.agent_zone_ids(agent)),
                                                  Zone.retired_at.is_(None)).order_by(Zone.name)).all()
    buildings = db.session.scalars(select(Building).where(Building.zone_id.in_([z.id for z in zones]))
                                   .order_by(Building.address)).all()
    state = doors([b.id for b in buildings])
    out = []
    for zone in zones:
        out.append({"id": zone.id, "name": zone.name, "geometry": json.loads(zone.geometry), "buildings": [{
            "id": b.id, "external_id": b.external_id, "address": b.address, "lat": b.lat, "lon": b.lon,
            "apartments": b.apartments, "entrances": b.entrances, "floors": b.floors,
            "grid": rules.door_grid(b.apartments, b.entrances, b.floors),
            "flats": {str(flat): door for flat, door in sorted(state[b.id].items())}}
            for b in buildings if b.zone_id == zone.id]})
    return out


# ---------------------------------------------------------------- the agent's day

def offer(at: datetime | None = None) -> dict:
    """Tariffs and add-ons offered now (the version in force has an amount for them) with the
    monthly fee and what the agent earns for each (minor units)."""
    from crm.catalogue.models import Tariff
    from crm.ledger import services as ledger

    version = ledger.version_in_force(at or clock.now())
    if version is None:
        return {"rate_version": None, "tariffs": [], "addons": []}
    amounts = ledger.rates_of(version).amounts
    items = db.session.scalars(select(Tariff).where(Tariff.archived_at.is_(None), Tariff.code.in_(list(amounts)))
                               .order_by(Tariff.is_addon, Tariff.monthly_fee)).all()

    def row(t):
        return {"code": t.code, "name": t.name, "speed_mbit": t.speed_mbit, "monthly_fee": t.monthly_fee,
                "commission": amounts[t.code]}

    return {"rate_version": version.id, "tariffs": [row(t) for t in items if not t.is_addon],
            "addons": [row(t) for t in items if t.is_addon]}


def _last_per_flat(agent: User, outcomes) -> list[Visit]:
    """The agent's visits that are still the last word on their door, among ``outcomes``."""
    latest = (select(Visit.building_id, Visit.flat, func.max(Visit.at).label("at"))
              .where(Visit.building_id.in_(select(Building.id).where(
                  Building.zone_id.in_(territories.agent_zone_ids(agent)))))
              .group_by(Visit.building_id, Visit.flat).subquery())
    return list(db.session.scalars(
        select(Visit).join(latest, (latest.c.building_id == Visit.building_id) & (latest.c.flat == Visit.flat)
                           & (latest.c.at == Visit.at))
        .where(Visit.outcome.in_(outcomes)).order_by(Visit.at)))


def revisits(agent: User) -> list[dict]:
    """Doors to knock again: callbacks (due first) and not_home doors, to try at another time of day."""
    zone = clock.company_zone()
    out = []
    for visit in _last_per_flat(agent, ("callback", "not_home")):
        local = visit.at.astimezone(zone)
        item = {"building_id": visit.building_id, "flat": visit.flat, "outcome": visit.outcome,
                "at": visit.at.isoformat(), "address": visit.building.address,
                "tried": rules.time_of_day(local.hour)}
        if visit.outcome == "callback":
            item["callback_at"] = visit.callback_at.isoformat() if visit.callback_at else None
        out.append(item)
    out.sort(key=lambda i: (i["outcome"] != "callback", i.get("callback_at") or i["at"]))
    return out


def leads(agent: User) -> list[dict]:
    """Interested residents not signed yet."""
    return [{"building_id": v.building_id, "flat": v.flat, "phone": v.phone, "note": v.note,
             "at": v.at.isoformat(), "address": v.building.address}
            for v in _last_per_flat(agent, ("lead",))]

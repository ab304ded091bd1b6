"""Territories, zones, assignments and building membership.

Services flush; the request or CLI command commits once. Every change is audited.
Membership (``buildings.territory_id``/``zone_id``) is only ever written here, by
:func:`recompute_membership` and the importer, always with the whole set of active
polygons, so it is the same whichever way a building or polygon arrived.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, bindparam, func, or_, select, update

from crm import clock
from crm.audit.services import record
from crm.database import lock_name
from crm.errors import Conflict, DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from territories.models import Building, Notification, PolygonVersion, Territory, Zone, ZoneAssignment

if TYPE_CHECKING:
    import numpy as np

    from territories import geometry
# numpy, shapely and pyproj (territories.geometry) load when a polygon is first handled, not at
# start-up: a CLI command or a worker that never touches a map does not pay for them

#: Second key of the advisory lock every membership writer takes (PostgreSQL).
LOCK_CLASS_TERRITORIES = 2
NAME_MAX = 120


# ---------------------------------------------------------------- who may do what

def region_of(user: User) -> User | None:
    """The sales head above ``user`` (or ``user`` when it is one)."""
    seen = 0
    while user is not None and seen < 10:
        if user.role == SALES_HEAD:
            return user
        user = user.manager
        seen += 1
    return None


def visible_territories(user: User | None):
    """A SELECT of the territories ``user`` sees (None = the operator: all)."""
    query = select(Territory)
    if user is None or user.role == FINANCE:
        return query
    if user.role == SALES_HEAD:
        return query.where(Territory.region_id == user.id)
    if user.role == SUPERVISOR:
        return query.where(Territory.supervisor_id == user.id)
    if user.role == AGENT:
        return query.where(Territory.id.in_(select(Zone.territory_id).where(Zone.id.in_(agent_zone_ids(user)))))
    return query.where(False)


def visible_zones(user: User | None):
    query = select(Zone)
    if user is None or user.role == FINANCE:
        return query
    if user.role == AGENT:
        return query.where(Zone.id.in_(agent_zone_ids(user)))
    return query.where(Zone.territory_id.in_(visible_territories(user).with_only_columns(Territory.id)))


def assignment_in_force(agent_id, day):
    """The condition that a zone assignment of ``agent_id`` covers ``day`` (values or bind parameters)."""
    return and_(ZoneAssignment.agent_id == agent_id, ZoneAssignment.valid_from <= day,
                or_(ZoneAssignment.valid_to.is_(None), ZoneAssignment.valid_to >= day))


def agent_zone_ids(agent: User, day: date | None = None):
    """A SELECT of the ids of the zones ``agent`` walks on ``day`` (today by default)."""
    return select(ZoneAssignment.zone_id).where(assignment_in_force(agent.id, day or clock.today()))


def may_edit_territory(user: User | None, territory: Territory | None, region: User | None = None) -> bool:
    if user is None:
        return True
    if user.role != SALES_HEAD:
        return False
    return (territory.region_id if territory else (region.id if region else user.id)) == user.id


def may_edit_zones_of(user: User | None, territory: Territory) -> bool:
    if user is None:
        return True
    if user.role == SALES_HEAD:
        return territory.region_id == user.id
    return user.role == SUPERVISOR and territory.supervisor_id == user.id


def get_territory(user: User | None, territory_id: int) -> Territory:
    found = db.session.scalar(visible_territories(user).where(Territory.id == territory_id))
    if found is None:
        raise NotFound("not_found", _l("No such territory."))
    return found


def get_zone(user: User | None, zone_id: int) -> Zone:
    found = db.session.scalar(visible_zones(user).where(Zone.id == zone_id))
    if found is None:
        raise NotFound("not_found", _l("No such zone."))
    return found


# ---------------------------------------------------------------- membership

def _shape(polygon) -> object:
    from territories import geometry

    return geometry.parse_polygon(polygon.geometry)


def active_polygons() -> tuple[list[tuple[int, object]], list[tuple[int, object]], dict[int, int]]:
    """Shapes of every active territory and zone, and each zone's territory id."""
    territories = [(t.id, _shape(t)) for t in db.session.scalars(
        select(Territory).where(Territory.retired_at.is_(None)).order_by(Territory.id))]
    zone_rows = db.session.scalars(select(Zone).where(Zone.retired_at.is_(None)).order_by(Zone.id)).all()
    return territories, [(z.id, _shape(z)) for z in zone_rows], {z.id: z.territory_id for z in zone_rows}


def locate(lats, lons, polygons=None) -> tuple[np.ndarray, np.ndarray]:
    """Territory id and zone id (0 = none) for each point, against the active polygons."""
    import numpy as np

    from territories import geometry

    territories, zones, zone_territory = polygons or active_polygons()
    lats, lons = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
    territory_ids = geometry.assign_points(lats, lons, territories)
    zone_ids = geometry.assign_points(lats, lons, zones)
    if zone_territory and len(zone_ids):
        # a point inside a zone belongs to the zone's territory, even within the 1 m tolerance outside it
        lookup = np.zeros(max(zone_territory) + 1, dtype=np.int64)
        for zid, tid in zone_territory.items():
            lookup[zid] = tid
        territory_ids = np.where(zone_ids > 0, lookup[zone_ids], territory_ids)
    return territory_ids, zone_ids


def recompute_membership(area=None) -> list[tuple[int, int | None, int | None, int | None, int | None]]:
    """Re-place buildings (those inside ``area``'s bounds, or all) into the active polygons.

    Returns ``(building_id, old_territory, new_territory, old_zone, new_zone)`` for each change.
    """
    import numpy as np

    table = Building.__table__
    query = select(table.c.id, table.c.lat, table.c.lon, table.c.territory_id, table.c.zone_id)
    if area is not None:
        min_lon, min_lat, max_lon, max_lat = area
        pad = 0.0001  # ~10 m: the 1 m tolerance and rounding never leave a building behind
        query = query.where(table.c.lat.between(min_lat - pad, max_lat + pad),
                            table.c.lon.between(min_lon - pad, max_lon + pad))
    rows = db.session.execute(query).all()
    if not rows:
        return []
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    lats = np.fromiter((r[1] for r in rows), dtype=float, count=len(rows))
    lons = np.fromiter((r[2] for r in rows), dtype=float, count=len(rows))
    old_t = np.fromiter((r[3] or 0 for r in rows), dtype=np.int64, count=len(rows))
    old_z = np.fromiter((r[4] or 0 for r in rows), dtype=np.int64, count=len(rows))
    new_t, new_z = locate(lats, lons)
    changed = np.nonzero((old_t != new_t) | (old_z != new_z))[0]
    if not len(changed):
        return []
    now = clock.now()
    params = [{"b_id": int(ids[i]), "t": int(new_t[i]) or None, "z": int(new_z[i]) or None, "now": now}
              for i in changed]
    db.session.execute(update(table).where(table.c.id == bindparam("b_id"))
                       .values(territory_id=bindparam("t"), zone_id=bindparam("z"), updated_at=bindparam("now")),
                       params, execution_options={"synchronize_session": False})
    db.session.expire_all()
    return [(int(ids[i]), int(old_t[i]) or None, int(new_t[i]) or None, int(old_z[i]) or None,
             int(new_z[i]) or None) for i in changed]


def _bounds(*shapes) -> tuple[float, float, float, float]:
    boxes = [s.bounds for s in shapes if s is not None]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def notify_arrivals(changes, *, homeless: int = 0) -> None:
    """Tell each territory's supervisor (or, with none, its sales head) how many buildings
    just entered it; every sales head hears about ``homeless`` buildings that arrived
    outside every territory and wait in their queue."""
    per_territory = Counter(new_t for (_bid, old_t, new_t, _oz, _nz) in changes if new_t and new_t != old_t)
    for territory_id, count in sorted(per_territory.items()):
        territory = db.session.get(Territory, territory_id)
        notify(territory.supervisor_id or territory.region_id, "buildings_arrived",
               {"count": count, "territory": territory.name}, link=f"/territories/{territory.id}")
    if homeless:
        for head_id in db.session.scalars(select(User.id).where(User.role == SALES_HEAD, User.active)):
            notify(head_id, "buildings_unassigned", {"count": homeless}, link="/map")


# ---------------------------------------------------------------- notifications

def notify(user_id: int, kind: str, params: dict, *, link: str | None = None) -> Notification:
    note = Notification(user_id=user_id, kind=kind, params=json.dumps(params, ensure_ascii=False), link=link,
                        created_at=clock.now())
    db.session.add(note)
    return note


def unread_count(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def inbox(user: User, limit: int = 100) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id)
                                   .order_by(Notification.id.desc()).limit(limit)))


def mark_read(user: User) -> int:
    result = db.session.execute(update(Notification).where(Notification.user_id == user.id,
                                                           Notification.read_at.is_(None))
                                .values(read_at=clock.now()), execution_options={"synchronize_session": False})
    return result.rowcount or 0


# ---------------------------------------------------------------- polygons

@dataclass
class PolygonChange:
    polygon: Territory | Zone
    created: bool
    changed: bool
    moved: list = field(default_factory=list)  # membership changes


def _clean_name(name) -> str:
    name = (name or "").strip()
    if not name:
        raise DomainError("invalid", _l("Give the polygon a name."), {"name": _l("Required.")})
    if len(name) > NAME_MAX:
        raise DomainError("invalid", _l("The name is too long (at most %(n)d characters).", n=NAME_MAX),
                          {"name": _l("Too long.")})
    return name


def _shape_or_refuse(raw):
    from territories import geometry

    try:
        return geometry.parse_polygon(raw)
    except geometry.GeometryError as exc:
        raise _refuse_geometry(exc)


def _refuse_geometry(exc: geometry.GeometryError):
    message = _l(exc.message, **exc.params)
    return DomainError("invalid_geometry", message, {"geometry": message})


def _lock() -> None:
    lock_name(db.session, LOCK_CLASS_TERRITORIES, "membership")


def _keep_version(polygon, shape_json: str, actor: User | None) -> None:
    db.session.add(PolygonVersion(kind=polygon.kind, polygon_id=polygon.id, version=polygon.version,
                                  geometry=shape_json, recorded_at=clock.now(), actor_id=actor.id if actor else None))


def _create(polygon, shape_json: str, actor: User | None) -> None:
    db.session.add(polygon)
    db.session.flush()
    _keep_version(polygon, shape_json, actor)
    record(f"{polygon.kind}.created", polygon.kind, polygon.id, after=polygon.snapshot() | {"geometry": shape_json})


def _update(polygon, shape_json: str, actor: User | None, **fields):
    """Apply ``fields`` and the shape (a new version only when it moved); audit what changed.

    Returns ``(changed, old shape or None when the shape did not move)``.
    """
    before = polygon.snapshot()
    old_shape = None
    if shape_json != polygon.geometry:
        old_shape = _shape(polygon)
        polygon.geometry = shape_json
        polygon.version += 1
        _keep_version(polygon, shape_json, actor)
    for name, value in fields.items():
        setattr(polygon, name, value)
    polygon.updated_at = clock.now()
    changed = before != polygon.snapshot()  # the snapshot holds the version, so a move counts
    if changed:
        record(f"{polygon.kind}.updated", polygon.kind, polygon.id, before=before,
               after=polygon.snapshot() | ({"geometry": shape_json} if old_shape is not None else {}))
    return changed, old_shape


def _check_supervisor(region: User, supervisor: User | None) -> None:
    if supervisor is None:
        return
    if supervisor.role != SUPERVISOR or not supervisor.active or supervisor.manager_id != region.id:
        raise DomainError("invalid", _l("%(login)s is not an active supervisor of this region.",
                                        login=supervisor.login), {"supervisor": _l("Not a supervisor of yours.")})


def save_territory(actor: User | None, *, name: str, geometry_json, supervisor: User | None,
                   territory: Territory | None = None, region: User | None = None) -> PolygonChange:
    """Create (``territory`` None) or edit a territory: validate, keep the old geometry, re-place buildings."""
    from territories import geometry

    _lock()
    if territory is not None and not territory.active:
        raise Conflict("retired", _l("Territory %(name)s is retired.", name=territory.name))
    region = db.session.get(User, territory.region_id) if territory else (region or actor)
    if region is None or region.role != SALES_HEAD:
        raise DomainError("invalid", _l("A territory belongs to a sales head's region."))
    if not may_edit_territory(actor, territory, region):
        raise Forbidden("forbidden", _l("Only the region's sales head edits its territories."))
    name = _clean_name(name)
    shape = _shape_or_refuse(geometry_json)
    _check_supervisor(region, supervisor)
    clash = db.session.scalar(select(Territory).where(Territory.name == name,
                                                      Territory.id != (territory.id if territory else -1)))
    if clash is not None:
        raise Conflict("name_taken", _l("A territory named %(name)s exists already.", name=name),
                       {"name": _l("Taken.")})
    others = db.session.scalars(select(Territory).where(Territory.retired_at.is_(None),
                                                        Territory.id != (territory.id if territory else -1)))
    try:
        geometry.check_territory(shape, [(t.name, _shape(t)) for t in others])
        if territory is not None:
            for zone in db.session.scalars(select(Zone).where(Zone.territory_id == territory.id,
                                                              Zone.retired_at.is_(None))):
                try:
                    geometry.check_zone(_shape(zone), (name, shape), [])
                except geometry.GeometryError:
                    raise geometry.GeometryError(geometry.N_("zone %(name)s would lie outside the territory"),
                                                 name=zone.name)
    except geometry.GeometryError as exc:
        raise _refuse_geometry(exc)

    shape_json = json.dumps(geometry.to_geojson(shape), separators=(",", ":"))
    supervisor_id = supervisor.id if supervisor else None
    if territory is None:
        now = clock.now()
        territory = Territory(name=name, region_id=region.id, supervisor_id=supervisor_id, geometry=shape_json,
                              version=1, created_at=now, updated_at=now)
        _create(territory, shape_json, actor)
        created, changed, old_shape, moved_geometry = True, True, None, True
        handed_over = supervisor_id is not None
    else:
        old_supervisor = territory.supervisor_id
        changed, old_shape = _update(territory, shape_json, actor, name=name, supervisor_id=supervisor_id)
        created, moved_geometry = False, old_shape is not None
        handed_over = supervisor_id != old_supervisor
        if handed_over:
            _end_foreign_assignments(territory)
    if handed_over and supervisor_id:
        notify(supervisor_id, "territory_assigned", {"territory": territory.name}, link=f"/territories/{territory.id}")
    db.session.flush()
    moved = recompute_membership(_bounds(shape, old_shape)) if moved_geometry else []
    notify_arrivals(moved)
    return PolygonChange(territory, created, changed, moved)


def _end_foreign_assignments(territory: Territory) -> None:
    """A territory changed hands: zones walked by agents of someone else go back to the new queue."""
    today = clock.today()
    rows = db.session.execute(
        select(ZoneAssignment, User.manager_id).join(Zone, Zone.id == ZoneAssignment.zone_id)
        .join(User, User.id == ZoneAssignment.agent_id)
        .where(Zone.territory_id == territory.id, _live(today))).all()
    for assignment, manager_id in rows:
        if territory.supervisor_id is None or manager_id != territory.supervisor_id:
            _cut(assignment, today - timedelta(days=1), "territory_handed_over")


def _check_agent(territory: Territory, agent: User | None) -> None:
    if agent is None:
        return
    if agent.role != AGENT or not agent.active or territory.supervisor_id is None \
            or agent.manager_id != territory.supervisor_id:
        raise DomainError("invalid", _l("%(login)s is not an active agent of this territory's supervisor.",
                                        login=agent.login), {"agent": _l("Not an agent of this team.")})


def save_zone(actor: User | None, *, name: str, geometry_json, territory: Territory, zone: Zone | None = None,
              agent: User | None = None, valid_from: date | None = None, valid_to: date | None = None) -> PolygonChange:
    """Create or edit a zone inside ``territory``; optionally (re)assign it to ``agent``."""
    from territories import geometry

    _lock()
    if not territory.active:
        raise Conflict("retired", _l("Territory %(name)s is retired.", name=territory.name))
    if zone is not None and not zone.active:
        raise Conflict("retired", _l("Zone %(name)s is retired.", name=zone.name))
    if zone is not None and zone.territory_id != territory.id:
        raise DomainError("invalid", _l("A zone stays in its territory; draw a new one instead."))
    if not may_edit_zones_of(actor, territory):
        raise Forbidden("forbidden", _l("Only the territory's supervisor or sales head edits its zones."))
    name = _clean_name(name)
    shape = _shape_or_refuse(geometry_json)
    if agent is not None:
        _check_agent(territory, agent)
    clash = db.session.scalar(select(Zone).where(Zone.name == name, Zone.id != (zone.id if zone else -1)))
    if clash is not None:
        raise Conflict("name_taken", _l("A zone named %(name)s exists already.", name=name), {"name": _l("Taken.")})
    siblings = db.session.scalars(select(Zone).where(Zone.territory_id == territory.id, Zone.retired_at.is_(None),
                                                     Zone.id != (zone.id if zone else -1)))
    try:
        geometry.check_zone(shape, (territory.name, _shape(territory)), [(z.name, _shape(z)) for z in siblings])
    except geometry.GeometryError as exc:
        raise _refuse_geometry(exc)

    shape_json = json.dumps(geometry.to_geojson(shape), separators=(",", ":"))
    if zone is None:
        now = clock.now()
        zone = Zone(name=name, territory_id=territory.id, geometry=shape_json, version=1, created_at=now,
                    updated_at=now)
        _create(zone, shape_json, actor)
        created, changed, old_shape, moved_geometry = True, True, None, True
    else:
        changed, old_shape = _update(zone, shape_json, actor, name=name)
        created, moved_geometry = False, old_shape is not None
    if agent is not None:
        assign_zone(actor, zone, agent, valid_from=valid_from, valid_to=valid_to)
    db.session.flush()
    moved = recompute_membership(_bounds(shape, old_shape)) if moved_geometry else []
    return PolygonChange(zone, created, changed, moved)


def retire_territory(actor: User | None, territory: Territory) -> list:
    """Retire a territory and its zones; their buildings go back to the sales head's queue."""
    _lock()
    if not may_edit_territory(actor, territory):
        raise Forbidden("forbidden", _l("Only the region's sales head edits its territories."))
    if not territory.active:
        return []
    for zone in db.session.scalars(select(Zone).where(Zone.territory_id == territory.id, Zone.retired_at.is_(None))):
        _retire_zone(zone, "territory_retired")
    before = territory.snapshot()
    territory.retired_at = clock.now()
    record("territory.retired", "territory", territory.id, before=before, after=territory.snapshot())
    db.session.flush()
    return recompute_membership(_bounds(_shape(territory)))


def _retire_zone(zone: Zone, reason: str) -> None:
    end_assignments(zone_id=zone.id, reason=reason)
    before = zone.snapshot()
    zone.retired_at = clock.now()
    record("zone.retired", "zone", zone.id, before=before, after=zone.snapshot())


def retire_zone(actor: User | None, zone: Zone) -> list:
    _lock()
    if not may_edit_zones_of(actor, zone.territory):
        raise Forbidden("forbidden", _l("Only the territory's supervisor or sales head edits its zones."))
    if not zone.active:
        return []
    _retire_zone(zone, "zone_retired")
    db.session.flush()
    return recompute_membership(_bounds(_shape(zone)))


# ---------------------------------------------------------------- assignments

def current_assignment(zone_id: int, day: date | None = None) -> ZoneAssignment | None:
    day = day or clock.today()
    return db.session.scalar(select(ZoneAssignment).where(
        ZoneAssignment.zone_id == zone_id, ZoneAssignment.valid_from <= day,
        or_(ZoneAssignment.valid_to.is_(None), ZoneAssignment.valid_to >= day)).order_by(ZoneAssignment.id.desc()))


def current_agents(zone_ids, day: date | None = None) -> dict[int, User]:
    """Zone id → the agent walking it on ``day`` (zones with none, or an expired one, are absent)."""
    day = day or clock.today()
    rows = db.session.execute(select(ZoneAssignment.zone_id, User).join(User, User.id == ZoneAssignment.agent_id)
                              .where(ZoneAssignment.zone_id.in_(list(zone_ids)), ZoneAssignment.valid_from <= day,
                                     or_(ZoneAssignment.valid_to.is_(None), ZoneAssignment.valid_to >= day))
                              .order_by(ZoneAssignment.id)).all()
    return {zone_id: user for zone_id, user in rows}


def assign_zone(actor: User | None, zone: Zone, agent: User, *, valid_from: date | None = None,
                valid_to: date | None = None) -> ZoneAssignment:
    """Give ``zone`` to ``agent`` from ``valid_from`` (today) up to ``valid_to`` (open).

    One agent walks a zone at a time: assignments that would overlap are cut short the day before.
    """
    territory = zone.territory
    if not may_edit_zones_of(actor, territory):
        raise Forbidden("forbidden", _l("Only the territory's supervisor or sales head assigns its zones."))
    if not zone.active:
        raise Conflict("retired", _l("Zone %(name)s is retired.", name=zone.name))
    _check_agent(territory, agent)
    today = clock.today()
    valid_from = valid_from or today
    if valid_from < today:
        raise DomainError("invalid", _l("An assignment cannot start in the past."),
                          {"valid_from": _l("Today or later.")})
    if valid_to is not None and valid_to < valid_from:
        raise DomainError("invalid", _l("The assignment ends before it starts."),
                          {"valid_to": _l("On or after the start.")})
    overlapping = select(ZoneAssignment).where(ZoneAssignment.zone_id == zone.id, _live(valid_from))
    if valid_to is not None:
        overlapping = overlapping.where(ZoneAssignment.valid_from <= valid_to)
    resumes = []
    for other in db.session.scalars(overlapping.order_by(ZoneAssignment.id)).all():
        if valid_to is not None and (other.valid_to is None or other.valid_to > valid_to):
            # a cover for a few days: the other agent resumes the day after it ends
            resumes.append((other.agent_id, max(other.valid_from, valid_to + timedelta(days=1)), other.valid_to))
        _cut(other, valid_from - timedelta(days=1), "reassigned")
    for agent_id, start, end in resumes:
        resumed = ZoneAssignment(zone_id=zone.id, agent_id=agent_id, valid_from=start, valid_to=end,
                                 assigned_by_id=actor.id if actor else None, created_at=clock.now())
        db.session.add(resumed)
        db.session.flush()
        record("zone.assigned", "zone", zone.id, after=resumed.snapshot(), subject_id=agent_id)
    assignment = ZoneAssignment(zone_id=zone.id, agent_id=agent.id, valid_from=valid_from, valid_to=valid_to,
                                assigned_by_id=actor.id if actor else None, created_at=clock.now())
    db.session.add(assignment)
    db.session.flush()
    record("zone.assigned", "zone", zone.id, after=assignment.snapshot(), subject_id=agent.id)
    notify(agent.id, "zone_assigned", {"zone": zone.name, "from": valid_from.isoformat(),
                                       "to": valid_to.isoformat() if valid_to else None}, link="/map")
    return assignment


def _cut(assignment: ZoneAssignment, last_day: date, reason: str) -> None:
    """End ``assignment`` after ``last_day``; one that had not started yet never starts
    (its ``valid_to`` then lies before ``valid_from``, which only an ended row may have)."""
    before = assignment.snapshot()
    assignment.valid_to = last_day
    assignment.ended_at = clock.now()
    assignment.end_reason = reason
    record("zone.assignment_ended", "zone", assignment.zone_id, before=before, after=assignment.snapshot(),
           subject_id=assignment.agent_id)


def _live(day: date):
    """Assignments that still run on or after ``day`` (not ones cancelled before they started)."""
    return and_(or_(ZoneAssignment.valid_to.is_(None), ZoneAssignment.valid_to >= day),
                or_(ZoneAssignment.valid_to.is_(None), ZoneAssignment.valid_to >= ZoneAssignment.valid_from))


def end_assignments(*, zone_id: int | None = None, agent_id: int | None = None, reason: str) -> int:
    """End every current or future assignment of a zone or an agent today; returns how many zones."""
    today = clock.today()
    query = select(ZoneAssignment).where(_live(today))
    if zone_id is not None:
        query = query.where(ZoneAssignment.zone_id == zone_id)
    if agent_id is not None:
        query = query.where(ZoneAssignment.agent_id == agent_id)
    zones = set()
    for assignment in db.session.scalars(query.order_by(ZoneAssignment.id)).all():
        _cut(assignment, today - timedelta(days=1), reason)
        zones.add(assignment.zone_id)
    return len(zones)


def release_agent(agent: User, supervisor_id: int | None, reason: str) -> None:
    """An agent stopped working for ``supervisor_id``: their zones go back to that supervisor's queue."""
    ended = end_assignments(agent_id=agent.id, reason=f"agent_{reason}")
    if ended and supervisor_id:
        notify(supervisor_id, "zones_returned", {"count": ended, "agent": agent.name or agent.login},
               link="/territories")


# ---------------------------------------------------------------- queues and figures

def head_queue(user: User | None, limit: int = 200):
    """Buildings outside every territory (every sales head sees them: they are not in a region yet)."""
    query = select(Building).where(Building.territory_id.is_(None)).order_by(Building.id)
    return db.session.scalars(query.limit(limit)).all(), db.session.scalar(
        select(func.count()).select_from(Building).where(Building.territory_id.is_(None)))


def supervisor_queue(user: User | None, limit: int = 200):
    """Buildings in the user's territories but no zone, and zones with nobody walking them today."""
    territory_ids = visible_territories(user).where(Territory.retired_at.is_(None)).with_only_columns(Territory.id)
    buildings_q = select(Building).where(Building.territory_id.in_(territory_ids), Building.zone_id.is_(None))
    buildings = db.session.scalars(buildings_q.order_by(Building.id).limit(limit)).all()
    total = db.session.scalar(select(func.count()).select_from(buildings_q.subquery()))
    zones = db.session.scalars(select(Zone).where(Zone.territory_id.in_(territory_ids), Zone.retired_at.is_(None))
                               .order_by(Zone.name)).all()
    walked = current_agents([z.id for z in zones])
    return buildings, total, [z for z in zones if z.id not in walked]

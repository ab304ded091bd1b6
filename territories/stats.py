"""Coverage, penetration and building status, computed in SQL for many buildings at once.

*Coverage* = flats with at least one visit ÷ apartments; *penetration* = flats with an
active contract (or ``already_subscriber``) ÷ apartments; a building is ``new`` with
no visited flat, ``done`` when every flat has a final outcome, else ``in_work``.

A flat counts once whichever records speak of it (its visits, its contracts): a signed
door is final and penetrated while its contract is active.
"""
from __future__ import annotations

from sqlalchemy import case, func, select, union_all

from crm.contracts.models import Contract
from crm.extensions import db
from crm.visits import rules
from crm.visits.models import Visit
from territories.models import Building

STATUS_CODES = {"new": 0, "in_work": 1, "done": 2}
STATUS_NAMES = list(STATUS_CODES)

def _per_building(building_filter) -> dict[int, list]:
    """building id → [zone id, visited flats, flats with a final outcome, penetrated flats]."""
    is_final = case((Visit.outcome.in_(rules.FINAL - {"signed"}), 1), else_=0)  # "signed": the contract says
    is_subscriber = case((Visit.outcome == "already_subscriber", 1), else_=0)
    active = case((Contract.status != "cancelled", 1), else_=0)
    flats = union_all(
        select(Visit.building_id.label("building_id"), Visit.flat.label("flat"), is_final.label("f"),
               is_subscriber.label("p")),
        select(Contract.building_id, Contract.flat, active, active),
    ).subquery()
    per_flat = select(flats.c.building_id, func.max(flats.c.f).label("f"), func.max(flats.c.p).label("p")) \
        .group_by(flats.c.building_id, flats.c.flat).subquery()
    query = (select(per_flat.c.building_id, Building.zone_id, func.count(), func.sum(per_flat.c.f),
                    func.sum(per_flat.c.p))
             .join(Building, Building.id == per_flat.c.building_id).where(building_filter)
             .group_by(per_flat.c.building_id, Building.zone_id))
    return {building_id: [zone_id, visited, int(final or 0), int(penetrated or 0)]
            for building_id, zone_id, visited, final, penetrated in db.session.execute(query)}


def flat_counts(building_filter) -> dict[int, tuple[int, int, int]]:
    """building id → (visited flats, flats with a final outcome, penetrated flats); absent = all zero."""
    return {k: (v[1], v[2], v[3]) for k, v in _per_building(building_filter).items()}


def status_code(apartments: int, counts: tuple[int, int, int] | None) -> int:
    """0 new (no visited flat), 2 done (every flat has a final outcome), else 1 in work."""
    if not counts or counts[0] == 0:
        return 0
    return 2 if counts[1] >= apartments else 1


def status_of(apartments: int, counts: tuple[int, int, int] | None) -> str:
    return STATUS_NAMES[status_code(apartments, counts)]


def zone_figures(zone_ids: list[int], zone_filter=None) -> dict[int, dict]:
    """zone id → buildings, flats, visited, penetrated, coverage and penetration (fractions, None if no flats).

    ``zone_filter`` (a clause on ``Building.zone_id``, e.g. ``in_`` a subquery) replaces a long
    literal list of ids in the SQL when the caller has one.
    """
    if not zone_ids:
        return {}
    where = zone_filter if zone_filter is not None else Building.zone_id.in_(zone_ids)
    figures = {zid: {"buildings": 0, "flats": 0, "visited": 0, "penetrated": 0} for zid in zone_ids}
    for zone_id, buildings, flats in db.session.execute(
            select(Building.zone_id, func.count(), func.sum(Building.apartments)).where(where)
            .group_by(Building.zone_id)):
        if zone_id in figures:
            figures[zone_id]["buildings"], figures[zone_id]["flats"] = buildings, int(flats or 0)
    for zone_id, visited, _final, penetrated in _per_building(where).values():
        if zone_id in figures:
            figures[zone_id]["visited"] += visited
            figures[zone_id]["penetrated"] += penetrated
    for row in figures.values():
        row["coverage"] = row["visited"] / row["flats"] if row["flats"] else None
        row["penetration"] = row["penetrated"] / row["flats"] if row["flats"] else None
    return figures

"""Coverage, penetration and building status, computed in SQL for many buildings at once.

*Coverage* = flats with at least one visit ÷ apartments; *penetration* = flats with an
active contract (or ``already_subscriber``) ÷ apartments; a building is ``new`` with
no visited flat, ``done`` when every flat has a final outcome, else ``in_work``.

Door visits arrive with the phone day (a later feature): until then a flat counts as
visited and final when it has a contract, which is signed at the door. The visit
feature adds its counts through :data:`FLAT_SOURCES`.
"""
from __future__ import annotations

from sqlalchemy import distinct, func, select

from crm.contracts.models import Contract
from crm.extensions import db
from territories.models import Building

STATUS_CODES = {"new": 0, "in_work": 1, "done": 2}
STATUS_NAMES = list(STATUS_CODES)

#: Each source is ``fn(building_filter) -> iterable of (building_id, zone_id, visited, final, penetrated)``
#: counted per building; ``building_filter`` is a SQLAlchemy clause on ``Building``.
FLAT_SOURCES: list = []


def _contract_counts(building_filter):
    active = Contract.status != "cancelled"
    query = (select(Contract.building_id, Building.zone_id,
                    func.count(distinct(Contract.flat)),
                    func.count(distinct(Contract.flat)).filter(active))
             .join(Building, Building.id == Contract.building_id)
             .where(building_filter).group_by(Contract.building_id, Building.zone_id))
    for building_id, zone_id, touched, active_flats in db.session.execute(query):
        yield building_id, zone_id, touched, active_flats, active_flats


def _per_building(building_filter) -> dict[int, list]:
    totals: dict[int, list] = {}
    for source in [_contract_counts, *FLAT_SOURCES]:
        for building_id, zone_id, visited, final, penetrated in source(building_filter):
            row = totals.setdefault(building_id, [zone_id, 0, 0, 0])
            # until door visits arrive there is one source; then each counts flats the other may too
            row[1], row[2], row[3] = max(row[1], visited), max(row[2], final), max(row[3], penetrated)
    return totals


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

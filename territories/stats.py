"""Coverage, penetration and building status, computed in SQL for many buildings at once.

*Coverage* = flats with at least one visit ÷ apartments; *penetration* = flats with an
active contract (or ``already_subscriber``) ÷ apartments; a building is ``new`` with
no visited flat, ``done`` when every flat has a final outcome, else ``in_work``.

Door visits arrive with the phone day (a later feature): until then a flat counts as
visited and final when it has a contract, which is signed at the door. The visit
feature adds its counts through :data:`FLAT_SOURCES`.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import distinct, func, select

from crm.contracts.models import Contract
from crm.extensions import db
from territories.models import Building

STATUS_CODES = {"new": 0, "in_work": 1, "done": 2}

#: Each source is ``fn(building_filter) -> iterable of (building_id, visited, final, penetrated)``
#: counted per building; ``building_filter`` is a SQLAlchemy clause on ``Building``.
FLAT_SOURCES: list = []


def _contract_counts(building_filter):
    active = Contract.status != "cancelled"
    query = (select(Contract.building_id,
                    func.count(distinct(Contract.flat)),
                    func.count(distinct(Contract.flat)).filter(active))
             .join(Building, Building.id == Contract.building_id)
             .where(building_filter).group_by(Contract.building_id))
    for building_id, touched, active_flats in db.session.execute(query):
        yield building_id, touched, active_flats, active_flats


def flat_counts(building_filter) -> dict[int, tuple[int, int, int]]:
    """building id → (visited flats, flats with a final outcome, penetrated flats); absent = all zero."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for source in [_contract_counts, *FLAT_SOURCES]:
        for building_id, visited, final, penetrated in source(building_filter):
            row = totals[building_id]
            # sources count different flats only when the visit feature arrives; until then one source
            row[0], row[1], row[2] = max(row[0], visited), max(row[1], final), max(row[2], penetrated)
    return {k: tuple(v) for k, v in totals.items()}


def status_of(apartments: int, counts: tuple[int, int, int] | None) -> str:
    if not counts or counts[0] == 0:
        return "new"
    return "done" if counts[1] >= apartments else "in_work"


def zone_figures(zone_ids: list[int]) -> dict[int, dict]:
    """zone id → buildings, flats, visited, penetrated, coverage and penetration (fractions, None if no flats)."""
    if not zone_ids:
        return {}
    figures = {zid: {"buildings": 0, "flats": 0, "visited": 0, "penetrated": 0} for zid in zone_ids}
    for zone_id, buildings, flats in db.session.execute(
            select(Building.zone_id, func.count(), func.sum(Building.apartments))
            .where(Building.zone_id.in_(zone_ids)).group_by(Building.zone_id)):
        figures[zone_id]["buildings"], figures[zone_id]["flats"] = buildings, int(flats or 0)
    counts = flat_counts(Building.zone_id.in_(zone_ids))
    if counts:
        zone_of = dict(db.session.execute(select(Building.id, Building.zone_id)
                                          .where(Building.id.in_(list(counts)))).all())
        for building_id, (visited, _final, penetrated) in counts.items():
            row = figures[zone_of[building_id]]
            row["visited"] += visited
            row["penetrated"] += penetrated
    for row in figures.values():
        row["coverage"] = row["visited"] / row["flats"] if row["flats"] else None
        row["penetration"] = row["penetrated"] / row["flats"] if row["flats"] else None
    return figures

"""Buildings arrive: the network system's feed (API), a sales head's upload, the operator's CLI.

All three parse with :mod:`territories.importfile` and land here. Idempotent on
``external_id``: defaults apply only on create, an update changes only the fields
present, re-importing the same file changes nothing. Rows are written with one
executemany per kind, membership is computed for the whole batch at once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, insert, select, update

from crm import clock
from crm.audit.services import record
from crm.extensions import db
from territories import services
from territories.importfile import N_, BuildingRecord, Rejection
from territories.models import Building, Zone

CHUNK = 900  # stays under SQLite's bound-parameter limit with room to spare
UPDATABLE = ("address", "apartments", "entrances", "floors", "connected_at")


@dataclass
class ImportResult:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    #: external_id → zone name (or None) for every accepted record
    zones: dict[str, str | None] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"imported": self.imported, "updated": self.updated, "unchanged": self.unchanged,
                "rejected": [{"index": r.index, "external_id": r.external_id, "reason": r.reason}
                             for r in self.rejected],
                "zones": self.zones}


def _existing(external_ids: list[str]) -> dict[str, dict]:
    table = Building.__table__
    found: dict[str, dict] = {}
    for start in range(0, len(external_ids), CHUNK):
        chunk = external_ids[start:start + CHUNK]
        for row in db.session.execute(select(table).where(table.c.external_id.in_(chunk))).mappings():
            found[row["external_id"]] = dict(row)
    return found


def _highest_used_flat(building_ids: list[int]) -> dict[int, int]:
    """The highest flat number that has a contract or a visit, per building."""
    from crm.contracts.models import Contract
    from crm.visits.models import Visit

    highest: dict[int, int] = {}
    for start in range(0, len(building_ids), CHUNK):
        chunk = building_ids[start:start + CHUNK]
        for model in (Contract, Visit):
            for building_id, flat in db.session.execute(
                    select(model.building_id, func.max(model.flat)).where(model.building_id.in_(chunk))
                    .group_by(model.building_id)):
                highest[building_id] = max(flat, highest.get(building_id, 0))
    return highest


def import_buildings(records: list[BuildingRecord], rejections: list[Rejection], *, source: str) -> ImportResult:
    """Create or update buildings from parsed records; ``rejections`` are the parser's."""
    services._lock()
    result = ImportResult(rejected=list(rejections))
    now = clock.now()
    existing = _existing([r.external_id for r in records])

    creates: list[dict] = []
    updates: list[tuple[BuildingRecord, dict, dict]] = []  # record, old row, new values
    shrinking: list[tuple[BuildingRecord, dict, dict]] = []
    accepted: list[BuildingRecord] = []
    for rec in records:
        old = existing.get(rec.external_id)
        footprint = json.dumps(rec.footprint, separators=(",", ":")) if rec.footprint else None
        if old is None:
            fields = rec.fields
            creates.append({"external_id": rec.external_id, "address": fields["address"], "lat": rec.lat,
                            "lon": rec.lon, "footprint": footprint, "apartments": fields["apartments"],
                            "entrances": fields.get("entrances") or 1, "floors": fields.get("floors"),
                            "connected_at": fields.get("connected_at") or now, "created_at": now,
                            "updated_at": None})
            accepted.append(rec)
            continue
        new = {name: rec.fields[name] for name in UPDATABLE if name in rec.fields}
        new["lat"], new["lon"] = rec.lat, rec.lon
        if footprint is not None:
            new["footprint"] = footprint
        changes = {name: value for name, value in new.items() if old[name] != value}
        if not changes:
            result.unchanged += 1
            accepted.append(rec)
            continue
        merged_entrances = changes.get("entrances", old["entrances"])
        merged_apartments = changes.get("apartments", old["apartments"])
        if merged_entrances > merged_apartments:
            result.rejected.append(Rejection(rec.index, rec.label, rec.external_id,
                                             N_("%(entrances)s entrances for %(apartments)s apartments"),
                                             {"entrances": merged_entrances, "apartments": merged_apartments}))
            continue
        item = (rec, old, changes)
        (shrinking if merged_apartments < old["apartments"] else updates).append(item)

    if shrinking:
        highest = _highest_used_flat([old["id"] for _rec, old, _c in shrinking])
        for rec, old, changes in shrinking:
            used = highest.get(old["id"], 0)
            if used > changes["apartments"]:
                result.rejected.append(Rejection(
                    rec.index, rec.label, rec.external_id,
                    N_("apartments %(new)s would drop flats that have visits or contracts (flat %(used)s)"),
                    {"new": changes["apartments"], "used": used}))
            else:
                updates.append((rec, old, changes))
    accepted.extend(rec for rec, _old, _changes in updates)
    result.rejected.sort(key=lambda r: r.index)

    # membership for everything new or moved, in one pass over the active polygons
    located = creates + [old | changes for _rec, old, changes in updates]
    if located:
        territory_ids, zone_ids = services.locate([row["lat"] for row in located], [row["lon"] for row in located])
        for row, t_id, z_id in zip(located, territory_ids.tolist(), zone_ids.tolist()):
            row["territory_id"], row["zone_id"] = t_id or None, z_id or None

    table = Building.__table__
    if creates:
        db.session.execute(insert(table), creates)
    if updates:
        params = []
        for (_rec, old, changes), row in zip(updates, located[len(creates):]):
            params.append({"b_id": old["id"], "address": row["address"], "lat": row["lat"], "lon": row["lon"],
                           "footprint": row["footprint"], "apartments": row["apartments"],
                           "entrances": row["entrances"], "floors": row["floors"],
                           "connected_at": row["connected_at"], "territory_id": row["territory_id"],
                           "zone_id": row["zone_id"], "updated_at": now})
        db.session.execute(update(table).where(table.c.id == bindparam("b_id")).values(
            {name: bindparam(name) for name in params[0] if name != "b_id"}),
            params, execution_options={"synchronize_session": False})
    result.imported, result.updated = len(creates), len(updates)

    if creates or updates:
        record("buildings.imported", "import", source[:100], after={
            "source": source, "imported": len(creates), "updated": len(updates), "unchanged": result.unchanged,
            "rejected": len(result.rejected),
            "created": _span([row["external_id"] for row in creates]),
            "changes": {old["external_id"]: {name: [_plain(old[name]), _plain(value)]
                                             for name, value in changes.items()}
                        for _rec, old, changes in updates}})
        arrivals = [(None, None, row["territory_id"], None, row["zone_id"]) for row in creates]
        arrivals += [(old["id"], old["territory_id"], row["territory_id"], old["zone_id"], row["zone_id"])
                     for (_rec, old, _c), row in zip(updates, located[len(creates):])]
        services.notify_arrivals(arrivals, homeless=sum(1 for row in creates if row["territory_id"] is None))

    zone_names = dict(db.session.execute(select(Zone.id, Zone.name)).all()) if accepted else {}
    zone_of = {row["external_id"]: row["zone_id"] for row in located}
    for rec in accepted:
        zone_id = zone_of[rec.external_id] if rec.external_id in zone_of else existing[rec.external_id]["zone_id"]
        result.zones[rec.external_id] = zone_names.get(zone_id)
    db.session.flush()
    return result


def _span(ids: list[str]) -> dict:
    return {"count": len(ids), "first": ids[0] if ids else None, "last": ids[-1] if ids else None}


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def import_polygons(records, rejections: list[Rejection], *, actor=None) -> ImportResult:
    """Territories and zones from a polygon file, through the map editor's own services.

    Territories go first (a zone in the same file may lie in one), each record in its own
    savepoint: a refused polygon is reported with its reason and the others still land.
    """
    from crm.errors import DomainError
    from crm.users.models import User
    from territories.models import Territory

    result = ImportResult(rejected=list(rejections))
    ordered = sorted(records, key=lambda r: (r.kind != "territory", r.index))

    def reject(rec, message):
        result.rejected.append(Rejection(rec.index, rec.label, rec.name, str(message), {}))

    for rec in ordered:
        owner = None
        if rec.owner:
            owner = db.session.scalar(select(User).where(User.login == rec.owner))
            if owner is None:
                reject(rec, f"unknown owner {rec.owner}")
                continue
        model = Territory if rec.kind == "territory" else Zone
        existing = db.session.scalar(select(model).where(model.name == rec.name))
        savepoint = db.session.begin_nested()
        try:
            if rec.kind == "territory":
                if owner is None and existing is None:
                    raise DomainError("invalid", "owner (the supervisor's login) is required for a new territory")
                region = services.region_of(owner) if owner else None
                change = services.save_territory(actor, name=rec.name, geometry_json=rec.geometry,
                                                 supervisor=owner or (existing.supervisor if existing else None),
                                                 territory=existing, region=region)
            else:
                territory = db.session.scalar(select(Territory).where(Territory.name == rec.territory))
                if territory is None:
                    raise DomainError("invalid", f"unknown territory {rec.territory}")
                agent = owner
                if owner is not None and existing is not None:
                    current = services.current_assignment(existing.id)
                    agent = None if current is not None and current.agent_id == owner.id else owner
                change = services.save_zone(actor, name=rec.name, geometry_json=rec.geometry, territory=territory,
                                            zone=existing, agent=agent)
                change.changed = change.changed or agent is not None
        except DomainError as exc:
            savepoint.rollback()
            reject(rec, exc.message)
            continue
        savepoint.commit()
        if change.created:
            result.imported += 1
        elif change.changed:
            result.updated += 1
        else:
            result.unchanged += 1
    result.rejected.sort(key=lambda r: r.index)
    db.session.flush()
    return result

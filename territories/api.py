"""Buildings feed (``POST /api/v1/buildings``) and the map editor's JSON endpoints.

The map endpoints are for signed-in users (session cookie + ``X-CSRFToken``); every
one answers only what the user's scope holds and refuses bad input with the
``{"error": …}`` shape and a localised message.
"""
from __future__ import annotations

import json
from datetime import date

from flask import current_app, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select, true

from crm import clock
from crm.api.auth import ApiError, require_scope, require_user
from crm.api.routes import bp
from crm.extensions import db
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from territories import importfile, importer, services, stats
from territories.models import Building, Territory, Zone

MAP_ROLES = (AGENT, SUPERVISOR, SALES_HEAD, FINANCE)


@bp.route("/buildings", methods=["POST"])
@require_scope("buildings:write")
def post_buildings():
    body = request.get_json(silent=True)
    try:
        records, rejections = importfile.parse_buildings_json(body, tz=clock.company_zone())
    except importfile.FileUnreadable as exc:
        raise ApiError(422, "invalid_body", _("The body must be a GeoJSON FeatureCollection: %(reason)s",
                                              reason=str(exc)))
    result = importer.import_buildings(records, rejections, source=f"api:{request.headers.get('X-Source', 'feed')[:50]}")
    db.session.commit()
    return jsonify(result.as_json())


# ---------------------------------------------------------------- map data

def building_scope(user: User):
    """A WHERE clause on Building for what ``user`` sees on a map."""
    if user.role == FINANCE:
        return true()
    if user.role == AGENT:
        return Building.zone_id.in_(services.agent_zone_ids(user))
    if user.role == SALES_HEAD:
        # the region, plus the queue of buildings in no territory yet: everything but other regions'
        # territories (one predicate: a table scan beats an index OR for most of a city)
        others = select(Territory.id).where(Territory.region_id != user.id)
        return func.coalesce(Building.territory_id, 0).not_in(others)
    territory_ids = services.visible_territories(user).where(Territory.retired_at.is_(None)) \
        .with_only_columns(Territory.id)
    return Building.territory_id.in_(territory_ids)


@bp.route("/map/buildings")
@require_user(*MAP_ROLES)
def map_buildings():
    """Compact rows ``[id, lat, lon, status, zone_id, territory_id]`` (0 = none): 50,000 buildings stay under 2 MB.

    Written as text straight from the rows, in chunks, so a city's worth of buildings
    allocates no long-lived objects (no list per row, no full garbage collection).
    """
    where = building_scope(current_user)
    counts = stats.flat_counts(where)
    result = db.session.execute(select(Building.id, Building.lat, Building.lon, Building.apartments,
                                       Building.zone_id, Building.territory_id).where(where).order_by(Building.id))
    parts, code, lookup = [], stats.status_code, counts.get
    for chunk in result.partitions(5000):
        parts.append(",".join("[%d,%.5f,%.5f,%d,%d,%d]" % (bid, lat, lon, code(apartments, lookup(bid)), zone or 0,
                                                          territory or 0)
                              for bid, lat, lon, apartments, zone, territory in chunk))
    body = '{"fields":%s,"statuses":%s,"rows":[%s]}' % (
        json.dumps(["id", "lat", "lon", "status", "zone", "territory"]), json.dumps(stats.STATUS_NAMES),
        ",".join(p for p in parts if p))
    return current_app.response_class(body, mimetype="application/json")


@bp.route("/map/buildings/<int:building_id>")
@require_user(*MAP_ROLES)
def map_building(building_id: int):
    building = db.session.scalar(select(Building).where(Building.id == building_id,
                                                        building_scope(current_user)))
    if building is None:
        raise ApiError(404, "not_found", _("No such building."))
    counts = stats.flat_counts(Building.id == building.id).get(building.id)
    return jsonify(id=building.id, external_id=building.external_id, address=building.address,
                   apartments=building.apartments, entrances=building.entrances, floors=building.floors,
                   status=stats.status_of(building.apartments, counts),
                   zone=building.zone.name if building.zone else None,
                   territory=building.territory.name if building.territory else None)


def _palette(index: int) -> str:
    # no reds: red marks the queues
    colours = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
               "#393b79", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#31a354", "#756bb1", "#636363"]
    return colours[index % len(colours)]


@bp.route("/map/polygons")
@require_user(*MAP_ROLES)
def map_polygons():
    """Active territories and zones in scope as GeoJSON, coloured by owner, with their figures."""
    user = current_user
    territories = db.session.scalars(services.visible_territories(user).where(Territory.retired_at.is_(None))
                                     .order_by(Territory.id)).all()
    zones = db.session.scalars(services.visible_zones(user).where(Zone.retired_at.is_(None))
                               .order_by(Zone.id)).all()
    agents = services.current_agents([z.id for z in zones])
    zone_ids = services.visible_zones(user).where(Zone.retired_at.is_(None)).with_only_columns(Zone.id)
    figures = stats.zone_figures([z.id for z in zones], Building.zone_id.in_(zone_ids))
    owners = sorted({t.supervisor_id for t in territories if t.supervisor_id} | {a.id for a in agents.values()})
    colour = {owner: _palette(i) for i, owner in enumerate(owners)}
    features = []
    for t in territories:
        features.append({"type": "Feature", "geometry": json.loads(t.geometry), "properties": {
            "kind": "territory", "id": t.id, "name": t.name, "owner_id": t.supervisor_id,
            "owner": t.supervisor.name if t.supervisor else None, "colour": colour.get(t.supervisor_id, "#555555"),
            "editable": services.may_edit_territory(user, t),
            "zones_editable": user.role != FINANCE and services.may_edit_zones_of(user, t)}})
    for z in zones:
        agent = agents.get(z.id)
        features.append({"type": "Feature", "geometry": json.loads(z.geometry), "properties": {
            "kind": "zone", "id": z.id, "name": z.name, "territory_id": z.territory_id,
            "owner_id": agent.id if agent else None, "owner": agent.name if agent else None,
            "colour": colour.get(agent.id, "#555555") if agent else "#555555",
            "editable": user.role not in (AGENT, FINANCE) and services.may_edit_zones_of(user, z.territory),
            **figures.get(z.id, {})}})
    return jsonify({"type": "FeatureCollection", "features": features})


# ---------------------------------------------------------------- the editor

def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", _("The body must be a JSON object."))
    return body


def _user_by_id(raw, field: str, role: str) -> User | None:
    if raw in (None, "", 0):
        return None
    try:
        user = db.session.get(User, int(raw))
    except (TypeError, ValueError):
        user = None
    if user is None or user.role != role:
        raise ApiError(422, "invalid_body", _("Check the fields."), {field: _("Choose someone from the list.")})
    return user


def _date(raw, field: str) -> date | None:
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise ApiError(422, "invalid_body", _("Check the fields."), {field: _("A date like 2026-12-01.")})


def _polygon_answer(change, status: int):
    polygon = change.polygon
    return jsonify(kind=polygon.kind, id=polygon.id, name=polygon.name, version=polygon.version,
                   moved=len(change.moved),
                   buildings=db.session.scalar(select(db.func.count()).select_from(Building).where(
                       (Building.zone_id if polygon.kind == "zone" else Building.territory_id) == polygon.id))), status


@bp.route("/map/territories", methods=["POST"])
@bp.route("/map/territories/<int:territory_id>", methods=["PUT"])
@require_user(SALES_HEAD)
def save_territory(territory_id: int | None = None):
    body = _body()
    territory = services.get_territory(current_user, territory_id) if territory_id else None
    supervisor = _user_by_id(body.get("supervisor_id"), "supervisor_id", SUPERVISOR) if "supervisor_id" in body \
        else (territory.supervisor if territory else None)
    change = services.save_territory(current_user, name=body.get("name", territory.name if territory else None),
                                     geometry_json=body.get("geometry"), supervisor=supervisor, territory=territory)
    db.session.commit()
    return _polygon_answer(change, 201 if change.created else 200)


@bp.route("/map/zones", methods=["POST"])
@bp.route("/map/zones/<int:zone_id>", methods=["PUT"])
@require_user(SUPERVISOR, SALES_HEAD)
def save_zone(zone_id: int | None = None):
    body = _body()
    zone = services.get_zone(current_user, zone_id) if zone_id else None
    if zone is not None:
        territory = zone.territory
    else:
        try:
            territory_id = int(body.get("territory_id") or 0)
        except (TypeError, ValueError):
            territory_id = 0
        territory = db.session.scalar(services.visible_territories(current_user)
                                      .where(Territory.id == territory_id)) if territory_id else None
        if territory is None:
            raise ApiError(422, "invalid_body", _("Check the fields."),
                           {"territory_id": _("Choose one of your territories.")})
    agent = _user_by_id(body.get("agent_id"), "agent_id", AGENT)
    change = services.save_zone(current_user, name=body.get("name", zone.name if zone else None),
                                geometry_json=body.get("geometry"), territory=territory, zone=zone, agent=agent,
                                valid_from=_date(body.get("valid_from"), "valid_from"),
                                valid_to=_date(body.get("valid_to"), "valid_to"))
    db.session.commit()
    return _polygon_answer(change, 201 if change.created else 200)


@bp.route("/map/<kind>/<int:polygon_id>/retire", methods=["POST"])
@require_user(SUPERVISOR, SALES_HEAD)
def retire(kind: str, polygon_id: int):
    if kind == "territories":
        moved = services.retire_territory(current_user, services.get_territory(current_user, polygon_id))
    elif kind == "zones":
        moved = services.retire_zone(current_user, services.get_zone(current_user, polygon_id))
    else:
        raise ApiError(404, "not_found", _("No such polygon."))
    db.session.commit()
    return jsonify(retired=polygon_id, moved=len(moved))

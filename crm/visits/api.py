"""``GET /api/v1/me/zones`` and ``POST /api/v1/sync`` (PRODUCT.md §5), and the supervisor's unlock."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from crm.api.auth import ApiError, require_user
from crm.api.routes import bp
from crm.database import begin_writing
from crm.errors import DomainError
from crm.extensions import db
from crm.users.models import AGENT, SALES_HEAD, SUPERVISOR
from crm.visits import services
from territories import services as territories
from territories.models import Building

MAX_ITEMS = 500


@bp.route("/me/zones")
@require_user(AGENT)
def my_zones():
    """Everything the phone caches for a day offline: zones, buildings and doors, the revisit
    and lead lists, and the tariffs on offer with the agent's commission."""
    from crm import clock

    return jsonify(zones=services.my_zones(current_user), revisits=services.revisits(current_user),
                   leads=services.leads(current_user), offer=services.offer(),
                   generated_at=clock.now().isoformat())


def _error(exc: DomainError) -> dict:
    return {"code": exc.code, "message": str(exc.message), "fields": {k: str(v) for k, v in exc.fields.items()}}


@bp.route("/sync", methods=["POST"])
@require_user(AGENT)
def sync():
    body = request.get_json(silent=True)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError(422, "invalid_body", _("The body must be {\"items\": [...]}."))
    if len(items) > MAX_ITEMS:
        raise ApiError(422, "invalid_body", _("At most %(n)d items per sync.", n=MAX_ITEMS))
    # the sign-in and CSRF checks read without the SQLite write lock; the replay, zone and
    # lock checks below read under it, so two workers never decide on the same door at once.
    # One visit writes one row, its INSERT last (below): on PostgreSQL it needs no transaction
    single = len(items) == 1 and isinstance(items[0], dict) and items[0].get("type") == "visit"
    begin_writing(db.session, single_statement=single)
    results = []
    for item in items:
        client_id = item.get("client_id") if isinstance(item, dict) else None
        answer = {"client_id": client_id, "status": "rejected", "id": None, "contract_number": None, "error": None}
        kind = item.get("type") if isinstance(item, dict) else None
        # a visit writes one row, last, after every check: nothing to undo when it is refused;
        # a contract writes several (contract, ledger, audit), so it gets a savepoint of its own
        savepoint = db.session.begin_nested() if kind == "contract" else None
        try:
            if kind not in ("visit", "contract"):
                raise DomainError("invalid", _("Each item needs a type: visit or contract."),
                                  {"type": _("visit or contract")})
            outcome = (services.record_visit if kind == "visit" else services.record_contract)(current_user, item)
        except DomainError as exc:
            if savepoint is not None:
                savepoint.rollback()
            answer["error"] = _error(exc)
            if exc.code == "flat_taken" and current_user.manager_id:
                territories.notify(current_user.manager_id, "sync_rejected",
                                   {"agent": current_user.name or current_user.login,
                                    "message": str(exc.message)}, link="/contracts")
        else:
            if savepoint is not None:
                savepoint.commit()
            answer.update(status=outcome.status, id=outcome.visit_id,
                          contract_number=outcome.contract.number if outcome.contract else None)
        results.append(answer)
    db.session.commit()
    return jsonify(results=results)


sync.reads_first = True  # see crm.database.begin_writing


@bp.route("/doors/unlock", methods=["POST"])
@require_user(SUPERVISOR, SALES_HEAD)
def unlock_door():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", _("The body must be a JSON object."))
    building_id, flat = body.get("building_id"), body.get("flat")
    if not isinstance(building_id, int) or isinstance(building_id, bool):
        raise ApiError(422, "invalid_body", _("Check the fields."), {"building_id": _("A building id.")})
    building = db.session.scalar(select(Building).where(Building.id == building_id))
    if building is None:
        raise ApiError(404, "not_found", _("No such building."))
    if not isinstance(flat, int) or isinstance(flat, bool) or not building.has_flat(flat):
        raise ApiError(422, "invalid_body", _("Check the fields."), {"flat": _("Unknown flat.")})
    unlock = services.unlock(current_user, building, flat, body.get("reason"))
    db.session.commit()
    return jsonify(id=unlock.id, building_id=building.id, flat=flat), 201

"""``POST /api/v1/contracts/<number>/events``: billing and installers report lifecycle events."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from sqlalchemy import select

from crm.api.auth import ApiError, require_scope
from crm.api.routes import bp
from crm.contracts import lifecycle, services
from crm.contracts.models import Contract
from crm.extensions import db
from crm.ledger.services import parse_local_datetime


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", _("The body must be a JSON object."))
    return body


@bp.route("/contracts/<number>/events", methods=["POST"])
@require_scope("contracts:events")
def contract_event(number: str):
    body = _body()
    fields = {}
    event_id, event, at_raw, reason = body.get("event_id"), body.get("event"), body.get("at"), body.get("reason")
    if not isinstance(event_id, str) or not 1 <= len(event_id.strip()) <= 100:
        fields["event_id"] = _("A string of 1 to 100 characters.")
    if event not in lifecycle.EVENTS:
        fields["event"] = _("One of: %(events)s.", events=", ".join(lifecycle.EVENTS))
    at = None
    try:
        at = parse_local_datetime(at_raw) if isinstance(at_raw, str) else None
    except ValueError:
        pass
    if at is None:
        fields["at"] = _("An ISO 8601 date and time.")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        fields["reason"] = _("Text of up to 1000 characters.")
    if fields:
        raise ApiError(422, "invalid_body", _("Check the fields."), fields)
    contract = db.session.scalars(select(Contract).where(Contract.number == number)).first()
    if contract is None:
        raise ApiError(404, "unknown_contract", _("No contract %(number)s.", number=number))
    status, answer = services.apply_event(contract, event=event, at=at, reason=reason,
                                          event_key=f"api:{event_id.strip()}")
    db.session.commit()
    return jsonify(answer), status

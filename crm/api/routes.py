from __future__ import annotations

from flask import Blueprint, g, jsonify, url_for
from flask_login import current_user

from crm.api.auth import authenticate_request
from crm.api.openapi import build_spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_request)


@bp.route("/openapi.json")
def openapi():
    return jsonify(build_spec(url_for("api.openapi", _external=False).rsplit("/", 1)[0]))


@bp.route("/me")
def me():
    """Who the server thinks is calling: an API key or a signed-in user."""
    key = g.get("api_key")
    if key is not None:
        return jsonify(kind="api_key", name=key.name, scopes=key.scope_list)
    if current_user.is_authenticated:
        return jsonify(kind="user", id=current_user.id, login=current_user.login, role=current_user.role,
                       name=current_user.name, locale=current_user.locale)
    from crm.api.auth import ApiError
    from flask_babel import gettext as _
    raise ApiError(401, "unauthorized", _("Sign in or send an API key."))

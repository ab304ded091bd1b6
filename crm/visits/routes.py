"""The agent's phone app (``/field``), its service worker and manifest.

The page is a shell that works offline: ``static/js/field.js`` renders today's zones from
``GET /api/v1/me/zones`` (cached by the service worker and in IndexedDB), queues visits and
contracts in IndexedDB with their client ids, and sends them through ``POST /api/v1/sync``.
"""
from __future__ import annotations

import os

from flask import Blueprint, abort, current_app, render_template, send_from_directory, url_for
from flask_login import current_user, login_required

from crm.users.models import AGENT

bp = Blueprint("field", __name__)


@bp.route("/field")
@login_required
def index():
    if current_user.role != AGENT:
        abort(403)
    return render_template("visits/field.html", config={
        "zones": url_for("api.my_zones"), "sync": url_for("api.sync"), "agent": current_user.login,
        "currency": current_app.config["CURRENCY"],
        "timezone": current_app.config["COMPANY_TIMEZONE"]})


@bp.route("/sw.js")
def service_worker():
    """Served from the root so that it controls the whole app (scope ``/``); never cached long."""
    response = send_from_directory(os.path.join(current_app.static_folder, "js"), "sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/manifest.webmanifest")
def manifest():
    return current_app.response_class(render_template("visits/manifest.json"),
                                      mimetype="application/manifest+json")

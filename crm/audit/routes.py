"""The audit viewer for admins (everything) and sales heads (their region)."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from crm.audit.models import AuditEvent
from crm.audit.services import changed_fields
from crm.extensions import db
from crm.users import scope
from crm.users.models import ADMIN, SALES_HEAD, User

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 100


def _day(value: str | None, end: bool = False):
    """A date typed in the company time zone → the UTC instant starting (or ending) that day."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    local = datetime.combine(day + (timedelta(days=1) if end else timedelta()), time.min,
                             tzinfo=ZoneInfo(current_app.config["COMPANY_TIMEZONE"]))
    return local


def _user_id(login: str | None):
    if not login:
        return None
    return db.session.scalar(select(User.id).where(User.login == login.strip().lower())) or -1


@bp.route("")
@login_required
def index():
    if current_user.role not in (ADMIN, SALES_HEAD):
        abort(403)
    q = select(AuditEvent)
    if current_user.role == SALES_HEAD:
        region = scope.subtree_ids(current_user.id)
        q = q.where(or_(AuditEvent.actor_id.in_(region), AuditEvent.subject_id.in_(region)))
    f = {k: (request.args.get(k) or "").strip() for k in ("actor", "subject", "action", "object_type", "object_id",
                                                           "date_from", "date_to")}
    if f["actor"]:
        actor_id = _user_id(f["actor"])
        q = q.where(or_(AuditEvent.actor_id == actor_id, AuditEvent.actor_label == f["actor"]))
    if f["subject"]:
        q = q.where(AuditEvent.subject_id == _user_id(f["subject"]))
    if f["action"]:
        q = q.where(AuditEvent.action.startswith(f["action"], autoescape=True))
    if f["object_type"]:
        q = q.where(AuditEvent.object_type == f["object_type"])
    if f["object_id"]:
        q = q.where(AuditEvent.object_id == f["object_id"])
    start, end = _day(f["date_from"]), _day(f["date_to"], end=True)
    if start:
        q = q.where(AuditEvent.at >= start)
    if end:
        q = q.where(AuditEvent.at < end)
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(q.order_by(AuditEvent.position.desc())
                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    events = []
    for event in rows[:PAGE_SIZE]:
        before = json.loads(event.before) if event.before else None
        after = json.loads(event.after) if event.after else None
        fields = changed_fields(before if isinstance(before, dict) else None, after if isinstance(after, dict) else None)
        events.append({"event": event, "before": before, "after": after, "fields": fields})
    actions = list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
    return render_template("audit/index.html", events=events, filters=f, page=page,
                           has_next=len(rows) > PAGE_SIZE, actions=actions)

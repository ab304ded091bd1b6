"""Setting monthly plans (sales head). Services flush; the request commits once."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import clock
from crm.audit import services as audit
from crm.dashboards.models import Plan
from crm.errors import DomainError, Forbidden
from crm.extensions import db
from crm.finance import core
from crm.users import scope
from crm.users.models import AGENT, SALES_HEAD, SUPERVISOR, User

MAX_PLAN = 100000


def planned_people(actor: User) -> list[User]:
    """Who a sales head plans for: the region's supervisors and agents, active ones."""
    return list(db.session.scalars(select(User).where(
        User.role.in_((SUPERVISOR, AGENT)), User.active.is_(True), User.id.in_(scope.subtree_ids(actor.id)))
        .order_by(User.role.desc(), User.login)))


def parse_count(raw, field: str) -> int | None:
    """'' → None (no plan); a whole number 0…100000 → int; anything else refused, naming the field."""
    text = str(raw if raw is not None else "").strip()
    if text == "":
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_PLAN:
        raise DomainError("bad_plan", _l("Plans are whole numbers from 0 to %(max)d.", max=MAX_PLAN),
                          {field: _l("A whole number from 0 to %(max)d.", max=MAX_PLAN)})
    return int(text)


def set_plan(actor: User | None, *, user: User, period: str, contracts: int, activations: int) -> Plan | None:
    """Create or change one plan; returns it when something changed. Audited."""
    if actor is not None and actor.role != SALES_HEAD:
        raise Forbidden("forbidden", _l("Only the sales head sets plans."))
    if user.role not in (SUPERVISOR, AGENT) or (actor is not None and not scope.is_below(actor.id, user.id)):
        raise Forbidden("forbidden", _l("Plans are set for the supervisors and agents of your region."))
    try:
        core.parse_period(period)
    except ValueError:
        raise DomainError("bad_period", _l("A period is a month written YYYY-MM (e.g. 2026-10)."),
                          {"period": _l("e.g. 2026-10")})
    for name, value in (("contracts", contracts), ("activations", activations)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PLAN:
            raise DomainError("bad_plan", _l("Plans are whole numbers from 0 to %(max)d.", max=MAX_PLAN),
                              {name: _l("A whole number from 0 to %(max)d.", max=MAX_PLAN)})
    plan = db.session.scalars(select(Plan).where(Plan.period == period, Plan.user_id == user.id)).first()
    before = {"contracts": plan.contracts, "activations": plan.activations} if plan else None
    after = {"contracts": contracts, "activations": activations}
    if before == after:
        return None
    if plan is None:
        plan = Plan(period=period, user_id=user.id, contracts=contracts, activations=activations)
        db.session.add(plan)
    plan.contracts, plan.activations = contracts, activations
    plan.set_by_id, plan.set_at = (actor.id if actor else None), clock.now()
    db.session.flush()
    audit.record("plan.set", "plan", f"{period}:{user.login}", subject_id=user.id, before=before,
                 after={**after, "period": period})
    return plan

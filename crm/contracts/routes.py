"""Contract pages: the scoped list, a staff signing form, the contract with its history."""
from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from crm import clock
from crm.catalogue import services as catalogue
from crm.contracts import lifecycle, services
from crm.contracts.forms import EventForm, SignForm
from crm.contracts.models import Contract
from crm.errors import DomainError
from crm.extensions import db
from crm.forms import choices, refuse_into_form
from crm.i18n import STATUS_NAMES
from crm.ledger import commission
from crm.ledger import services as ledger
from crm.ledger.models import LedgerEntry
from crm.users import scope
from crm.users.models import ADMIN, AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from territories.models import Building

bp = Blueprint("contracts", __name__, url_prefix="/contracts")
PAGE_SIZE = 50


def scoped_contracts(user):
    """Contracts the user may see: own (agent), the team's and those signed under them
    (supervisor), the region's (sales head), all (finance). Admins see none."""
    q = select(Contract)
    if user.role == FINANCE:
        return q
    if user.role == AGENT:
        return q.where(Contract.agent_id == user.id)
    if user.role in (SUPERVISOR, SALES_HEAD):
        tree = scope.subtree_ids(user.id)
        return q.where(or_(Contract.agent_id.in_(tree), Contract.supervisor_id.in_(tree)))
    return q.where(Contract.id == -1)


def _contract_or_404(number: str) -> Contract:
    contract = db.session.scalars(scoped_contracts(current_user).where(Contract.number == number)).first()
    if contract is None:
        abort(404)
    return contract


@bp.route("")
@login_required
def index():
    if current_user.role == ADMIN:
        abort(403)
    q = scoped_contracts(current_user)
    status = request.args.get("status")
    if status in lifecycle.STATUSES:
        q = q.where(Contract.status == status)
    no_rate = request.args.get("no_rate") == "1"
    if no_rate:
        q = q.where(Contract.rate_version_id.is_(None))
    term = (request.args.get("q") or "").strip()
    if term:
        q = q.where(or_(Contract.number == term.upper(), Contract.phone.contains(term)))
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(q.order_by(Contract.at.desc(), Contract.id.desc())
                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return render_template("contracts/index.html", contracts=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE,
                           page=page, status=status, no_rate=no_rate, term=term, statuses=lifecycle.STATUSES,
                           fmt=commission.format_money,
                           can_sign=current_user.role in (SUPERVISOR, SALES_HEAD, AGENT))


def _sign_form() -> SignForm:
    form = SignForm()
    if current_user.role == AGENT:
        agents = [current_user]
    else:
        agents = list(db.session.scalars(select(User).where(
            User.role == AGENT, User.active.is_(True), User.id.in_(scope.subtree_ids(current_user.id)))
            .order_by(User.login)))
    form.agent_id.choices = choices((a.id, f"{a.login} · {a.name}") for a in agents)
    offered = catalogue.catalogue(include_archived=False)
    form.tariff.choices = choices((t.code, f"{t.name} · {commission.format_money(t.monthly_fee)}")
                                  for t in offered if not t.is_addon)
    form.addons.choices = choices((t.code, f"{t.name} · {commission.format_money(t.monthly_fee)}")
                                  for t in offered if t.is_addon)
    return form


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    if current_user.role not in (SUPERVISOR, SALES_HEAD, AGENT):
        abort(403)
    form = _sign_form()
    if form.validate_on_submit():
        agent = db.session.get(User, form.agent_id.data)
        building = db.session.scalars(select(Building).where(Building.external_id == form.building.data.strip())).first()
        try:
            at = ledger.parse_local_datetime(form.at.data) if form.at.data else clock.now()
        except ValueError:
            at = None
        try:
            if at is None:
                raise DomainError("bad_time", _("Signed at: a date and time."), {"at": _("A date and time.")})
            contract, _created = services.sign(
                current_user, agent=agent, building=building, flat=form.flat.data,
                subscriber_name=form.subscriber_name.data, phone=form.phone.data, tariff_code=form.tariff.data,
                addon_codes=form.addons.data, adult_confirmed=form.adult_confirmed.data, at=at,
                client_id=str(uuid.uuid4()))
        except DomainError as exc:
            refuse_into_form(form, exc, {"building_id": "building"})
        else:
            db.session.commit()
            flash(_("Contract %(number)s signed.", number=contract.number), "success")
            return redirect(url_for("contracts.show", number=contract.number))
    return render_template("contracts/new.html", form=form), (422 if form.errors else 200)


def _visible_entries(contract: Contract) -> list[LedgerEntry]:
    entries = ledger.contract_entries(contract.id)
    if current_user.role in (FINANCE, SALES_HEAD):
        return entries
    if current_user.role == AGENT:
        return [e for e in entries if e.beneficiary_id == current_user.id]
    return [e for e in entries if e.beneficiary_id == current_user.id or scope.in_scope(current_user, e.beneficiary_id)]


@bp.route("/<number>")
@login_required
def show(number: str):
    contract = _contract_or_404(number)
    form = None
    if services.may_report_events(current_user, contract):
        form = EventForm()
        form.event.choices = choices((e, STATUS_NAMES[e]) for e in lifecycle.EVENTS if lifecycle.allowed(contract.status, e))
    return render_template("contracts/show.html", contract=contract, entries=_visible_entries(contract), form=form,
                           fmt=commission.format_money)


@bp.route("/<number>/events", methods=["POST"])
@login_required
def event(number: str):
    contract = _contract_or_404(number)
    if not services.may_report_events(current_user, contract):
        abort(403)
    form = EventForm()
    form.event.choices = choices((e, e) for e in lifecycle.EVENTS)
    if not form.validate_on_submit():
        flash(_("Choose an event and give a reason."), "error")
        return redirect(url_for("contracts.show", number=number))
    try:
        at = ledger.parse_local_datetime(form.at.data) if form.at.data else clock.now()
    except ValueError:
        flash(_("When: a date and time."), "error")
        return redirect(url_for("contracts.show", number=number))
    try:
        services.apply_event(contract, event=form.event.data, at=at, reason=form.reason.data,
                             event_key=f"web:{uuid.uuid4().hex}")
    except DomainError as exc:
        db.session.rollback()
        if exc.status == 403:
            raise
        flash(exc.message, "error")
        return redirect(url_for("contracts.show", number=number))
    db.session.commit()
    flash(_("Recorded: %(event)s.", event=STATUS_NAMES.get(form.event.data, form.event.data)), "success")
    return redirect(url_for("contracts.show", number=number))

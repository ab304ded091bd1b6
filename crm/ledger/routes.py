"""Rate versions (sales head) and "My money" (agents, supervisors; finance and the sales head in scope)."""
from __future__ import annotations


from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from crm.catalogue import services as catalogue
from crm.errors import DomainError
from crm.extensions import db
from crm.ledger import commission, services
from crm.ledger.models import LedgerEntry, RateVersion
from crm.users import scope
from crm.users.forms import ActionForm
from crm.users.models import ADMIN, AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User

bp = Blueprint("ledger", __name__)
PAGE_SIZE = 100


@bp.route("/rates", methods=["GET", "POST"])
@login_required
def rates():
    if current_user.role not in (SALES_HEAD, FINANCE, SUPERVISOR):
        abort(403)
    tariffs = catalogue.catalogue(include_archived=False)
    values, errors = {}, {}
    if request.method == "POST":
        if current_user.role != SALES_HEAD:
            abort(403)
        if not ActionForm().validate_on_submit():
            abort(400)
        values = request.form.to_dict()
        doc = {"effective_from": values.get("effective_from", ""), "agent": {"tariffs": {}, "addons": {}},
               "supervisor_override_percent": values.get("supervisor_override_percent", "").strip(),
               "clawback_days": None, "tiers": []}
        try:
            days = values.get("clawback_days", "").strip()
            doc["clawback_days"] = int(days) if days.isascii() and days.isdigit() else days
            for tariff in tariffs:
                raw = values.get(f"amount_{tariff.code}", "").strip()
                try:
                    amount = commission.parse_money(raw)
                except ValueError:
                    raise DomainError("bad_amount", _("Every tariff and add-on needs an amount like 1500.00."),
                                      {f"amount_{tariff.code}": _("An amount like 1500.00.")})
                doc["agent"]["addons" if tariff.is_addon else "tariffs"][tariff.code] = amount
            for line in (values.get("tiers") or "").splitlines():
                if not line.strip():
                    continue
                parts = line.replace(";", " ").split()
                if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
                    raise DomainError("bad_tiers", _("Each tier line is: activations amount (e.g. 30 100.00)."),
                                      {"tiers": _("e.g. 30 100.00")})
                try:
                    per = commission.parse_money(parts[1])
                except ValueError:
                    raise DomainError("bad_tiers", _("Each tier line is: activations amount (e.g. 30 100.00)."),
                                      {"tiers": _("e.g. 30 100.00")})
                doc["tiers"].append({"activations": int(parts[0]), "bonus_per_activation": per})
            version = services.add_rate_version(current_user, doc)
        except DomainError as exc:
            db.session.rollback()
            if exc.status == 403:
                raise
            errors = {k: str(v) for k, v in exc.fields.items()}
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(_("Rate version %(id)d added.", id=version.id), "success")
            return redirect(url_for("ledger.rates"))
    versions = list(db.session.scalars(select(RateVersion).order_by(RateVersion.effective_from.desc(),
                                                                    RateVersion.recorded_at.desc())))
    in_force = services.version_in_force(services.clock.now())
    return render_template("ledger/rates.html", versions=versions, in_force=in_force, tariffs=tariffs,
                           values=values, errors=errors, action=ActionForm(), fmt=commission.format_money,
                           pct=commission.bp_to_percent), (422 if errors else 200)


def subject_in_scope() -> User:
    """Whose money (or statement) to show: yourself, or someone in your scope (?user=ID); 404 otherwise."""
    wanted = request.args.get("user", type=int)
    if wanted is None or wanted == current_user.id:
        return current_user
    user = scope.get_in_scope(current_user, wanted)
    if user is None:
        abort(404)
    return user


@bp.route("/money")
@login_required
def money():
    if current_user.role == ADMIN:
        abort(403)
    subject = subject_in_scope()
    team = []
    if current_user.role in (SUPERVISOR, SALES_HEAD, FINANCE):
        q = select(User).where(User.role.in_((AGENT, SUPERVISOR)), scope.user_filter(current_user, User.id))
        team = list(db.session.scalars(q.order_by(User.login).limit(500)))
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.beneficiary_id == subject.id)
        .order_by(LedgerEntry.position.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    balance = services.balances([subject.id])[subject.id]
    pipeline = services.unresolved_accruals([subject.id])
    pos, hash_ = services.head()
    return render_template("ledger/money.html", subject=subject, team=team, entries=rows[:PAGE_SIZE],
                           has_next=len(rows) > PAGE_SIZE, page=page, balance=balance, pipeline=pipeline,
                           head=f"{pos}:{hash_}", fmt=commission.format_money,
                           pipeline_total=sum(e.amount for e in pipeline))

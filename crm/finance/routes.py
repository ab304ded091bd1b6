"""Finance pages: periods (close, export, payout), adjustments, disputes, statements and
"who changed what about me". Every page checks the user's scope on the server."""
from __future__ import annotations

import io

from flask import (Blueprint, Response, abort, flash, redirect, render_template, request, send_file,
                   stream_with_context, url_for)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from crm.audit.models import AuditEvent
from crm.contracts.models import Contract
from crm.errors import DomainError
from crm.extensions import db
from crm.finance import services
from crm.finance.forms import DecisionForm, DisputeForm, MessageForm, ProposeForm
from crm.finance.models import Adjustment, Dispute, PeriodSnapshot
from crm.forms import refuse_and_redirect, refuse_into_form
from crm.ledger import commission
from crm.ledger.routes import subject_in_scope
from crm.users import scope
from crm.users.forms import ActionForm
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR
from crm.users.services import find_by_login

bp = Blueprint("finance", __name__)
MANAGERS = (SUPERVISOR, SALES_HEAD, FINANCE)
PAGE_SIZE = 100


def _require(*roles):
    if current_user.role not in roles:
        abort(403)


# --- periods -------------------------------------------------------------------------


@bp.route("/finance")
@login_required
def periods():
    _require(*MANAGERS)
    open_ = services.open_periods()
    closes = services.closes()
    return render_template("finance/periods.html", open_periods=open_,
                           closable=[p for p in open_ if services.closable(p)], closes=closes,
                           payouts={c.period: services.get_payout(c.period) for c in closes},
                           action=ActionForm(), may_act=current_user.role == FINANCE)


@bp.route("/finance/periods/<period>")
@login_required
def period(period: str):
    _require(*MANAGERS)
    close = services.get_close(period)
    if close is None:
        abort(404)
    q = select(PeriodSnapshot).where(PeriodSnapshot.period == period)
    if current_user.role != FINANCE:
        q = q.where(scope.user_filter(current_user, PeriodSnapshot.beneficiary_id))
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(q.order_by(PeriodSnapshot.login).offset((page - 1) * PAGE_SIZE)
                                   .limit(PAGE_SIZE + 1)))
    return render_template("finance/period.html", close=close, rows=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE,
                           page=page, payout=services.get_payout(period), action=ActionForm(),
                           may_act=current_user.role == FINANCE, fmt=commission.format_money)


@bp.route("/finance/periods/<period>/close", methods=["POST"])
@login_required
def close(period: str):
    _require(FINANCE)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        closed = services.close_period(current_user, period)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("finance.periods"))
    db.session.commit()
    flash(_("%(p)s closed: %(n)d beneficiaries, ledger head %(head)s.", p=closed.period, n=closed.beneficiaries,
            head=closed.head), "success")
    return redirect(url_for("finance.period", period=closed.period))


@bp.route("/finance/periods/<period>/payout", methods=["POST"])
@login_required
def payout(period: str):
    _require(FINANCE)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        done = services.record_payout(current_user, period)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("finance.periods"))
    db.session.commit()
    flash(_("Payout of %(p)s recorded: %(n)d entries.", p=done.period, n=done.entries), "success")
    return redirect(url_for("finance.period", period=done.period))


@bp.route("/finance/periods/<period>/export.<fmt>")
@login_required
def export(period: str, fmt: str):
    """The payout file; managers get only their subtree's rows. Audited, then streamed."""
    _require(*MANAGERS)
    try:
        job = services.start_export(current_user, period, fmt)
    except DomainError as exc:
        if exc.status == 403:
            raise
        db.session.rollback()
        abort(404)
    db.session.commit()
    if fmt == "csv":
        return Response(stream_with_context(job.csv_lines()), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{job.filename}.csv"'})
    buf = io.BytesIO()
    job.write_xlsx(buf)
    buf.seek(0)
    return send_file(buf, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     as_attachment=True, download_name=f"{job.filename}.xlsx")


export.writes = True  # a GET that records an audit event: its SQLite transaction may write


# --- adjustments ---------------------------------------------------------------------


@bp.route("/finance/adjustments", methods=["GET", "POST"])
@login_required
def adjustments():
    _require(*MANAGERS)
    form = ProposeForm()
    if request.method == "GET":
        form.beneficiary.data = form.beneficiary.data or request.args.get("beneficiary", "")
        form.corrects.data = form.corrects.data or request.args.get("corrects", type=int)
        form.dispute_id.data = request.args.get("dispute", "")
    if form.validate_on_submit():
        try:
            amount = commission.parse_money(form.amount.data, allow_negative=True)
        except ValueError:
            amount = None
        dispute = None
        if form.dispute_id.data and form.dispute_id.data.isascii() and form.dispute_id.data.isdigit():
            dispute = db.session.get(Dispute, int(form.dispute_id.data))
            if dispute is not None and not services.may_see_dispute(current_user, dispute):
                dispute = None
        try:
            if amount is None:
                raise DomainError("bad_amount", _("An amount like 1500.00 or -1500.00."),
                                  {"amount": _("An amount like 1500.00 or -1500.00.")})
            beneficiary = find_by_login(form.beneficiary.data)
            if beneficiary is not None and not scope.in_scope(current_user, beneficiary.id):
                beneficiary = None
            proposal = services.propose_adjustment(current_user, beneficiary=beneficiary, amount=amount,
                                                   reason=form.reason.data, corrects_position=form.corrects.data,
                                                   dispute=dispute)
        except DomainError as exc:
            refuse_into_form(form, exc, {"corrects": "corrects"})
        else:
            db.session.commit()
            flash(_("Adjustment #%(id)d proposed; a finance user who is neither you nor the beneficiary approves it.",
                    id=proposal.id), "success")
            if dispute is not None:
                return redirect(url_for("finance.dispute", dispute_id=dispute.id))
            return redirect(url_for("finance.adjustments"))
    visible = services.adjustments_visible(current_user)
    queue = list(db.session.scalars(visible.where(Adjustment.status == "proposed").order_by(Adjustment.id)))
    decided = list(db.session.scalars(visible.where(Adjustment.status != "proposed")
                                      .order_by(Adjustment.decided_at.desc()).limit(200)))
    return render_template("finance/adjustments.html", form=form, queue=queue, decided=decided,
                           decision=DecisionForm(), fmt=commission.format_money), (422 if form.errors else 200)


def _adjustment_or_404(adjustment_id: int) -> Adjustment:
    adjustment = db.session.scalars(services.adjustments_visible(current_user)
                                    .where(Adjustment.id == adjustment_id)).first()
    if adjustment is None:
        abort(404)
    return adjustment


@bp.route("/finance/adjustments/<int:adjustment_id>/<decision>", methods=["POST"])
@login_required
def decide(adjustment_id: int, decision: str):
    _require(FINANCE)
    if decision not in ("approve", "reject"):
        abort(404)
    adjustment = _adjustment_or_404(adjustment_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        if decision == "approve":
            services.approve_adjustment(current_user, adjustment)
        else:
            services.reject_adjustment(current_user, adjustment, form.reason.data)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("finance.adjustments"))
    db.session.commit()
    flash(_("Adjustment #%(id)d approved: ledger entry #%(pos)d.", id=adjustment.id, pos=adjustment.entry_position)
          if decision == "approve" else _("Adjustment #%(id)d rejected.", id=adjustment.id), "success")
    return redirect(url_for("finance.adjustments"))


# --- disputes ------------------------------------------------------------------------


@bp.route("/finance/disputes", methods=["GET", "POST"])
@login_required
def disputes():
    _require(AGENT, *MANAGERS)
    form = DisputeForm()
    if request.method == "GET":
        form.entry.data = request.args.get("entry", type=int)
        form.contract.data = request.args.get("contract", "")
    if request.method == "POST":
        _require(AGENT)
        if form.validate_on_submit():
            try:
                dispute = services.open_dispute(current_user, text=form.text.data, entry_position=form.entry.data,
                                                contract_number=form.contract.data or None)
            except DomainError as exc:
                refuse_into_form(form, exc)
            else:
                db.session.commit()
                flash(_("Dispute #%(id)d opened; your supervisor and finance will answer here.", id=dispute.id),
                      "success")
                return redirect(url_for("finance.dispute", dispute_id=dispute.id))
    status = request.args.get("status", "open")
    q = services.disputes_visible(current_user)
    if status in ("open", "resolved", "rejected"):
        q = q.where(Dispute.status == status)
    rows = list(db.session.scalars(q.order_by(Dispute.opened_at.desc()).limit(200)))
    return render_template("finance/disputes.html", disputes=rows, form=form, status=status), \
        (422 if form.errors else 200)


def _dispute_or_404(dispute_id: int) -> Dispute:
    dispute = db.session.get(Dispute, dispute_id)
    if dispute is None or not services.may_see_dispute(current_user, dispute):
        abort(404)
    return dispute


@bp.route("/finance/disputes/<int:dispute_id>", methods=["GET", "POST"])
@login_required
def dispute(dispute_id: int):
    _require(AGENT, *MANAGERS)
    dispute = _dispute_or_404(dispute_id)
    form = MessageForm()
    if form.validate_on_submit():
        try:
            services.post_message(current_user, dispute, form.text.data)
        except DomainError as exc:
            refuse_into_form(form, exc)
        else:
            db.session.commit()
            return redirect(url_for("finance.dispute", dispute_id=dispute.id))
    return render_template("finance/dispute.html", dispute=dispute, form=form, decision=DecisionForm(),
                           answers=current_user.id != dispute.agent_id, fmt=commission.format_money), \
        (422 if form.errors else 200)


@bp.route("/finance/disputes/<int:dispute_id>/reject", methods=["POST"])
@login_required
def reject_dispute(dispute_id: int):
    _require(*MANAGERS)
    dispute = _dispute_or_404(dispute_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.reject_dispute(current_user, dispute, form.reason.data)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("finance.dispute", dispute_id=dispute.id))
    db.session.commit()
    flash(_("Dispute #%(id)d rejected with your reason.", id=dispute.id), "success")
    return redirect(url_for("finance.dispute", dispute_id=dispute.id))


# --- statements and "about me" -------------------------------------------------------


@bp.route("/statement")
@login_required
def statement():
    _require(AGENT, *MANAGERS)
    subject = subject_in_scope()
    if subject.role not in (AGENT, SUPERVISOR):
        if subject.id == current_user.id and current_user.role in (SALES_HEAD, FINANCE):
            return redirect(url_for("finance.periods"))
        abort(404)
    period = request.args.get("period") or services.current_period()
    try:
        data = services.statement(subject, period)
    except DomainError:
        abort(404)
    return render_template("finance/statement.html", s=data, periods=services.statement_periods(subject),
                           fmt=commission.format_money)


@bp.route("/me/history")
@login_required
def history():
    """Every audit event that touched my contracts or money (or my account)."""
    _require(AGENT, SUPERVISOR)
    mine = select(Contract.number).where(or_(Contract.agent_id == current_user.id,
                                             Contract.supervisor_id == current_user.id))
    q = select(AuditEvent).where(or_(AuditEvent.subject_id == current_user.id,
                                     (AuditEvent.object_type == "contract") & AuditEvent.object_id.in_(mine)))
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(q.order_by(AuditEvent.position.desc()).offset((page - 1) * PAGE_SIZE)
                                   .limit(PAGE_SIZE + 1)))
    return render_template("finance/history.html", events=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page)

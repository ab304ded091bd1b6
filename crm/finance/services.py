"""Periods, closes with bonuses, payouts, four-eyes adjustments, disputes and statements.

Services flush; the request or command commits once. Every money movement is a ledger
entry written through ``crm.ledger.services.write_entries`` under the chain lock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from crm import chain, clock
from crm.actors import current_actor
from crm.audit import services as audit
from crm.contracts.models import Contract
from crm.errors import DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.finance import core
from crm.finance.models import Adjustment, Dispute, DisputeMessage, Payout, PeriodClose, PeriodSnapshot
from crm.ledger import commission
from crm.ledger import services as ledger
from crm.ledger.models import LedgerEntry
from crm.users import scope
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User

#: The largest single adjustment (minor units): far inside a 64-bit sum.
MAX_ADJUSTMENT = 10**11
MAX_TEXT = 2000


def _zone():
    return clock.company_zone()


def parse_period(text: str) -> str:
    try:
        return core.parse_period(text)
    except ValueError:
        raise DomainError("bad_period", _l("A period is a month written YYYY-MM (e.g. 2026-10)."),
                          {"period": _l("e.g. 2026-10")})


def current_period() -> str:
    return core.period_of(clock.now(), _zone())


def _require_finance(actor: User | None, message) -> None:
    """``None`` is the operator's CLI, with full scope."""
    if actor is not None and actor.role != FINANCE:
        raise Forbidden("forbidden", message)


# --- periods -------------------------------------------------------------------------


def get_close(period: str) -> PeriodClose | None:
    return db.session.get(PeriodClose, period)


def closes() -> list[PeriodClose]:
    return list(db.session.scalars(select(PeriodClose).order_by(PeriodClose.period.desc())))


def first_open_period() -> str:
    """The month after the last closed one; with none closed, the earliest month with an entry."""
    last = ledger.last_closed_period()
    if last is not None:
        return core.next_period(last)
    earliest = db.session.scalar(select(func.min(LedgerEntry.period)))
    return min(earliest, current_period()) if earliest else current_period()


def open_periods() -> list[str]:
    return core.periods_between(first_open_period(), current_period())


def _must_close_first(period: str) -> str | None:
    """The month that has to be closed before ``period``, or None when ``period`` is next in
    order: the month after the last close; before any close, any month with no entry before it."""
    last = ledger.last_closed_period()
    if last is not None:
        expected = core.next_period(last)
        return None if period == expected else expected
    earliest = db.session.scalar(select(func.min(LedgerEntry.period)))
    return earliest if earliest is not None and earliest < period else None


def closable(period: str) -> bool:
    """Finished and next in order."""
    return core.bounds(period, _zone())[1] <= clock.now() and _must_close_first(period) is None


def close_period(actor: User | None, period: str) -> PeriodClose:
    """Close a finished month, in order, for good: write each agent's bonus, snapshot every
    beneficiary's figures and store the ledger head. Refused: an unfinished month, one out of
    order, one already closed."""
    _require_finance(actor, _l("Only finance closes periods."))
    period = parse_period(period)
    chain.lock_chains(db.session)  # the single writer from here on: no entry slips past the close
    if get_close(period) is not None:
        raise DomainError("already_closed", _l("%(p)s is already closed; a closed period never reopens.", p=period),
                          {"period": _l("Already closed.")})
    now = clock.now()
    zone = _zone()
    start, end = core.bounds(period, zone)
    if end > now:
        raise DomainError("not_finished", _l("%(p)s is not finished yet.", p=period), {"period": _l("Not finished.")})
    first = _must_close_first(period)
    if first is not None:
        if first > period:  # before the first close: such a month stays open for good
            raise DomainError("before_first", _l("%(p)s comes before the first closed period.", p=period),
                              {"period": _l("Before the first close.")})
        raise DomainError("out_of_order", _l("Periods close in order: close %(first)s first.", first=first),
                          {"period": _l("Close %(first)s first.", first=first)})

    actor_ctx = current_actor()
    version = ledger.version_in_force(core.last_instant(period, zone))
    tiers = tuple((t.activations, t.bonus_per_activation) for t in version.tiers) if version else ()
    counts = db.session.execute(
        select(Contract.agent_id, func.count()).where(Contract.activated_at >= start, Contract.activated_at < end,
                                                      Contract.status != "cancelled")
        .group_by(Contract.agent_id).order_by(Contract.agent_id)).all()
    bonus_total, bonus_count = 0, 0
    for agent_id, activations in counts:
        amount = commission.bonus(int(activations), tiers)
        if amount <= 0:
            continue
        ledger.write_entries(
            [commission.EntrySpec(f"bonus:{period}:{agent_id}", "bonus", "payable", agent_id, amount)],
            contract_id=None, rate_version_id=version.id, at=core.last_instant(period, zone),
            reason=f"{int(activations)} activations in {period}", actor=actor_ctx)
        bonus_total, bonus_count = bonus_total + amount, bonus_count + 1

    figures = {b: f for b, f in period_figures(period).items()
               if f.by_kind or f.opening or f.pending_opening}  # nobody with nothing at all
    head_position, head_hash = ledger.head()
    close = PeriodClose(period=period, closed_at=now, closed_by_id=actor.id if actor else None,
                        actor_label=actor_ctx.label[:120], head_position=head_position, head_hash=head_hash,
                        tiers_version_id=version.id if version else None, beneficiaries=len(figures))
    db.session.add(close)
    db.session.flush()
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(list(figures))))}
    for beneficiary_id, fig in sorted(figures.items()):
        user = people[beneficiary_id]
        db.session.add(PeriodSnapshot(
            period=period, beneficiary_id=beneficiary_id, login=user.login, name=user.name,
            personnel_number=user.personnel_number, role=user.role,
            supervisor_login=user.manager.login if user.role == AGENT and user.manager else None,
            opening=fig.opening, accruals_earned=fig.accruals_earned, overrides_earned=fig.overrides_earned,
            bonuses=fig.bonuses, adjustments=fig.adjustments, clawbacks=fig.clawbacks, payouts=fig.payouts,
            net=fig.net, pending=fig.pending))
    db.session.flush()
    audit.record("period.close", "period", period, actor=actor_ctx, after={
        "head": close.head, "beneficiaries": close.beneficiaries, "bonuses": bonus_count,
        "bonus_total": bonus_total, "tiers_version": close.tiers_version_id})
    return close


def period_figures(period: str, beneficiary_ids=None) -> dict[int, core.Figures]:
    """Each beneficiary's figures for ``period``: the previous close's net and pending carried
    in, plus the sums of this period's entries by kind."""
    previous = {}
    prev_close = get_close(core.previous_period(period))
    if prev_close is not None:  # the usual case: the previous month's close carries everything before
        q = select(PeriodSnapshot).where(PeriodSnapshot.period == prev_close.period)
        if beneficiary_ids is not None:
            q = q.where(PeriodSnapshot.beneficiary_id.in_(list(beneficiary_ids)))
        previous = {s.beneficiary_id: (s.net, s.pending) for s in db.session.scalars(q)}
    else:  # the first close, or an open month after the first open one: sum what came before
        previous = _balances_before(period, beneficiary_ids)
    ref = aliased(LedgerEntry)
    q = (select(LedgerEntry.beneficiary_id, LedgerEntry.kind, LedgerEntry.bucket, ref.kind,
                func.sum(LedgerEntry.amount))
         .outerjoin(ref, (ref.position == LedgerEntry.ref_position) & (LedgerEntry.kind == "earned"))
         .where(LedgerEntry.period == period)
         .group_by(LedgerEntry.beneficiary_id, LedgerEntry.kind, LedgerEntry.bucket, ref.kind))
    if beneficiary_ids is not None:
        q = q.where(LedgerEntry.beneficiary_id.in_(list(beneficiary_ids)))
    rows: dict[int, list] = {b: [] for b in previous}
    for beneficiary_id, kind, bucket, earned_from, total in db.session.execute(q):
        rows.setdefault(beneficiary_id, []).append((kind, bucket, earned_from, int(total)))
    return {b: core.fold(r, opening=previous.get(b, (0, 0))[0], pending_opening=previous.get(b, (0, 0))[1])
            for b, r in rows.items()}


def _balances_before(period: str, beneficiary_ids=None) -> dict[int, tuple[int, int]]:
    q = (select(LedgerEntry.beneficiary_id, LedgerEntry.bucket, func.sum(LedgerEntry.amount))
         .where(LedgerEntry.period < period).group_by(LedgerEntry.beneficiary_id, LedgerEntry.bucket))
    if beneficiary_ids is not None:
        q = q.where(LedgerEntry.beneficiary_id.in_(list(beneficiary_ids)))
    out: dict[int, list[int]] = {}
    for beneficiary_id, bucket, total in db.session.execute(q):
        out.setdefault(beneficiary_id, [0, 0])[0 if bucket == "payable" else 1] = int(total or 0)
    return {b: (v[0], v[1]) for b, v in out.items()}


# --- exports and payouts -------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who an export is for, as plain values: the file may be written after the request's
    unit of work has ended (a streamed response)."""

    id: int
    role: str


def _export_filter(viewer):
    if viewer is None or viewer.role == FINANCE:
        return None
    if viewer.role in (SALES_HEAD, SUPERVISOR):
        return scope.user_filter(viewer, PeriodSnapshot.beneficiary_id)
    raise Forbidden("forbidden", _l("Payout files are for finance and managers."))


def payout_rows(viewer, period: str):
    """The closed period's rows the viewer may see, lazily, by login."""
    where = _export_filter(viewer)
    q = select(PeriodSnapshot).where(PeriodSnapshot.period == period).order_by(PeriodSnapshot.login)
    if where is not None:
        q = q.where(where)
    for s in db.session.scalars(q.execution_options(yield_per=1000)):
        yield core.PayoutRow(period=s.period, personnel_number=s.personnel_number, login=s.login, name=s.name,
                             role=s.role, supervisor=s.supervisor_login, accruals_earned=s.accruals_earned,
                             overrides_earned=s.overrides_earned, bonuses=s.bonuses, adjustments=s.adjustments,
                             clawbacks=s.clawbacks, net=s.net)


@dataclass
class Export:
    period: str
    head: str
    generated: datetime
    currency: str
    viewer: Viewer | None
    fmt: str = "csv"
    scope_label: str = "all"

    def rows(self):
        return payout_rows(self.viewer, self.period)

    def csv_lines(self):
        return core.csv_lines(self.period, self.generated, self.head, self.rows(), self.currency)

    def write_xlsx(self, fileobj):
        core.write_xlsx(fileobj, self.period, self.generated, self.head, self.rows(), self.currency)

    @property
    def filename(self) -> str:
        return f"payout-{self.period}"


def start_export(viewer: User | None, period: str, fmt: str, *, record: bool = True) -> Export:
    """Check (and audit, unless ``record`` is False: then call ``record_export`` once the file
    is written) an export of a closed period; the caller commits, then writes the file."""
    _export_filter(viewer)
    period = parse_period(period)
    if fmt not in ("csv", "xlsx"):
        raise DomainError("bad_format", _l("The format is csv or xlsx."), {"format": _l("csv or xlsx")})
    close = get_close(period)
    if close is None:
        raise DomainError("not_closed", _l("%(p)s is not closed: only closed periods are exported.", p=period),
                          {"period": _l("Not closed.")})
    job = Export(period=period, head=close.head, generated=clock.now().astimezone(_zone()),
                 currency=current_app.config["CURRENCY"],
                 viewer=Viewer(viewer.id, viewer.role) if viewer is not None else None, fmt=fmt,
                 scope_label=viewer.login if viewer else "all")
    if record:
        record_export(job)
    return job


def record_export(job: "Export") -> None:
    audit.record("period.export", "period", job.period, after={"format": job.fmt, "head": job.head,
                                                               "scope": job.scope_label})


def get_payout(period: str) -> Payout | None:
    return db.session.get(Payout, period)


def record_payout(actor: User | None, period: str) -> Payout:
    """Pay a closed period once: one ``payout`` entry of −net per beneficiary with a positive
    net; a negative net stays as a debt carried into the next period."""
    _require_finance(actor, _l("Only finance records payouts."))
    period = parse_period(period)
    chain.lock_chains(db.session)
    close = get_close(period)
    if close is None:
        raise DomainError("not_closed", _l("%(p)s is not closed: close it before paying it.", p=period),
                          {"period": _l("Not closed.")})
    done = get_payout(period)
    if done is not None:
        raise DomainError("already_paid", _l("The payout of %(p)s was already recorded.", p=period),
                          {"period": _l("Already recorded.")})
    later = db.session.scalar(select(func.min(PeriodClose.period)).where(PeriodClose.period > period))
    if later is not None:
        raise DomainError("later_closed", _l("%(later)s is already closed and carries what %(p)s owed: pay %(later)s "
                                             "instead.", later=later, p=period), {"period": _l("Superseded.")})
    actor_ctx = current_actor()
    now = clock.now()
    entries, total, carried = 0, 0, 0
    for snap in db.session.scalars(select(PeriodSnapshot).where(PeriodSnapshot.period == period)
                                   .order_by(PeriodSnapshot.beneficiary_id)):
        if snap.net <= 0:
            carried += snap.net < 0
            continue
        ledger.write_entries(
            [commission.EntrySpec(f"payout:{period}:{snap.beneficiary_id}", "payout", "payable",
                                  snap.beneficiary_id, -snap.net)],
            contract_id=None, rate_version_id=None, at=now, reason=f"payout {period}", actor=actor_ctx)
        entries, total = entries + 1, total + snap.net
    payout = Payout(period=period, recorded_at=now, recorded_by_id=actor.id if actor else None,
                    actor_label=actor_ctx.label[:120], entries=entries, total=total, carried=carried)
    db.session.add(payout)
    db.session.flush()
    audit.record("period.payout", "period", period, actor=actor_ctx,
                 after={"entries": entries, "total": total, "carried": carried, "head": close.head})
    return payout


# --- adjustments ---------------------------------------------------------------------


def _text(value, field: str, max_len: int = MAX_TEXT) -> str:
    text = (value or "").strip()
    if not text:
        raise DomainError("required", _l("Give a reason."), {field: _l("Required.")})
    if len(text) > max_len:
        raise DomainError("too_long", _l("At most %(n)d characters.", n=max_len),
                          {field: _l("At most %(n)d characters.", n=max_len)})
    return text


def may_propose_for(actor: User | None, beneficiary: User) -> bool:
    if actor is None:
        return True
    if actor.id == beneficiary.id:
        return False
    if actor.role == FINANCE:
        return True
    if actor.role in (SUPERVISOR, SALES_HEAD):
        return scope.is_below(actor.id, beneficiary.id)
    return False


def propose_adjustment(actor: User | None, *, beneficiary: User | None, amount: int, reason: str,
                       corrects_position: int | None = None, dispute: Dispute | None = None) -> Adjustment:
    """A supervisor, sales head or finance user proposes; nothing moves until approval."""
    if actor is not None and actor.role not in (SUPERVISOR, SALES_HEAD, FINANCE):
        raise Forbidden("forbidden", _l("Adjustments are proposed by supervisors, sales heads and finance."))
    if beneficiary is None or beneficiary.role not in (AGENT, SUPERVISOR):
        raise DomainError("bad_beneficiary", _l("Adjustments are paid to agents and supervisors."),
                          {"beneficiary": _l("An agent or a supervisor.")})
    if not may_propose_for(actor, beneficiary):
        raise Forbidden("forbidden", _l("You may not propose adjustments for %(login)s.", login=beneficiary.login))
    if (not isinstance(amount, int) or isinstance(amount, bool) or amount == 0
            or abs(amount) > MAX_ADJUSTMENT):
        raise DomainError("bad_amount", _l("The amount is not zero and at most %(max)s either way.",
                                           max=commission.format_money(MAX_ADJUSTMENT)),
                          {"amount": _l("An amount like 1500.00 or -1500.00.")})
    reason = _text(reason, "reason")
    if corrects_position is not None:
        entry = db.session.get(LedgerEntry, corrects_position)
        if entry is None or entry.beneficiary_id != beneficiary.id:
            raise DomainError("bad_entry", _l("Entry #%(pos)s is not one of %(login)s's.", pos=corrects_position,
                                              login=beneficiary.login), {"corrects": _l("Not this person's entry.")})
    if dispute is not None and dispute.agent_id != beneficiary.id:
        raise DomainError("bad_dispute", _l("The adjustment must go to the agent who disputed."),
                          {"beneficiary": _l("The disputing agent.")})
    actor_ctx = current_actor()
    adjustment = Adjustment(beneficiary_id=beneficiary.id, amount=amount, reason=reason,
                            corrects_position=corrects_position, dispute_id=dispute.id if dispute else None,
                            author_id=actor.id if actor else None, author_label=actor_ctx.label[:120],
                            proposed_at=clock.now(), status="proposed")
    db.session.add(adjustment)
    db.session.flush()
    audit.record("adjustment.propose", "adjustment", adjustment.id, subject_id=beneficiary.id,
                 after=_adjustment_snapshot(adjustment))
    if dispute is not None:
        _post(dispute, _note(_l("Adjustment #%(id)s proposed: %(amount)s — %(reason)s", id=adjustment.id,
                                  amount=commission.format_money(amount), reason=reason)))
    return adjustment


def _note(message) -> str:
    """Notes the system writes into a thread are stored in the company's default language."""
    from flask_babel import force_locale

    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        return str(message)


def _adjustment_snapshot(a: Adjustment) -> dict:
    return {"beneficiary": a.beneficiary_id, "amount": a.amount, "reason": a.reason, "corrects": a.corrects_position,
            "dispute": a.dispute_id, "status": a.status, "decision_reason": a.decision_reason,
            "entry": a.entry_position}


def _decidable(actor: User | None, adjustment: Adjustment) -> None:
    if adjustment.status != "proposed":
        message = (_l("This adjustment was already approved.") if adjustment.status == "approved"
                   else _l("This adjustment was already rejected."))
        raise DomainError("decided", message, {"status": message})
    _require_finance(actor, _l("Only finance decides adjustments."))
    if actor is not None and actor.id == adjustment.author_id:
        raise Forbidden("own_proposal", _l("Four eyes: you proposed this adjustment, another finance user decides it."))
    if actor is not None and actor.id == adjustment.beneficiary_id:
        raise Forbidden("own_money", _l("Four eyes: nobody decides an adjustment to their own money."))


def approve_adjustment(actor: User | None, adjustment: Adjustment) -> Adjustment:
    """Approved by a finance user who is neither its author nor its beneficiary: it becomes an
    ``adjustment`` entry in the payable bucket, in the current open period."""
    _decidable(actor, adjustment)
    before = _adjustment_snapshot(adjustment)
    corrects = None
    if adjustment.corrects_position is not None:
        corrects = db.session.get(LedgerEntry, adjustment.corrects_position).period
    entry, = ledger.write_entries(
        [commission.EntrySpec(f"adjustment:{adjustment.id}", "adjustment", "payable", adjustment.beneficiary_id,
                              adjustment.amount)],
        contract_id=None, rate_version_id=None, at=clock.now(), reason=adjustment.reason,
        ref_position=adjustment.corrects_position, corrects_period=corrects)
    adjustment.status, adjustment.decided_by_id, adjustment.decided_at = "approved", actor.id if actor else None, clock.now()
    adjustment.entry_position = entry.position
    db.session.flush()
    audit.record("adjustment.approve", "adjustment", adjustment.id, subject_id=adjustment.beneficiary_id,
                 before=before, after=_adjustment_snapshot(adjustment))
    dispute = adjustment.dispute
    if dispute is not None and dispute.status == "open":
        _settle(dispute, "resolved", _note(_l("Resolved by adjustment #%(id)s (%(amount)s), ledger entry #%(pos)s.",
                                              id=adjustment.id, amount=commission.format_money(adjustment.amount),
                                              pos=entry.position)))
    return adjustment


def reject_adjustment(actor: User | None, adjustment: Adjustment, reason: str) -> Adjustment:
    _decidable(actor, adjustment)
    reason = _text(reason, "reason")
    before = _adjustment_snapshot(adjustment)
    adjustment.status, adjustment.decided_by_id, adjustment.decided_at = "rejected", actor.id if actor else None, clock.now()
    adjustment.decision_reason = reason
    db.session.flush()
    audit.record("adjustment.reject", "adjustment", adjustment.id, subject_id=adjustment.beneficiary_id,
                 before=before, after=_adjustment_snapshot(adjustment))
    if adjustment.dispute is not None:
        _post(adjustment.dispute, _note(_l("Adjustment #%(id)s rejected: %(reason)s", id=adjustment.id,
                                           reason=reason)))
    return adjustment


def adjustments_visible(viewer: User):
    q = select(Adjustment)
    if viewer.role == FINANCE:
        return q
    if viewer.role in (SUPERVISOR, SALES_HEAD):
        return q.where(scope.user_filter(viewer, Adjustment.beneficiary_id))
    if viewer.role == AGENT:
        return q.where(Adjustment.beneficiary_id == viewer.id)
    return q.where(Adjustment.id == -1)


# --- disputes ------------------------------------------------------------------------


def may_see_dispute(user: User, dispute: Dispute) -> bool:
    """The agent, the agent's chain of command, and finance."""
    if user.role == FINANCE or user.id == dispute.agent_id:
        return True
    if user.role in (SUPERVISOR, SALES_HEAD):
        return scope.is_below(user.id, dispute.agent_id)
    return False


def disputes_visible(viewer: User):
    q = select(Dispute)
    if viewer.role == FINANCE:
        return q
    if viewer.role in (SUPERVISOR, SALES_HEAD):
        return q.where(Dispute.agent_id.in_(scope.subtree_ids(viewer.id)))
    if viewer.role == AGENT:
        return q.where(Dispute.agent_id == viewer.id)
    return q.where(Dispute.id == -1)


def open_dispute(agent: User, *, text: str, entry_position: int | None = None,
                 contract_number: str | None = None) -> Dispute:
    """An agent disputes one of their entries, one of their contracts, or something missing
    ("I signed flat 57 and it is not here": no entry, no contract, just the text)."""
    if agent.role != AGENT:
        raise Forbidden("forbidden", _l("Disputes are opened by agents about their own money."))
    text = _text(text, "text")
    entry = contract = None
    if entry_position is not None:
        entry = db.session.get(LedgerEntry, entry_position)
        if entry is None or entry.beneficiary_id != agent.id:
            raise NotFound("unknown_entry", _l("No such entry of yours."), {"entry": _l("Not yours.")})
        contract = entry.contract
    elif contract_number:
        contract = db.session.scalars(select(Contract).where(Contract.number == contract_number.strip().upper(),
                                                             Contract.agent_id == agent.id)).first()
        if contract is None:
            raise NotFound("unknown_contract", _l("No such contract of yours: %(n)s.", n=contract_number[:40]),
                           {"contract": _l("Not yours.")})
    if entry is not None:
        subject = f"#{entry.position} {entry.kind} {commission.format_money(entry.amount)}"
    elif contract is not None:
        subject = contract.number
    else:
        subject = text.splitlines()[0][:120]
    now = clock.now()
    dispute = Dispute(agent_id=agent.id, entry_position=entry.position if entry else None,
                      contract_id=contract.id if contract else None, subject=subject[:200], opened_at=now,
                      status="open")
    db.session.add(dispute)
    db.session.flush()
    _post(dispute, text, author=agent)
    audit.record("dispute.open", "dispute", dispute.id, subject_id=agent.id,
                 after={"entry": dispute.entry_position, "contract": contract.number if contract else None,
                        "subject": dispute.subject})
    if agent.manager_id:
        _notify(agent.manager_id, "dispute_opened", {"agent": agent.login, "subject": dispute.subject}, dispute)
    return dispute


def _notify(user_id: int, kind: str, params: dict, dispute: Dispute) -> None:
    from territories.services import notify

    notify(user_id, kind, params, link=f"/finance/disputes/{dispute.id}")


def _post(dispute: Dispute, text: str, author: User | None = None) -> DisputeMessage:
    actor_ctx = current_actor()
    message = DisputeMessage(dispute_id=dispute.id, author_id=author.id if author else actor_ctx.user_id,
                             author_label=(author.login if author else actor_ctx.label)[:120], at=clock.now(),
                             text=text)
    db.session.add(message)
    db.session.flush()
    return message


def post_message(actor: User, dispute: Dispute, text: str) -> DisputeMessage:
    if not may_see_dispute(actor, dispute):
        raise NotFound("unknown_dispute", _l("No such dispute."))
    if dispute.status != "open":
        raise DomainError("closed", _l("This dispute is settled; open a new one if something is still wrong."),
                          {"text": _l("Settled.")})
    message = _post(dispute, _text(text, "text"), author=actor)
    audit.record("dispute.message", "dispute", dispute.id, subject_id=dispute.agent_id,
                 after={"message": message.id})
    if actor.id != dispute.agent_id:
        _notify(dispute.agent_id, "dispute_answered", {"subject": dispute.subject, "by": actor.login}, dispute)
    elif dispute.agent.manager_id:
        _notify(dispute.agent.manager_id, "dispute_answered", {"subject": dispute.subject, "by": actor.login}, dispute)
    return message


def reject_dispute(actor: User, dispute: Dispute, reason: str) -> Dispute:
    """A reasoned rejection by the agent's chain of command or finance."""
    if not may_see_dispute(actor, dispute) or actor.id == dispute.agent_id:
        raise Forbidden("forbidden", _l("The agent's supervisor, sales head or finance answers a dispute."))
    if dispute.status != "open":
        raise DomainError("closed", _l("This dispute is already settled."), {"reason": _l("Settled.")})
    reason = _text(reason, "reason")
    _post(dispute, reason, author=actor)
    _settle(dispute, "rejected", reason, actor=actor)
    return dispute


def _settle(dispute: Dispute, status: str, resolution: str, actor: User | None = None) -> None:
    actor_ctx = current_actor()
    dispute.status, dispute.resolved_at, dispute.resolution = status, clock.now(), resolution
    dispute.resolved_by_id = actor.id if actor else actor_ctx.user_id
    db.session.flush()
    audit.record(f"dispute.{'resolve' if status == 'resolved' else 'reject'}", "dispute", dispute.id,
                 subject_id=dispute.agent_id, before={"status": "open"},
                 after={"status": status, "resolution": resolution})
    _notify(dispute.agent_id, f"dispute_{status}", {"subject": dispute.subject}, dispute)


# --- statements ----------------------------------------------------------------------


@dataclass
class Statement:
    subject: User
    period: str
    close: PeriodClose | None
    figures: core.Figures
    entries: list
    late_cancellations: list
    pipeline: list
    head: str
    snapshot: PeriodSnapshot | None = None

    @property
    def pipeline_total(self) -> int:
        return sum(e.amount for e in self.pipeline)


def statement(subject: User, period: str) -> Statement:
    """Every entry of the period with its contract, the figures the payout file shows, the
    cancellations too late to claw back, the pending pipeline and the ledger head."""
    period = parse_period(period)
    close = get_close(period)
    entries = list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.beneficiary_id == subject.id,
                                                                LedgerEntry.period == period)
                                      .order_by(LedgerEntry.position)))
    snap = db.session.get(PeriodSnapshot, (period, subject.id)) if close else None
    # recomputed from the entries; for a closed period this equals the snapshot (no entry joins a
    # closed period), which the page shows side by side
    figures = period_figures(period, [subject.id]).get(subject.id) or core.Figures()
    start, end = core.bounds(period, _zone())
    clawed = select(LedgerEntry.contract_id).where(LedgerEntry.kind == "clawback",
                                                   LedgerEntry.contract_id.is_not(None))
    late = list(db.session.scalars(select(Contract).where(
        Contract.agent_id == subject.id, Contract.status == "cancelled", Contract.activated_at.is_not(None),
        Contract.cancelled_at >= start, Contract.cancelled_at < end, Contract.rate_version_id.is_not(None),
        Contract.id.not_in(clawed)).order_by(Contract.cancelled_at)))
    head = close.head if close else chain.format_head(*ledger.head())
    return Statement(subject=subject, period=period, close=close, figures=figures, entries=entries,
                     late_cancellations=late, pipeline=ledger.unresolved_accruals([subject.id]), head=head,
                     snapshot=snap)


def statement_periods(subject: User) -> list[str]:
    """Months with entries for the subject, newest first, plus the current one."""
    months = set(db.session.scalars(select(LedgerEntry.period).where(LedgerEntry.beneficiary_id == subject.id)
                                    .distinct()))
    months.add(current_period())
    return sorted(months, reverse=True)

"""Rate versions and ledger entries. Services flush; the request or command commits once."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from crm import chain, clock
from crm.actors import Actor, current_actor
from crm.audit import services as audit
from crm.catalogue.models import Tariff
from crm.errors import DomainError, Forbidden
from crm.finance.core import next_period, period_of
from crm.extensions import db
from crm.ledger import commission
from crm.ledger.models import LedgerEntry, RateAmount, RateTier, RateVersion
from crm.users.models import SALES_HEAD


# --- time and periods ----------------------------------------------------------------


def company_tz() -> ZoneInfo:
    return clock.company_zone()


def month_of(at: datetime) -> str:
    return period_of(at, company_tz())


def last_closed_period() -> str | None:
    from crm.finance.models import PeriodClose

    return db.session.scalar(select(func.max(PeriodClose.period)))


def period_for(at: datetime) -> tuple[str, str | None]:
    """(period, corrects_period) of an entry whose event happened at ``at``.

    The month of ``at`` if it is open; otherwise the earliest open month, naming the
    closed one it corrects. Callers hold the chain lock, so no close slips in between.
    """
    month = month_of(at)
    closed = last_closed_period()
    if closed is None or month > closed:
        return month, None
    return next_period(closed), month


def parse_local_datetime(value: str) -> datetime:
    """ISO datetime; without a zone it is read in the company time zone."""
    parsed = datetime.fromisoformat(str(value).strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=company_tz())
    return clock.ensure_utc(parsed)


# --- rate versions -------------------------------------------------------------------


def version_in_force(at: datetime) -> RateVersion | None:
    """The version with the latest ``effective_from`` ≤ ``at``; on a tie the later ``recorded_at`` wins."""
    return db.session.scalars(
        select(RateVersion).where(RateVersion.effective_from <= at)
        .order_by(RateVersion.effective_from.desc(), RateVersion.recorded_at.desc(), RateVersion.id.desc())
        .limit(1)).first()


def rates_of(version: RateVersion) -> commission.Rates:
    """The version's rates in two statements (amounts with their codes, tiers), not one lazy
    load per tariff: every signing and every phone's offer reads them."""
    amounts = db.session.execute(
        select(Tariff.code, RateAmount.amount).join(Tariff, Tariff.id == RateAmount.tariff_id)
        .where(RateAmount.version_id == version.id)).all()
    tiers = db.session.execute(
        select(RateTier.activations, RateTier.bonus_per_activation).where(RateTier.version_id == version.id)
        .order_by(RateTier.activations)).all()
    return commission.Rates(
        version_id=version.id,
        amounts={code: amount for code, amount in amounts},
        override_bp=version.override_bp,
        clawback_days=version.clawback_days,
        tiers=tuple((activations, bonus) for activations, bonus in tiers),
    )


#: No single amount in a rate version above this (minor units): a contract's sum of a tariff
#: and every add-on must stay far inside a 64-bit integer.
MAX_AMOUNT = 10**11


def _field_error(field: str, message) -> DomainError:
    return DomainError("invalid_rates", message, {field: message})


def add_rate_version(actor, doc: dict) -> RateVersion:
    """Add a version for the future. Refused: a past ``effective_from``, a missing amount for
    an active tariff or add-on, an unknown code, bad numbers. Versions are never edited."""
    if actor is not None and actor.role != SALES_HEAD:
        raise Forbidden("forbidden", _l("Only the sales head sets rates."))
    if not isinstance(doc, dict):
        raise _field_error("file", _l("Rates must be a JSON object."))
    now = clock.now()
    try:
        effective_from = parse_local_datetime(doc.get("effective_from"))
    except (TypeError, ValueError):
        raise _field_error("effective_from", _l("effective_from must be an ISO date and time."))
    if effective_from < now:
        raise DomainError("past", _l("effective_from %(at)s is in the past", at=doc.get("effective_from")),
                          {"effective_from": _l("Rates change only for the future.")})
    try:
        override_bp = commission.percent_to_bp(doc.get("supervisor_override_percent", ""))
    except ValueError:
        raise _field_error("supervisor_override_percent", _l("A percentage from 0 to 100 with at most two decimals."))
    clawback_days = doc.get("clawback_days")
    if not isinstance(clawback_days, int) or isinstance(clawback_days, bool) or not 0 <= clawback_days <= 3650:
        raise _field_error("clawback_days", _l("clawback_days must be a whole number of days from 0 to 3650."))

    agent = doc.get("agent") or {}
    given = {"tariffs": agent.get("tariffs") or {}, "addons": agent.get("addons") or {}}
    if not all(isinstance(v, dict) for v in given.values()):
        raise _field_error("agent", _l("agent.tariffs and agent.addons map codes to amounts."))
    catalogue = {t.code: t for t in db.session.scalars(select(Tariff))}
    amounts: dict[int, int] = {}
    for group, is_addon in (("tariffs", False), ("addons", True)):
        for code, amount in given[group].items():
            tariff = catalogue.get(code)
            if tariff is None or tariff.is_addon != is_addon:
                raise _field_error(f"agent.{group}.{code}", _l("Unknown code %(code)s in %(group)s.", code=code, group=group))
            if not tariff.active:
                raise _field_error(f"agent.{group}.{code}", _l("%(code)s is archived.", code=code))
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= MAX_AMOUNT:
                raise _field_error(f"agent.{group}.{code}",
                                   _l("Amounts are whole minor units ≥ 0 (%(code)s).", code=code))
            amounts[tariff.id] = amount
    missing = sorted(t.code for t in catalogue.values() if t.active and t.id not in amounts)
    if missing:
        raise DomainError("missing_amounts", _l("No amount for %(codes)s: every active tariff and add-on needs one.",
                                                codes=", ".join(missing)), {"agent": ", ".join(missing)})
    tiers: dict[int, int] = {}
    for tier in doc.get("tiers") or []:
        if not isinstance(tier, dict):
            raise _field_error("tiers", _l("Each tier is {\"activations\", \"bonus_per_activation\"}."))
        count, per = tier.get("activations"), tier.get("bonus_per_activation")
        if (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100000
                or not isinstance(per, int) or isinstance(per, bool) or not 0 <= per <= MAX_AMOUNT):
            raise _field_error("tiers", _l("A tier needs activations ≥ 1 and bonus_per_activation ≥ 0 (minor units)."))
        if count in tiers:
            raise _field_error("tiers", _l("Two tiers start at %(n)d activations.", n=count))
        tiers[count] = per

    version = RateVersion(effective_from=effective_from, recorded_at=now, override_bp=override_bp,
                          clawback_days=clawback_days, created_by_id=actor.id if actor else None,
                          source=json.dumps(doc, sort_keys=True, ensure_ascii=False))
    db.session.add(version)
    db.session.flush()
    for tariff_id, amount in amounts.items():
        db.session.add(RateAmount(version_id=version.id, tariff_id=tariff_id, amount=amount))
    for count, per in tiers.items():
        db.session.add(RateTier(version_id=version.id, activations=count, bonus_per_activation=per))
    db.session.flush()
    audit.record("rate_version.add", "rate_version", version.id, after={
        "effective_from": effective_from.isoformat(), "override_bp": override_bp, "clawback_days": clawback_days,
        "amounts": {c: given["tariffs"].get(c, given["addons"].get(c)) for c in sorted(set(given["tariffs"]) | set(given["addons"]))},
        "tiers": {str(k): v for k, v in sorted(tiers.items())}})
    return version


# --- entries -------------------------------------------------------------------------


def write_entries(specs: list[commission.EntrySpec], *, contract_id: int | None, rate_version_id: int | None,
                  at: datetime, reason: str | None = None, actor: Actor | None = None,
                  positions: dict[str, int] | None = None, corrects_period: str | None = None,
                  ref_position: int | None = None, new_keys: bool = False) -> list[LedgerEntry]:
    """Append entries to the chain (an idempotent replay returns the stored ones).

    ``new_keys``: the caller knows no entry with these keys can be stored yet (a contract
    signed in this unit of work; a lifecycle step the transition table allows only once), so
    no replay lookup is made; the keys' unique index still refuses a second one.

    ``positions`` maps the idempotency keys of stored entries the specs refer to onto their
    positions (the rest are looked up in one statement);
    ``ref_position`` is the entry a manual adjustment corrects, and ``corrects_period`` the
    (closed) period it belongs to.
    """
    actor = actor or current_actor()
    chain.lock_chains(db.session)  # before reading the periods: a close cannot slip in between
    period, corrects = period_for(at)
    if corrects is None and corrects_period is not None and corrects_period < period:
        corrects = corrects_period
    positions = dict(positions or {})
    missing = {spec.ref_key for spec in specs if spec.ref_key and spec.ref_key not in positions}
    if missing:
        positions.update(db.session.execute(select(LedgerEntry.idempotency_key, LedgerEntry.position)
                                            .where(LedgerEntry.idempotency_key.in_(missing))).all())
    recorded_at, at = clock.now(), clock.ensure_utc(at)
    entries = [LedgerEntry(
        idempotency_key=spec.key, kind=spec.kind, bucket=spec.bucket, beneficiary_id=spec.beneficiary_id,
        contract_id=contract_id, rate_version_id=rate_version_id, amount=spec.amount, at=at,
        recorded_at=recorded_at, period=period, corrects_period=corrects, actor_id=actor.user_id,
        actor_label=actor.label[:120], reason=reason,
        ref_position=positions.get(spec.ref_key) if spec.ref_key else ref_position) for spec in specs]
    return chain.append_all(db.session, entries, new_keys=new_keys)


def contract_entries(contract_id: int, *kinds: str) -> list[LedgerEntry]:
    q = select(LedgerEntry).where(LedgerEntry.contract_id == contract_id)
    if kinds:
        q = q.where(LedgerEntry.kind.in_(kinds))
    return list(db.session.scalars(q.order_by(LedgerEntry.position)))


def balances(beneficiary_ids) -> dict[int, dict[str, int]]:
    """{beneficiary: {"pending": …, "payable": …}} — sums of entries, nothing else."""
    out = {b: {"pending": 0, "payable": 0} for b in beneficiary_ids}
    if not out:
        return out
    rows = db.session.execute(
        select(LedgerEntry.beneficiary_id, LedgerEntry.bucket, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.beneficiary_id.in_(list(out))).group_by(LedgerEntry.beneficiary_id, LedgerEntry.bucket))
    for beneficiary_id, bucket, total in rows:
        out[beneficiary_id][bucket] = int(total or 0)
    return out


def head() -> tuple[int, str]:
    return chain.head(db.session, LedgerEntry)


def unresolved_accruals(beneficiary_ids) -> list[LedgerEntry]:
    """The pending pipeline: accruals and overrides not yet released or voided."""
    resolved = select(LedgerEntry.ref_position).where(LedgerEntry.kind.in_(("release", "void")),
                                                      LedgerEntry.ref_position.is_not(None))
    return list(db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.beneficiary_id.in_(list(beneficiary_ids)),
                                  LedgerEntry.kind.in_(("accrual", "override")),
                                  LedgerEntry.position.not_in(resolved))
        .order_by(LedgerEntry.position)))

"""Signing contracts and moving them through their lifecycle; every step writes its ledger
entries and audit event in the same unit of work. Services flush; callers commit."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

import phonenumbers
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm import chain, clock
from crm.actors import Actor, current_actor
from crm.audit import services as audit
from crm.catalogue.models import Tariff
from crm.contracts import lifecycle
from crm.contracts.models import Contract, ContractAddon, ContractEvent
from crm.errors import Conflict, DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.i18n import STATUS_NAMES
from crm.ledger import commission
from crm.ledger import services as ledger
from crm.ledger.models import RateVersion
from crm.users import scope
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from territories.models import Building


def normalise_phone(raw: str) -> str:
    """Any way a resident dictates a number → E.164, or a DomainError."""
    region = current_app.config.get("PHONE_REGION", "RU")
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError("bad_phone", _l("%(phone)s is not a valid phone number.", phone=(raw or "").strip()[:40]),
                          {"phone": _l("Not a valid phone number.")})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def may_sign_for(actor: User | None, agent: User) -> bool:
    if actor is None:
        return True
    if actor.id == agent.id:
        return actor.role == AGENT
    if actor.role in (SUPERVISOR, SALES_HEAD):
        return scope.is_below(actor.id, agent.id)
    return False


def active_contract_for_flat(building_id: int, flat: int) -> Contract | None:
    return db.session.scalars(select(Contract).where(
        Contract.building_id == building_id, Contract.flat == flat, Contract.status != "cancelled")).first()


def _flat_taken(first: Contract) -> Conflict:
    return Conflict("flat_taken", _l("Flat %(flat)d already has contract %(number)s (%(agent)s).", flat=first.flat,
                                     number=first.number, agent=first.agent.login), {"flat": first.number})


def sign(actor: User | None, *, agent: User, building: Building | None, flat, subscriber_name: str, phone: str,
         tariff_code: str, addon_codes=(), adult_confirmed: bool, at: datetime, client_id: str | None = None,
         phone_event: bool = True) -> tuple[Contract, bool]:
    """Sign a contract and lock the rate in force at ``at`` onto it.

    Returns ``(contract, created)``; a replay of the same ``client_id`` by the same agent
    returns the stored contract with ``created=False``.
    """
    if not may_sign_for(actor, agent):
        raise Forbidden("forbidden", _l("You may not sign contracts for this agent."))
    # one signer at a time (PostgreSQL: the chain lock; SQLite writers are serialised already): a
    # parallel retry of this client id, or a second signing of this flat, then sees the first one
    chain.lock_chains(db.session)
    if client_id:
        existing = db.session.scalars(select(Contract).where(Contract.client_id == client_id)).first()
        if existing is not None:
            if existing.agent_id != agent.id:
                raise Conflict("client_id_taken", _l("This client id belongs to another contract."))
            return existing, False
    if agent.role != AGENT or not agent.active:
        raise DomainError("not_agent", _l("Contracts are signed by active agents."), {"agent": _l("Not an active agent.")})
    if building is None:
        raise NotFound("unknown_building", _l("No such building."), {"building_id": _l("Unknown building.")})
    if not isinstance(flat, int) or isinstance(flat, bool) or not building.has_flat(flat):
        raise DomainError("bad_flat", _l("Flat must be a number from 1 to %(n)d.", n=building.apartments),
                          {"flat": _l("From 1 to %(n)d.", n=building.apartments)})
    name = (subscriber_name or "").strip()
    if not name or len(name) > 200:
        raise DomainError("bad_name", _l("The subscriber's name is required (up to 200 characters)."),
                          {"subscriber_name": _l("Required.")})
    e164 = normalise_phone(phone)
    if adult_confirmed is not True:
        raise DomainError("not_adult", _l("Nobody signs a contract with a minor: confirm the subscriber is an adult."),
                          {"adult_confirmed": _l("Required.")})
    recorded_at = clock.now()
    try:
        clock.check_business_time(at, recorded_at,
                                  grace=current_app.config["OFFLINE_GRACE"] if phone_event else None)
    except clock.BusinessTimeError as exc:
        message = (_l("The signing time is in the future.") if exc.code == "future"
                   else _l("The signing time is older than the offline grace."))
        raise DomainError("bad_time", message, {"at": message})
    at = clock.ensure_utc(at)

    tariff = db.session.scalars(select(Tariff).where(Tariff.code == tariff_code)).first()
    if tariff is None or tariff.is_addon or not tariff.active:
        raise DomainError("bad_tariff", _l("%(code)s is not an active tariff.", code=tariff_code),
                          {"tariff": _l("Not an active tariff.")})
    addon_codes = list(dict.fromkeys(addon_codes or ()))
    addons = []
    for code in addon_codes:
        addon = db.session.scalars(select(Tariff).where(Tariff.code == code)).first()
        if addon is None or not addon.is_addon or not addon.active:
            raise DomainError("bad_addon", _l("%(code)s is not an active add-on.", code=code),
                              {"addons": _l("Not an active add-on: %(code)s", code=code)})
        addons.append(addon)
    version = ledger.version_in_force(at)
    rates = ledger.rates_of(version) if version else None
    if rates is not None:
        try:
            commission.agent_amount(rates, tariff.code, addon_codes)
        except commission.NotOffered as exc:
            code = exc.args[0]
            raise DomainError("not_offered", _l("%(code)s is not offered under the rates in force.", code=code),
                              {"tariff" if code == tariff.code else "addons": _l("Not offered now.")})

    first = active_contract_for_flat(building.id, flat)
    if first is not None:
        raise _flat_taken(first)

    contract = Contract(
        number=f"tmp-{uuid.uuid4().hex[:16]}", client_id=client_id or None, agent_id=agent.id,
        supervisor_id=agent.manager_id, building_id=building.id, flat=flat, subscriber_name=name, phone=e164,
        tariff_id=tariff.id, monthly_fee=tariff.monthly_fee + sum(a.monthly_fee for a in addons),
        adult_confirmed=True, at=at, recorded_at=recorded_at, rate_version_id=version.id if version else None,
        status="signed")
    try:
        with db.session.begin_nested():
            db.session.add(contract)
            db.session.flush()
    except IntegrityError:
        first = active_contract_for_flat(building.id, flat)
        if first is not None:
            raise _flat_taken(first)
        raise
    contract.number = f"D-{ledger.month_of(at)[:4]}-{contract.id:06d}"
    for addon in addons:
        db.session.add(ContractAddon(contract_id=contract.id, tariff_id=addon.id))
    actor_ctx = current_actor()
    request = {"event": "signed", "at": at.isoformat()}
    db.session.add(ContractEvent(
        contract_id=contract.id, event_key=f"sign:{contract.number}", event="signed", from_status=None,
        to_status="signed", at=at, recorded_at=recorded_at, actor_id=actor_ctx.user_id, api_key_id=actor_ctx.api_key_id,
        actor_label=actor_ctx.label[:120], request=_canonical(request), answer=_canonical({"status": "signed"})))
    db.session.flush()
    if rates is not None:
        ledger.write_entries(commission.signing_entries(contract.number, agent.id, contract.supervisor_id, rates,
                                                        tariff.code, addon_codes),
                             contract_id=contract.id, rate_version_id=version.id, at=at, new_keys=True)
    audit.record("contract.sign", "contract", contract.number, at=at, subject_id=agent.id, after={
        "building": building.external_id, "flat": flat, "tariff": tariff.code, "addons": addon_codes,
        "rate_version": version.id if version else None, "supervisor": contract.supervisor_id})
    return contract, True


def _canonical(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def may_report_events(actor: User, contract: Contract) -> bool:
    """Staff who may record lifecycle events from the contract page: the sales head of the
    region and finance. Not supervisors or admins: activations and cancellations move money."""
    if actor.role == FINANCE:
        return True
    if actor.role == SALES_HEAD:
        return scope.is_below(actor.id, contract.agent_id) or (
            contract.supervisor_id is not None and scope.is_below(actor.id, contract.supervisor_id))
    return False


def apply_event(contract: Contract, *, event: str, at: datetime, reason: str | None, event_key: str,
                actor: Actor | None = None) -> tuple[int, dict]:
    """Apply a lifecycle event. Returns (HTTP status, answer): 201 applied, 200 an identical
    replay (the original answer); raises Conflict (409) for a replay with different data or
    a transition the table refuses."""
    actor = actor or current_actor()
    if event not in lifecycle.EVENTS:
        raise DomainError("bad_event", _l("Unknown event %(event)s.", event=event), {"event": _l("Unknown event.")})
    # One event writer at a time, and the contract read after it: an activation and a cancellation
    # arriving together must not both start from "signed", and a parallel replay must find the first.
    chain.lock_chains(db.session)
    db.session.refresh(contract)
    reason = (reason or "").strip() or None
    at = clock.ensure_utc(at)
    request = {"contract": contract.number, "event": event, "at": at.isoformat(), "reason": reason}
    stored = db.session.scalars(select(ContractEvent).where(ContractEvent.event_key == event_key)).first()
    if stored is not None:
        before = json.loads(stored.request)
        for name in ("contract", "event", "at", "reason"):
            if before.get(name) != request[name]:
                raise Conflict("replay_differs", _l("Event %(key)s was already received with a different %(field)s.",
                                                    key=event_key.split(":", 1)[-1], field=name), {name: _l("Differs.")})
        return 200, json.loads(stored.answer)
    recorded_at = clock.now()
    try:
        clock.check_business_time(at, recorded_at, grace=None)
    except clock.BusinessTimeError:
        raise DomainError("bad_time", _l("The event time is in the future."), {"at": _l("In the future.")})
    if event == "cancelled" and not reason:
        raise DomainError("reason_required", _l("A cancellation needs a reason."), {"reason": _l("Required.")})
    from_status = contract.status
    if not lifecycle.allowed(from_status, event):
        names = {"from": STATUS_NAMES[from_status], "to": STATUS_NAMES[event]}
        raise Conflict("transition_refused", _l("A %(from)s contract cannot become %(to)s.", **names),
                       {"event": _l("Not allowed from %(status)s.", status=names["from"])})

    contract.status = event
    if event == "activated":
        contract.activated_at = at
    elif event == "cancelled":
        contract.cancelled_at, contract.cancel_reason = at, reason
    entries = []
    version = db.session.get(RateVersion, contract.rate_version_id) if contract.rate_version_id else None
    if version is not None and event in ("activated", "cancelled"):
        existing = ledger.contract_entries(contract.id, "accrual", "override", "earned")
        accruals = [(e.idempotency_key, e.beneficiary_id, e.amount) for e in existing if e.kind != "earned"]
        if event == "activated":
            specs = commission.activation_entries(contract.number, accruals)
        else:
            earned = [(e.idempotency_key, e.beneficiary_id, e.amount) for e in existing if e.kind == "earned"]
            specs = commission.cancellation_entries(
                contract.number, was_activated=from_status == "activated", accruals=accruals, earned=earned,
                activated_at=contract.activated_at, cancelled_at=at, clawback_days=version.clawback_days)
        # the table allows each of these steps once per contract: their entries cannot be stored yet
        entries = ledger.write_entries(specs, contract_id=contract.id, rate_version_id=version.id, at=at,
                                       reason=reason, actor=actor, new_keys=True,
                                       positions={e.idempotency_key: e.position for e in existing})
    answer = {"contract": contract.number, "status": contract.status, "event": event,
              "event_id": event_key.split(":", 1)[-1], "at": at.isoformat(),
              "ledger_entries": [{"position": e.position, "kind": e.kind, "bucket": e.bucket,
                                  "amount": commission.format_money(e.amount)} for e in entries]}
    db.session.add(ContractEvent(
        contract_id=contract.id, event_key=event_key, event=event, from_status=from_status, to_status=event, at=at,
        recorded_at=recorded_at, reason=reason, actor_id=actor.user_id, api_key_id=actor.api_key_id,
        actor_label=actor.label[:120], request=_canonical(request), answer=_canonical(answer)))
    db.session.flush()
    audit.record(f"contract.{event}", "contract", contract.number, at=at, subject_id=contract.agent_id, actor=actor,
                 before={"status": from_status}, after={"status": event, "reason": reason})
    return 201, answer

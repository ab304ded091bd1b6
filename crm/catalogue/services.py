"""Managing the catalogue. Codes never change; tariffs are archived, never deleted."""
from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import clock
from crm.audit import services as audit
from crm.catalogue.models import ADDON_KINDS, TARIFF_KINDS, Tariff
from crm.errors import DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.users.models import SALES_HEAD

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _check_actor(actor) -> None:
    if actor is not None and actor.role != SALES_HEAD:
        raise Forbidden("forbidden", _l("Only the sales head manages the catalogue."))


def add_tariff(actor, *, code: str, name: str, kind: str, monthly_fee: int, speed_mbit: int | None = None,
               is_addon: bool = False) -> Tariff:
    _check_actor(actor)
    code = (code or "").strip()
    name = (name or "").strip()
    if not CODE_RE.match(code):
        raise DomainError("bad_code", _l("A code is 1–32 lowercase letters, digits, '-' or '_'."),
                          {"code": _l("Lowercase letters, digits, '-' or '_'.")})
    if db.session.scalar(select(Tariff.id).where(Tariff.code == code)):
        raise DomainError("code_taken", _l("The code %(code)s exists already; codes never change or repeat.", code=code),
                          {"code": _l("Already taken.")})
    if not name or len(name) > 200:
        raise DomainError("bad_name", _l("A name is required."), {"name": _l("Required.")})
    kinds = ADDON_KINDS if is_addon else TARIFF_KINDS
    if kind not in kinds:
        raise DomainError("bad_kind", _l("Kind must be one of: %(kinds)s.", kinds=", ".join(kinds)),
                          {"kind": _l("One of: %(kinds)s.", kinds=", ".join(kinds))})
    if not isinstance(monthly_fee, int) or monthly_fee < 0:
        raise DomainError("bad_fee", _l("The monthly fee is an amount ≥ 0."), {"monthly_fee": _l("An amount ≥ 0.")})
    if speed_mbit is not None and (not isinstance(speed_mbit, int) or speed_mbit <= 0):
        raise DomainError("bad_speed", _l("Speed is a whole number of Mbit/s above 0."), {"speed_mbit": _l("Above 0.")})
    if kind in ("internet", "bundle") and not is_addon and speed_mbit is None:
        raise DomainError("speed_required", _l("An internet tariff needs its speed."), {"speed_mbit": _l("Required.")})
    tariff = Tariff(code=code, name=name, kind=kind, monthly_fee=monthly_fee, speed_mbit=speed_mbit,
                    is_addon=is_addon, created_at=clock.now())
    db.session.add(tariff)
    db.session.flush()
    audit.record("tariff.add", "tariff", tariff.code, after=tariff.snapshot())
    return tariff


def archive_tariff(actor, code: str) -> Tariff:
    _check_actor(actor)
    tariff = db.session.scalars(select(Tariff).where(Tariff.code == code)).first()
    if tariff is None:
        raise NotFound("unknown_tariff", _l("No tariff %(code)s.", code=code))
    if tariff.archived_at is None:
        before = tariff.snapshot()
        tariff.archived_at = clock.now()
        db.session.flush()
        audit.record("tariff.archive", "tariff", tariff.code, before=before, after=tariff.snapshot())
    return tariff


def catalogue(include_archived: bool = True) -> list[Tariff]:
    q = select(Tariff)
    if not include_archived:
        q = q.where(Tariff.archived_at.is_(None))
    return list(db.session.scalars(q.order_by(Tariff.is_addon, Tariff.archived_at.is_not(None), Tariff.code)))

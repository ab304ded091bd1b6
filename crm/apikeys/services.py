"""Creating, revoking and checking API keys. A key is shown once and stored hashed."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import clock
from crm.apikeys.models import SCOPES, ApiKey
from crm.audit import services as audit
from crm.errors import DomainError, Forbidden, NotFound
from crm.extensions import db
from crm.users.models import ADMIN

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_RE = re.compile(r"^dsk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_actor(actor) -> None:
    if actor is not None and actor.role != ADMIN:
        raise Forbidden("forbidden", _l("Only an administrator manages API keys."))


def create_key(actor, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Returns the row and the plain key, which is never stored and never shown again."""
    _check_actor(actor)
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise DomainError("bad_name", _l("A key name is 1–64 letters, digits, dots, dashes or underscores."),
                          {"name": _l("Letters, digits, '.', '-' or '_'.")})
    scopes = sorted(set(scopes or []))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise DomainError("bad_scope", _l("Scopes must be some of: %(scopes)s.", scopes=", ".join(SCOPES)),
                          {"scope": _l("Unknown scope: %(s)s", s=", ".join(unknown)) if unknown else _l("Required.")})
    if db.session.scalar(select(ApiKey.id).where(ApiKey.name == name)):
        raise DomainError("name_taken", _l("A key named %(name)s exists already.", name=name), {"name": _l("Already taken.")})
    prefix = secrets.token_hex(6)
    plain = f"dsk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, prefix=prefix, key_hash=_digest(plain), scopes=" ".join(scopes),
                 created_at=clock.now(), created_by_id=actor.id if actor else None)
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.create", "api_key", key.id, after=key.snapshot())
    return key, plain


def revoke_key(actor, name: str) -> ApiKey:
    _check_actor(actor)
    key = db.session.execute(select(ApiKey).where(ApiKey.name == name)).scalar_one_or_none()
    if key is None:
        raise NotFound("unknown_key", _l("No API key named %(name)s.", name=name))
    if key.revoked_at is not None:
        raise DomainError("already_revoked", _l("The key %(name)s is already revoked.", name=name))
    before = key.snapshot()
    key.revoked_at = clock.now()
    db.session.flush()
    audit.record("api_key.revoke", "api_key", key.id, before=before, after=key.snapshot())
    return key


def authenticate(plain: str) -> ApiKey | None:
    """The active key matching ``plain``, or None."""
    match = KEY_RE.match(plain or "")
    if not match:
        return None
    key = db.session.execute(select(ApiKey).where(ApiKey.prefix == match.group(1))).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, _digest(plain)):
        return None
    return key


def all_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.name)))

"""Checking passwords with throttling that lives in the database.

Throttling counts failed attempts per login and per client address inside a
sliding window, so it holds across every server process sharing the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from crm import clock
from crm.actors import Actor
from crm.audit import services as audit
from crm.auth.models import LoginAttempt
from crm.extensions import db
from crm.users import services as users
from crm.users.models import User

# werkzeug hash of a random password: lets an unknown login cost as much as a known one.
_DUMMY_HASH = None


@dataclass
class LoginResult:
    user: User | None
    throttled: bool = False
    retry_after_minutes: int = 0


def _window() -> timedelta:
    return timedelta(minutes=current_app.config["LOGIN_WINDOW_MINUTES"])


def throttled(login: str, client_addr: str | None) -> int:
    """Minutes until another attempt is allowed, 0 when allowed now."""
    now = clock.now()
    since = now - _window()
    cfg = current_app.config
    checks = [(LoginAttempt.login == login, cfg["LOGIN_MAX_FAILURES"])]
    if client_addr:
        checks.append((LoginAttempt.client_addr == client_addr, cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    wait = 0
    for condition, limit in checks:
        last_success = db.session.scalar(
            select(func.max(LoginAttempt.at)).where(condition, LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since))
        start = max(since, last_success) if last_success else since
        failures = list(db.session.scalars(
            select(LoginAttempt.at).where(condition, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= start)
            .order_by(LoginAttempt.at.desc()).limit(limit)))
        if len(failures) >= limit:
            oldest = failures[-1]
            remaining = (oldest + _window() - now).total_seconds()
            wait = max(wait, max(1, int(remaining // 60) + (1 if remaining % 60 else 0)))
    return wait


def authenticate(login: str, password: str, client_addr: str | None) -> LoginResult:
    """Check a login; record the attempt and an audit event either way. Caller commits."""
    global _DUMMY_HASH
    login = (login or "").strip().lower()[:64]
    wait = throttled(login, client_addr)
    actor = Actor(None, login or "anonymous", client_addr)
    if wait:
        # not counted as a failure: hammering a locked login does not extend its lock
        audit.record("login.throttled", "user", None, after={"login": login}, actor=actor)
        return LoginResult(None, throttled=True, retry_after_minutes=wait)
    user = users.find_by_login(login)
    if user is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = users.hash_password(users.generate_password())
        from werkzeug.security import check_password_hash
        check_password_hash(_DUMMY_HASH, password or "")
        ok = password_ok = False
    else:
        password_ok = users.check_password(user, password or "")
        ok = password_ok and user.active
    db.session.add(LoginAttempt(login=login, client_addr=client_addr, at=clock.now(), succeeded=ok))
    if ok:
        audit.record("login", "user", user.id, subject_id=user.id,
                     actor=Actor(user.id, user.login, client_addr))
        return LoginResult(user)
    audit.record("login.failed", "user", user.id if user else None, subject_id=user.id if user else None,
                 after={"login": login, "reason": "inactive" if user and password_ok else "credentials"},
                 actor=actor)
    return LoginResult(None)

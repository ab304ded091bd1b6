"""Checking passwords with throttling that lives in the database.

Throttling counts failed attempts per login and per client address inside a
sliding window, so it holds across every server process sharing the database.
An attempt is written (and committed) *before* its password is checked, so
parallel guesses count against each other; the slow password check itself runs
outside any write transaction, so it never keeps other writers waiting.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from crm import clock
from crm.actors import Actor
from crm.audit import services as audit
from crm.auth.models import LoginAttempt
from crm.database import LOCK_CLASS_LOGIN, lock_name, read_only
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


def _minutes_until(oldest, now) -> int:
    remaining = (oldest + _window() - now).total_seconds()
    return max(1, int(remaining // 60) + (1 if remaining % 60 else 0))


def throttled(login: str, client_addr: str | None) -> int:
    """Minutes until another attempt is allowed, 0 when allowed now.

    Per login: ``LOGIN_MAX_FAILURES`` failures since its last success inside the window.
    Per client address: ``LOGIN_MAX_FAILURES_PER_ADDRESS`` failures inside the window,
    whatever succeeded meanwhile (a valid account of one's own does not reset it).
    """
    now = clock.now()
    since = now - _window()
    cfg = current_app.config
    wait = 0
    last_success = db.session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.login == login, LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since))
    checks = [(LoginAttempt.login == login, max(since, last_success) if last_success else since,
               cfg["LOGIN_MAX_FAILURES"])]
    if client_addr:
        checks.append((LoginAttempt.client_addr == client_addr, since, cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    for condition, start, limit in checks:
        failures = list(db.session.scalars(
            select(LoginAttempt.at).where(condition, LoginAttempt.succeeded.is_(False), LoginAttempt.throttled.is_(False),
                                          LoginAttempt.at >= start)
            .order_by(LoginAttempt.at.desc()).limit(limit)))
        if len(failures) >= limit:
            wait = max(wait, _minutes_until(failures[-1], now))
    return wait


def authenticate(login: str, password: str, client_addr: str | None) -> LoginResult:
    """Check a login and record the attempt and an audit event.

    Commits the attempt before the password check (see the module docstring); the
    caller commits the outcome.
    """
    global _DUMMY_HASH
    login = (login or "").strip().lower()[:64]
    actor = Actor(None, login or "anonymous", client_addr)

    # 1. count the attempt first, one attempt per login at a time
    lock_name(db.session, LOCK_CLASS_LOGIN, login)
    wait = throttled(login, client_addr)
    if wait:
        # one audit event per lock, not one per hammered request
        already = db.session.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.login == login, LoginAttempt.throttled.is_(True), LoginAttempt.at >= clock.now() - _window()))
        if not already:
            audit.record("login.throttled", "user", None, after={"login": login}, actor=actor)
    attempt = LoginAttempt(login=login, client_addr=client_addr, at=clock.now(), succeeded=False,
                           throttled=bool(wait))
    db.session.add(attempt)
    if wait:
        return LoginResult(None, throttled=True, retry_after_minutes=wait)
    db.session.commit()

    # 2. the slow part, holding no write lock
    with read_only(db.session):
        user = users.find_by_login(login)
        stored = (user.id, user.password_hash, bool(user.active)) if user else None
    if stored is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = users.hash_password(users.generate_password())
        check_password_hash(_DUMMY_HASH, password or "")
        password_ok = False
    else:
        password_ok = check_password_hash(stored[1], password or "")
    ok = password_ok and stored[2]

    # 3. the outcome
    attempt = db.session.get(LoginAttempt, attempt.id)
    if ok:
        user = db.session.get(User, stored[0])
        attempt.succeeded = True
        audit.record("login", "user", user.id, subject_id=user.id, actor=Actor(user.id, user.login, client_addr))
        return LoginResult(user)
    audit.record("login.failed", "user", stored[0] if stored else None, subject_id=stored[0] if stored else None,
                 after={"login": login, "reason": "inactive" if stored and password_ok else "credentials"},
                 actor=actor)
    return LoginResult(None)

"""People: create, recruit, move, deactivate, passwords and the four-eyes role grants.

Every function checks the acting user's rights, writes an audit event and only
flushes; the caller commits. ``actor=None`` is the operator (CLI, seed) with
full scope.
"""
from __future__ import annotations

import re
import secrets

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from crm import clock, signals
from crm.audit import services as audit
from crm.errors import DomainError, Forbidden
from crm.extensions import db
from crm.i18n import ROLE_NAMES
from crm.users import scope
from crm.users.models import (
    ADMIN, AGENT, FINANCE, GRANT_CONFIRMED, GRANT_PENDING, GRANT_REJECTED, MANAGER_ROLE,
    PRIVILEGED_ROLES, ROLES, SALES_HEAD, SUPERVISOR, RoleGrant, User, new_session_token,
)

LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8
LOCALES = ("ru", "uk", "en")
#: A temporary password of a role grant is two halves of this length, held by two people.
HALF = 6


# --- passwords ---------------------------------------------------------------------


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def generate_password() -> str:
    """A temporary password an agent can type on a phone: 12 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def validate_new_password(password: str, *, field: str = "password") -> None:
    if len(password or "") < MIN_PASSWORD:
        raise DomainError("weak_password", _l("The password must have at least %(n)d characters.", n=MIN_PASSWORD),
                          {field: _l("At least %(n)d characters.", n=MIN_PASSWORD)})


# --- helpers -----------------------------------------------------------------------


def find_by_login(login: str) -> User | None:
    return db.session.execute(select(User).where(User.login == (login or "").strip().lower())).scalar_one_or_none()


def _is_operator(actor: User | None) -> bool:
    return actor is None


def _check_manager(role: str, manager: User | None) -> None:
    wanted = MANAGER_ROLE.get(role)
    if manager is None:
        return
    if wanted is None:
        raise DomainError("manager_not_allowed", _l("This role has no manager."), {"manager": _l("Leave empty for this role.")})
    if manager.role != wanted or not manager.active:
        role_name = ROLE_NAMES[wanted]
        raise DomainError("manager_role", _l("The manager of this role must be an active %(role)s.", role=role_name),
                          {"manager": _l("Choose an active %(role)s.", role=role_name)})


def _may_create(actor: User | None, role: str, manager: User | None) -> bool:
    if _is_operator(actor) or actor.role == ADMIN:
        return True
    if role in PRIVILEGED_ROLES:
        return actor.role in PRIVILEGED_ROLES  # they may propose; someone else confirms
    if actor.role == SUPERVISOR:
        return role == AGENT and manager is not None and manager.id == actor.id
    if actor.role == SALES_HEAD:
        if role == SUPERVISOR:
            return manager is not None and manager.id == actor.id
        if role == AGENT:
            return manager is not None and scope.is_below(actor.id, manager.id)
    return False


def may_manage(actor: User | None, target: User) -> bool:
    """Deactivate, reactivate, reset the password of, or edit ``target``."""
    if _is_operator(actor):
        return True
    if actor.id == target.id:
        return False
    if actor.role == ADMIN:
        return True
    if actor.role == SUPERVISOR:
        return target.role == AGENT and target.manager_id == actor.id
    if actor.role == SALES_HEAD:
        return scope.is_below(actor.id, target.id)
    return False


# --- creating and changing users ----------------------------------------------------


def create_user(actor: User | None, *, login: str, name: str, role: str, manager: User | None = None,
                personnel_number: str | None = None, password: str | None = None,
                must_change_password: bool = True) -> tuple[User, RoleGrant | None]:
    """Create a user. A finance or sales_head user created by a person (not the operator)
    stays inactive until a second person confirms the role grant."""
    login = (login or "").strip().lower()
    name = (name or "").strip()
    personnel_number = (personnel_number or "").strip() or None
    if not LOGIN_RE.match(login):
        raise DomainError("bad_login", _l("A login is 2–64 lowercase letters, digits, dots, dashes or underscores."),
                          {"login": _l("Use lowercase letters, digits, '.', '-' or '_'.")})
    if role not in ROLES:
        raise DomainError("bad_role", _l("Unknown role."), {"role": _l("Unknown role.")})
    if not name:
        raise DomainError("name_required", _l("A name is required."), {"name": _l("Required.")})
    if find_by_login(login):
        raise DomainError("login_taken", _l("The login %(login)s is already taken.", login=login),
                          {"login": _l("Already taken.")})
    if personnel_number and db.session.scalar(select(func.count()).where(User.personnel_number == personnel_number)):
        raise DomainError("personnel_number_taken", _l("Personnel number %(n)s belongs to someone else.", n=personnel_number),
                          {"personnel_number": _l("Already used.")})
    _check_manager(role, manager)
    if not _may_create(actor, role, manager):
        raise Forbidden("forbidden", _l("You may not create this user."))
    if password is None:
        password = generate_password()
    elif not password:
        raise DomainError("password_required", _l("A password is required."), {"password": _l("Required.")})

    needs_grant = role in PRIVILEGED_ROLES and not _is_operator(actor)
    if needs_grant:
        password = secrets.token_urlsafe(32)  # unusable: the real one is handed over in two halves
    now = clock.now()
    user = User(login=login, name=name, role=AGENT if needs_grant else role, manager=manager,
                personnel_number=personnel_number, password_hash=hash_password(password),
                must_change_password=must_change_password, active=not needs_grant,
                created_at=now, session_token=new_session_token())
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", "user", user.id, after=user.snapshot(), subject_id=user.id)
    grant = None
    if needs_grant:
        grant = _propose(actor, user, role, activates_user=True)
    return user, grant


def may_edit_profile(actor: User | None, target: User) -> bool:
    return may_manage(actor, target) or may_set_personnel_number(actor)


def may_set_personnel_number(actor: User | None) -> bool:
    """Payroll pays by personnel number: once a user exists, only finance changes it."""
    return _is_operator(actor) or (actor.role == FINANCE and actor.active)


def update_profile(actor: User | None, target: User, *, name: str, personnel_number: str | None) -> None:
    name = (name or "").strip()
    personnel_number = (personnel_number or "").strip() or None
    if name != target.name and not may_manage(actor, target):
        raise Forbidden("forbidden", _l("You may not change this user."))
    if personnel_number != target.personnel_number and not may_set_personnel_number(actor):
        raise Forbidden("forbidden", _l("Only finance changes a personnel number."))
    if not name:
        raise DomainError("name_required", _l("A name is required."), {"name": _l("Required.")})
    if personnel_number and db.session.scalar(select(func.count()).where(
            User.personnel_number == personnel_number, User.id != target.id)):
        raise DomainError("personnel_number_taken", _l("Personnel number %(n)s belongs to someone else.", n=personnel_number),
                          {"personnel_number": _l("Already used.")})
    before = target.snapshot()
    target.name, target.personnel_number = name, personnel_number
    if before != target.snapshot():
        db.session.flush()
        audit.record("user.update", "user", target.id, before=before, after=target.snapshot(), subject_id=target.id)


def change_role(actor: User | None, target: User, role: str, manager: User | None = None) -> RoleGrant | None:
    """Change a role. finance and sales_head need a second person: a grant is proposed."""
    if role not in ROLES:
        raise DomainError("bad_role", _l("Unknown role."), {"role": _l("Unknown role.")})
    if role == target.role:
        return None
    if role in PRIVILEGED_ROLES and not _is_operator(actor):
        if actor.role not in (ADMIN, FINANCE, SALES_HEAD) or actor.id == target.id:
            raise Forbidden("forbidden", _l("You may not propose this role."))
        return _propose(actor, target, role, activates_user=False)
    if not (_is_operator(actor) or (actor.role == ADMIN and actor.id != target.id)):
        raise Forbidden("forbidden", _l("Only an administrator changes roles."))
    _apply_role(target, role, manager)
    return None


def _apply_role(target: User, role: str, manager: User | None) -> None:
    if target.reports and MANAGER_ROLE.get(target.reports[0].role) != role:
        raise DomainError("has_reports", _l("%(login)s still manages people; move them first.", login=target.login))
    if MANAGER_ROLE.get(role) is None:
        manager = None
    _check_manager(role, manager)
    before = target.snapshot()
    old_role, old_manager_id = target.role, target.manager_id
    target.role, target.manager = role, manager
    target.session_token = new_session_token()
    db.session.flush()
    audit.record("user.role", "user", target.id, before=before, after=target.snapshot(), subject_id=target.id)
    if old_role == AGENT:
        signals.agent_released.send(target, supervisor_id=old_manager_id, reason="role_changed")


def _propose(actor: User, target: User, role: str, *, activates_user: bool) -> RoleGrant:
    pending = db.session.execute(select(RoleGrant).where(
        RoleGrant.user_id == target.id, RoleGrant.status == GRANT_PENDING)).scalar_one_or_none()
    if pending:
        raise DomainError("grant_pending", _l("A role change for %(login)s is already waiting for confirmation.",
                                              login=target.login))
    grant = RoleGrant(user=target, role=role, activates_user=activates_user, proposed_by=actor,
                      proposed_at=clock.now(), status=GRANT_PENDING, handover_part=generate_password()[:HALF])
    db.session.add(grant)
    db.session.flush()
    audit.record("role_grant.propose", "role_grant", grant.id, subject_id=target.id,
                 after={"user": target.login, "role": role, "proposed_by": actor.login})
    return grant


def may_see_grant(actor: User, grant: RoleGrant) -> bool:
    """Admins and finance see every grant; a sales head those of people in the region."""
    if actor.role in (ADMIN, FINANCE):
        return True
    if actor.role == SALES_HEAD:
        return grant.user_id == actor.id or scope.is_below(actor.id, grant.user_id)
    return False


def may_decide(actor: User, grant: RoleGrant) -> bool:
    """A different finance or sales_head user than the proposer and the grantee (a sales
    head only inside their region)."""
    return (actor.active and actor.role in PRIVILEGED_ROLES and grant.status == GRANT_PENDING
            and actor.id != grant.proposed_by_id and actor.id != grant.user_id and may_see_grant(actor, grant))


def decide_grant(actor: User, grant: RoleGrant, *, confirm: bool, reason: str | None = None) -> str | None:
    """Confirm or reject. On confirmation the grantee's password is replaced by a temporary one
    whose first half the proposer holds and whose second half (returned) only the confirmer
    sees: no single person can sign in to the new finance or sales head account."""
    if not may_decide(actor, grant):
        raise Forbidden("four_eyes", _l("A different finance or sales head user than the proposer must decide."))
    reason = (reason or "").strip() or None
    if not confirm and not reason:
        raise DomainError("reason_required", _l("Give a reason for the rejection."), {"reason": _l("Required.")})
    target = grant.user
    before = target.snapshot()
    grant.status = GRANT_CONFIRMED if confirm else GRANT_REJECTED
    grant.decided_by, grant.decided_at, grant.reason = actor, clock.now(), reason
    second_half = None
    old_role, old_manager_id = target.role, target.manager_id
    if confirm:
        if target.reports:
            raise DomainError("has_reports", _l("%(login)s still manages people; move them first.", login=target.login))
        second_half = generate_password()[:HALF]
        target.role, target.manager = grant.role, None
        target.password_hash = hash_password(grant.handover_part + second_half)
        target.must_change_password = True
        if grant.activates_user:
            target.active = True
        target.session_token = new_session_token()
    grant.handover_part = None
    db.session.flush()
    audit.record("role_grant.confirm" if confirm else "role_grant.reject", "role_grant", grant.id,
                 subject_id=target.id, before=before, after={**target.snapshot(), "reason": reason})
    if confirm and old_role == AGENT and not grant.activates_user:
        signals.agent_released.send(target, supervisor_id=old_manager_id, reason="role_changed")
    return second_half


def pending_grants(actor: User | None = None) -> list[RoleGrant]:
    grants = db.session.scalars(select(RoleGrant).where(RoleGrant.status == GRANT_PENDING).order_by(RoleGrant.id))
    return [g for g in grants if actor is None or may_see_grant(actor, g)]


def deactivate(actor: User | None, target: User) -> None:
    if not may_manage(actor, target):
        raise Forbidden("forbidden", _l("You may not deactivate this user."))
    if not target.active:
        return
    if target.reports and any(r.active for r in target.reports):
        raise DomainError("has_reports", _l("%(login)s still manages active people; move them first.",
                                            login=target.login))
    before = target.snapshot()
    supervisor_id = target.manager_id
    target.active = False
    target.deactivated_at = clock.now()
    target.session_token = new_session_token()
    db.session.flush()
    audit.record("user.deactivate", "user", target.id, before=before, after=target.snapshot(), subject_id=target.id)
    signals.user_deactivated.send(target, supervisor_id=supervisor_id)
    if target.role == AGENT:
        signals.agent_released.send(target, supervisor_id=supervisor_id, reason="deactivated")


def reactivate(actor: User | None, target: User) -> None:
    """Bringing back a finance or sales head account gives money access back: that takes a
    different finance or sales head user, never an admin alone."""
    if not may_manage(actor, target):
        raise Forbidden("forbidden", _l("You may not reactivate this user."))
    if target.role in PRIVILEGED_ROLES and not _is_operator(actor) and actor.role not in PRIVILEGED_ROLES:
        raise Forbidden("four_eyes", _l("Only a different finance or sales head user reactivates this account."))
    if target.active:
        return
    if db.session.scalar(select(func.count()).where(RoleGrant.user_id == target.id, RoleGrant.status == GRANT_PENDING,
                                                    RoleGrant.activates_user.is_(True))):
        raise DomainError("grant_pending", _l("This user waits for a role confirmation."))
    before = target.snapshot()
    target.active = True
    target.deactivated_at = None
    db.session.flush()
    audit.record("user.reactivate", "user", target.id, before=before, after=target.snapshot(), subject_id=target.id)


def move_candidates(actor: User | None, agent: User) -> list[User]:
    """Supervisors ``actor`` may move ``agent`` to."""
    q = select(User).where(User.role == SUPERVISOR, User.active.is_(True), User.id != agent.manager_id)
    if actor is not None and actor.role == SUPERVISOR:
        q = q.where(User.manager_id == actor.manager_id) if actor.manager_id else q.where(User.id == -1)
    elif actor is not None and actor.role == SALES_HEAD:
        q = q.where(User.manager_id == actor.id)
    elif actor is not None and actor.role != ADMIN:
        return []
    return list(db.session.scalars(q.order_by(User.login)))


def move_agent(actor: User | None, agent: User, new_supervisor: User) -> None:
    """Hand an agent to another supervisor; their field work goes back to the old one."""
    if agent.role != AGENT:
        raise DomainError("not_agent", _l("Only agents are moved between supervisors."))
    if not may_manage(actor, agent) or new_supervisor.id not in {u.id for u in move_candidates(actor, agent)}:
        raise Forbidden("forbidden", _l("You may not move this agent there."))
    before = agent.snapshot()
    old_supervisor_id = agent.manager_id
    agent.manager = new_supervisor
    db.session.flush()
    audit.record("user.move", "user", agent.id, before=before, after=agent.snapshot(), subject_id=agent.id)
    signals.agent_moved.send(agent, old_supervisor_id=old_supervisor_id, new_supervisor_id=new_supervisor.id)
    signals.agent_released.send(agent, supervisor_id=old_supervisor_id, reason="moved")


def may_reset_password(actor: User | None, target: User) -> bool:
    """Managers and admins reset passwords of ordinary accounts. A finance or sales head
    account (or one waiting for such a role) is reset only by the operator (``flask crm
    reset-password``): whoever resets a password can sign in as that person, so one person
    in the app must never be able to do it."""
    if _is_operator(actor):
        return True
    if actor.id == target.id or target.role in PRIVILEGED_ROLES or _has_pending_grant(target):
        return False
    return may_manage(actor, target) or actor.role == ADMIN


def _has_pending_grant(target: User) -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(RoleGrant).where(
        RoleGrant.user_id == target.id, RoleGrant.status == GRANT_PENDING)))


def issue_temporary_password(actor: User | None, target: User) -> str:
    """A new password the user must change at next login; signs them out everywhere."""
    if not may_reset_password(actor, target):
        raise Forbidden("forbidden", _l("You may not reset this password."))
    password = generate_password()
    set_temporary_password(actor, target, password)
    return password


def set_temporary_password(actor: User | None, target: User, password: str) -> None:
    if not may_reset_password(actor, target):
        raise Forbidden("forbidden", _l("You may not reset this password."))
    target.password_hash = hash_password(password)
    target.must_change_password = True
    target.session_token = new_session_token()
    db.session.flush()
    audit.record("user.temporary_password", "user", target.id, subject_id=target.id,
                 after={"must_change_password": True})


def change_own_password(user: User, current: str, new: str) -> None:
    if not check_password(user, current or ""):
        raise DomainError("wrong_password", _l("The current password is wrong."),
                          {"current_password": _l("Wrong password.")})
    validate_new_password(new, field="new_password")
    if new == current:
        raise DomainError("same_password", _l("Choose a password different from the current one."),
                          {"new_password": _l("Must differ from the current one.")})
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.session_token = new_session_token()
    db.session.flush()
    audit.record("user.password_change", "user", user.id, subject_id=user.id, after={"must_change_password": False})


def set_locale(user: User, locale: str) -> None:
    if locale not in LOCALES:
        raise DomainError("bad_locale", _l("Unknown language."), {"locale": _l("Unknown language.")})
    if user.locale == locale:
        return
    before = {"locale": user.locale}
    user.locale = locale
    db.session.flush()
    audit.record("user.locale", "user", user.id, before=before, after={"locale": locale}, subject_id=user.id)

"""User pages: thin views over ``crm.users.services``; scope is checked before anything else."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from crm.errors import DomainError
from crm.extensions import db
from crm.forms import choices, refuse_and_redirect, refuse_into_form
from crm.i18n import ROLE_NAMES
from crm.users import scope, services
from crm.users.forms import ActionForm, CreateUserForm, EditUserForm, MoveForm, RejectForm, RoleForm
from crm.users.models import (
    ADMIN, AGENT, FINANCE, MANAGER_ROLE, PRIVILEGED_ROLES, ROLES, SALES_HEAD, SUPERVISOR, RoleGrant, User,
)

bp = Blueprint("users", __name__, url_prefix="/users")
PAGE_SIZE = 50


def _target_or_404(user_id: int) -> User:
    user = scope.get_in_scope(current_user, user_id)
    if user is None:
        abort(404)
    return user


def _creatable_roles() -> list[str]:
    role = current_user.role
    if role == ADMIN:
        return list(ROLES)
    if role == SALES_HEAD:
        return [AGENT, SUPERVISOR, SALES_HEAD, FINANCE]
    if role == FINANCE:
        return [FINANCE, SALES_HEAD]
    if role == SUPERVISOR:
        return [AGENT]
    return []


def _manager_choices():
    """Active supervisors and sales heads the current user may put a new user under."""
    q = select(User).where(User.role.in_((SUPERVISOR, SALES_HEAD)), User.active.is_(True))
    if current_user.role == SUPERVISOR:
        q = q.where(User.id == current_user.id)
    elif current_user.role == SALES_HEAD:
        q = q.where(scope.user_filter(current_user, User.id))
    elif current_user.role != ADMIN:
        q = q.where(User.id == -1)
    rows = db.session.scalars(q.order_by(User.role, User.login))
    return choices([(0, _("— none —"))] + [(u.id, f"{u.login} · {u.name} ({ROLE_NAMES[u.role]})") for u in rows])


@bp.route("")
@login_required
def index():
    if current_user.role == AGENT:
        return redirect(url_for("users.show", user_id=current_user.id))
    q = select(User).where(scope.user_filter(current_user, User.id))
    term = (request.args.get("q") or "").strip()
    if term:
        like = f"%{term.lower()}%"
        q = q.where(or_(User.login.like(like), User.name.ilike(f"%{term}%"), User.personnel_number.like(f"%{term}%")))
    role = request.args.get("role")
    if role in ROLES:
        q = q.where(User.role == role)
    state = request.args.get("state", "active")
    if state == "active":
        q = q.where(User.active.is_(True))
    elif state == "inactive":
        q = q.where(User.active.is_(False))
    page = max(1, request.args.get("page", 1, type=int))
    rows = list(db.session.scalars(q.order_by(User.login).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return render_template("users/index.html", users=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page,
                           term=term, role=role, state=state, roles=ROLES, can_create=bool(_creatable_roles()))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def create():
    roles = _creatable_roles()
    if not roles:
        abort(403)
    form = CreateUserForm()
    form.role.choices = choices((r, ROLE_NAMES[r]) for r in roles)
    form.manager_id.choices = _manager_choices()
    if request.method == "GET" and current_user.role == SUPERVISOR:
        form.manager_id.data = current_user.id
    if form.validate_on_submit():
        manager = db.session.get(User, form.manager_id.data) if form.manager_id.data else None
        # a temporary password, shown once on the next page and never stored in clear
        password = services.generate_password()
        try:
            user, grant = services.create_user(current_user, login=form.login.data, name=form.name.data,
                                               role=form.role.data, manager=manager,
                                               personnel_number=form.personnel_number.data,
                                               password=password, must_change_password=True)
        except DomainError as exc:
            refuse_into_form(form, exc)
        else:
            db.session.commit()
            if grant:
                return render_template("users/handover.html", grant=grant, half=grant.handover_part, first=True)
            return render_template("users/password_issued.html", user=user, password=password)
    return render_template("users/new.html", form=form), (422 if form.errors else 200)


@bp.route("/<int:user_id>")
@login_required
def show(user_id: int):
    user = _target_or_404(user_id)
    grants = list(db.session.scalars(select(RoleGrant).where(RoleGrant.user_id == user.id).order_by(RoleGrant.id.desc())))
    move_form = None
    if user.role == AGENT and services.may_manage(current_user, user):
        move_form = MoveForm()
        move_form.supervisor_id.choices = choices((s.id, f"{s.login} · {s.name}")
                                                   for s in services.move_candidates(current_user, user))
    role_form = None
    if current_user.role in (ADMIN, FINANCE, SALES_HEAD) and current_user.id != user.id:
        role_form = RoleForm()
        allowed = list(ROLES) if current_user.role == ADMIN else sorted(PRIVILEGED_ROLES)
        role_form.role.choices = choices((r, ROLE_NAMES[r]) for r in allowed if r != user.role)
        role_form.manager_id.choices = _manager_choices()
    edit_form = EditUserForm(obj=user) if services.may_edit_profile(current_user, user) else None
    return render_template("users/show.html", user=user, grants=grants, action=ActionForm(), move_form=move_form,
                           role_form=role_form, edit_form=edit_form, may_manage=services.may_manage(current_user, user),
                           may_reset=services.may_reset_password(current_user, user),
                           manager_role=MANAGER_ROLE)


def _act(user_id: int, fn, ok_message: str):
    user = _target_or_404(user_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        fn(user)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.show", user_id=user.id))
    db.session.commit()
    flash(ok_message, "success")
    return redirect(url_for("users.show", user_id=user.id))


@bp.route("/<int:user_id>/edit", methods=["POST"])
@login_required
def edit(user_id: int):
    user = _target_or_404(user_id)
    if not services.may_edit_profile(current_user, user):
        abort(403)  # rights before the form: a refused user learns nothing from validation
    form = EditUserForm()
    if not form.validate_on_submit():
        flash(_("Check the highlighted fields."), "error")
        return redirect(url_for("users.show", user_id=user.id))
    try:
        services.update_profile(current_user, user, name=form.name.data, personnel_number=form.personnel_number.data)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.show", user_id=user.id))
    db.session.commit()
    flash(_("Saved."), "success")
    return redirect(url_for("users.show", user_id=user.id))


@bp.route("/<int:user_id>/deactivate", methods=["POST"])
@login_required
def deactivate(user_id: int):
    return _act(user_id, lambda u: services.deactivate(current_user, u), _("The user is deactivated."))


@bp.route("/<int:user_id>/reactivate", methods=["POST"])
@login_required
def reactivate(user_id: int):
    return _act(user_id, lambda u: services.reactivate(current_user, u), _("The user is active again."))


@bp.route("/<int:user_id>/temporary-password", methods=["POST"])
@login_required
def temporary_password(user_id: int):
    user = _target_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        password = services.issue_temporary_password(current_user, user)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.show", user_id=user.id))
    db.session.commit()
    return render_template("users/password_issued.html", user=user, password=password)


@bp.route("/<int:user_id>/move", methods=["POST"])
@login_required
def move(user_id: int):
    user = _target_or_404(user_id)
    candidates = services.move_candidates(current_user, user) if services.may_manage(current_user, user) else []
    if not candidates:
        abort(403)
    form = MoveForm()
    form.supervisor_id.choices = choices((s.id, s.login) for s in candidates)
    if not form.validate_on_submit():
        flash(_("Choose a supervisor you may hand this agent to."), "error")
        return redirect(url_for("users.show", user_id=user.id))
    target = db.session.get(User, form.supervisor_id.data)
    try:
        services.move_agent(current_user, user, target)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.show", user_id=user.id))
    db.session.commit()
    flash(_("%(login)s now works for %(sup)s.", login=user.login, sup=target.login), "success")
    return redirect(url_for("users.show", user_id=user.id))


@bp.route("/<int:user_id>/role", methods=["POST"])
@login_required
def role(user_id: int):
    user = _target_or_404(user_id)
    if current_user.role not in (ADMIN, FINANCE, SALES_HEAD) or current_user.id == user.id:
        abort(403)  # admins change roles; finance and sales heads propose the privileged ones
    form = RoleForm()
    form.role.choices = choices((r, r) for r in ROLES)
    form.manager_id.choices = _manager_choices()
    if not form.validate_on_submit():
        flash(_("Check the highlighted fields."), "error")
        return redirect(url_for("users.show", user_id=user.id))
    manager = db.session.get(User, form.manager_id.data) if form.manager_id.data else None
    try:
        grant = services.change_role(current_user, user, form.role.data, manager)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.show", user_id=user.id))
    db.session.commit()
    if grant:
        return render_template("users/handover.html", grant=grant, half=grant.handover_part, first=True)
    else:
        flash(_("The role is changed."), "success")
    return redirect(url_for("users.show", user_id=user.id))


@bp.route("/grants")
@login_required
def grants():
    if current_user.role not in (ADMIN, FINANCE, SALES_HEAD):
        abort(403)
    pending = services.pending_grants(current_user)
    decided = [g for g in db.session.scalars(select(RoleGrant).where(RoleGrant.status != "pending")
                                             .order_by(RoleGrant.decided_at.desc()).limit(200))
               if services.may_see_grant(current_user, g)][:50]
    return render_template("users/grants.html", pending=pending, decided=decided, action=ActionForm(),
                           reject_form=RejectForm(), may_decide=lambda g: services.may_decide(current_user, g))


def _decide(grant_id: int, confirm: bool):
    if current_user.role not in (ADMIN, FINANCE, SALES_HEAD):
        abort(403)
    grant = db.session.get(RoleGrant, grant_id)
    if grant is None or not services.may_see_grant(current_user, grant):
        abort(404)
    if not services.may_decide(current_user, grant):
        abort(403)
    form = ActionForm() if confirm else RejectForm()
    if not form.validate_on_submit():
        flash(_("Give a reason."), "error")
        return redirect(url_for("users.grants"))
    try:
        second_half = services.decide_grant(current_user, grant, confirm=confirm,
                                            reason=None if confirm else form.reason.data)
    except DomainError as exc:
        return refuse_and_redirect(exc, url_for("users.grants"))
    db.session.commit()
    if confirm:
        return render_template("users/handover.html", grant=grant, half=second_half, first=False)
    flash(_("Rejected."), "success")
    return redirect(url_for("users.grants"))


@bp.route("/grants/<int:grant_id>/confirm", methods=["POST"])
@login_required
def confirm_grant(grant_id: int):
    return _decide(grant_id, True)


@bp.route("/grants/<int:grant_id>/reject", methods=["POST"])
@login_required
def reject_grant(grant_id: int):
    return _decide(grant_id, False)

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import bindparam, select

from crm import clock
from crm.auth import services
from crm.auth.forms import ChangePasswordForm, LanguageForm, LoginForm
from crm.errors import DomainError
from crm.extensions import db, login_manager
from crm.inputs import MAX_ID
from crm.users import services as users
from crm.users.models import User, new_session_token

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in.")
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"


#: The signed-in user, on every request: one statement built once (``Session.get`` builds its
#: SELECT anew each time, a measurable share of a phone's sync request).
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _sep, token = (session_id or "").partition(":")
    if not user_id.isdigit() or int(user_id) > MAX_ID:
        return None
    user = db.session.execute(_USER_BY_ID, {"user_id": int(user_id)}).scalar_one_or_none()
    if user is None or not user.active or user.session_token != token:
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized():
    if request.path.startswith("/api/"):
        return jsonify(error={"code": "unauthorized", "message": _("Sign in or send an API key."), "fields": {}}), 401
    flash(_("Please sign in."), "info")
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def slide_session():
    """Keep a signed-in session alive for 30 days after the last day it was used: the cookie is
    re-issued on the first request of each (UTC) day instead of on every response, which on the
    phone's sync is a signature and a Set-Cookie saved per request."""
    if session.permanent:
        day = clock.now().date().isoformat()
        if session.get("_day") != day:
            session["_day"] = day


def enforce_password_change():
    """A user with a temporary password can do nothing else until they change it."""
    if not current_user.is_authenticated or not current_user.must_change_password:
        return None
    if request.endpoint in ("auth.change_password", "auth.logout", "auth.language", "static"):
        return None
    if request.path.startswith("/api/"):
        return jsonify(error={"code": "password_change_required",
                              "message": _("Change your temporary password first."), "fields": {}}), 403
    return redirect(url_for("auth.change_password"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    lang = request.args.get("lang")
    if lang in ("ru", "uk", "en"):
        session["lang"] = lang
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        result = services.authenticate(form.login.data, form.password.data, request.remote_addr)
        db.session.commit()
        if result.user:
            lang = session.get("lang")
            session.clear()  # nothing planted before sign-in survives it
            if lang:
                session["lang"] = lang
            login_user(result.user)
            session.permanent = True
            if result.user.must_change_password:
                return redirect(url_for("auth.change_password"))
            return redirect(_safe_next(request.args.get("next")) or url_for("main.home"))
        if result.throttled:
            status = 429
            flash(_("Too many failed attempts. Try again in %(n)d min.", n=result.retry_after_minutes), "error")
        else:
            status = 401
            flash(_("Wrong login or password."), "error")
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        # a copied cookie must not outlive signing out: this signs the user out everywhere
        current_user.session_token = new_session_token()
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            users.change_own_password(current_user, form.current_password.data, form.new_password.data)
        except DomainError as exc:
            db.session.rollback()
            for name, message in exc.fields.items():
                getattr(form, name).errors.append(message)
            flash(exc.message, "error")
        else:
            db.session.commit()
            login_user(current_user._get_current_object())  # the session id changed with the password
            session.permanent = True
            flash(_("Your password is changed."), "success")
            return redirect(url_for("main.home"))
    return render_template("auth/password.html", form=form), (422 if form.errors else 200)


@bp.route("/account/language", methods=["POST"])
def language():
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.locale.data
        if current_user.is_authenticated:
            users.set_locale(current_user, form.locale.data)
            db.session.commit()
    else:
        flash(_("Unknown language."), "error")
    return redirect(_safe_next(request.form.get("next")) or url_for("main.home"))

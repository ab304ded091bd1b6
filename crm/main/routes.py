from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from crm.extensions import db
from crm.users import services as users
from crm.contracts.models import Contract
from crm.contracts.routes import scoped_contracts
from crm.users.models import AGENT, FINANCE, PRIVILEGED_ROLES, SALES_HEAD, RoleGrant, User

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("main.home"))


@bp.route("/home")
@login_required
def home():
    team = []
    if current_user.role not in (AGENT,):
        team = list(db.session.scalars(select(User).where(User.manager_id == current_user.id).order_by(User.login)))
    grants_to_decide = []
    if current_user.role in PRIVILEGED_ROLES:
        grants_to_decide = [g for g in users.pending_grants() if users.may_decide(current_user, g)]
    my_pending = db.session.scalar(select(func.count()).select_from(RoleGrant).where(
        RoleGrant.proposed_by_id == current_user.id, RoleGrant.status == "pending"))
    no_rate = 0
    if current_user.role in (SALES_HEAD, FINANCE):
        # contracts signed while no rate version was in force: only an approved adjustment pays them
        no_rate = db.session.scalar(select(func.count()).select_from(
            scoped_contracts(current_user).where(Contract.rate_version_id.is_(None)).subquery()))
    return render_template("main/home.html", team=team, grants_to_decide=grants_to_decide, my_pending=my_pending,
                           no_rate=no_rate)

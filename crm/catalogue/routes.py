from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.catalogue import services
from crm.catalogue.forms import TariffForm
from crm.errors import DomainError
from crm.forms import refuse_into_form
from crm.extensions import db
from crm.ledger.commission import parse_money
from crm.users.forms import ActionForm
from crm.users.models import ADMIN, SALES_HEAD

bp = Blueprint("catalogue", __name__, url_prefix="/catalogue")


@bp.route("", methods=["GET", "POST"])
@login_required
def index():
    if current_user.role == ADMIN or (request.method == "POST" and current_user.role != SALES_HEAD):
        abort(403)  # everyone sells from the catalogue; only the sales head changes it
    form = TariffForm() if current_user.role == SALES_HEAD else None
    if form is not None and form.validate_on_submit():
        try:
            try:
                fee = parse_money(form.monthly_fee.data)
            except ValueError:
                raise DomainError("bad_fee", _("The monthly fee is an amount like 590.00."),
                                  {"monthly_fee": _("An amount like 590.00.")})
            speed = form.speed_mbit.data.strip() if form.speed_mbit.data else ""
            if speed and not (speed.isascii() and speed.isdigit()):
                raise DomainError("bad_speed", _("Speed is a whole number."), {"speed_mbit": _("A whole number.")})
            services.add_tariff(current_user, code=form.code.data, name=form.name.data, kind=form.kind.data,
                                monthly_fee=fee, speed_mbit=int(speed) if speed else None,
                                is_addon=form.is_addon.data)
        except DomainError as exc:
            refuse_into_form(form, exc)
        else:
            db.session.commit()
            flash(_("Added to the catalogue."), "success")
            return redirect(url_for("catalogue.index"))
    status = 422 if form is not None and form.errors else 200
    return render_template("catalogue/index.html", tariffs=services.catalogue(), form=form, action=ActionForm()), status


@bp.route("/<code>/archive", methods=["POST"])
@login_required
def archive(code: str):
    if current_user.role != SALES_HEAD:
        abort(403)
    if not ActionForm().validate_on_submit():
        abort(400)
    services.archive_tariff(current_user, code)
    db.session.commit()
    flash(_("%(code)s is archived: no longer offered.", code=code), "success")
    return redirect(url_for("catalogue.index"))

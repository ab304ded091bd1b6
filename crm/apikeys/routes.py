from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.apikeys import services
from crm.apikeys.forms import CreateKeyForm
from crm.apikeys.models import ApiKey
from crm.errors import DomainError
from crm.extensions import db
from crm.forms import refuse_into_form
from crm.users.forms import ActionForm
from crm.users.models import ADMIN

bp = Blueprint("apikeys", __name__, url_prefix="/api-keys")


@bp.before_request
@login_required
def _admins_only():
    if current_user.role != ADMIN:
        abort(403)


@bp.route("", methods=["GET", "POST"])
def index():
    form = CreateKeyForm()
    if form.validate_on_submit():
        try:
            key, plain = services.create_key(current_user, form.name.data, form.scopes.data)
        except DomainError as exc:
            refuse_into_form(form, exc, {"scope": "scopes"})
        else:
            db.session.commit()
            return render_template("apikeys/created.html", key=key, plain=plain)
    return render_template("apikeys/index.html", form=form, keys=services.all_keys(),
                           action=ActionForm()), (422 if form.errors else 200)


@bp.route("/<int:key_id>/revoke", methods=["POST"])
def revoke(key_id: int):
    key = db.session.get(ApiKey, key_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        services.revoke_key(current_user, key.name)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("apikeys.index"))
    db.session.commit()
    flash(_("The key %(name)s is revoked.", name=key.name), "success")
    return redirect(url_for("apikeys.index"))

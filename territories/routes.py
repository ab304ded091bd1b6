"""Pages: the maps, territories and zones with their assignments, the building upload, the inbox."""
from __future__ import annotations

import json
import os

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from crm import clock
from crm.errors import DomainError
from crm.extensions import db
from crm.forms import choices, refuse_into_form
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from territories import importfile, importer, maps, services, stats
from territories.models import Building, Territory, Zone, ZoneAssignment

bp = Blueprint("territories", __name__)


@bp.app_context_processor
def _inbox_badge():
    def unread_notifications() -> int:
        return services.unread_count(current_user) if current_user.is_authenticated else 0

    return {"unread_notifications": unread_notifications}

MAP_ROLES = (AGENT, SUPERVISOR, SALES_HEAD, FINANCE)
DEFAULT_CENTRE = (56.8389, 60.6057)


def _roles(*roles) -> None:
    """Refuse (403) a signed-in user of another role; ``login_required`` already sent the others to sign in."""
    if current_user.role not in roles:
        abort(403)


def _centre(user) -> tuple[float, float]:
    """The middle of the polygons the user sees (the page then fits them), else of their buildings."""
    from territories import geometry
    from territories.api import building_scope

    query = services.visible_zones(user) if user.role == AGENT else services.visible_territories(user)
    polygons = db.session.scalars(query.where(Zone.retired_at.is_(None) if user.role == AGENT
                                              else Territory.retired_at.is_(None))).all()
    if polygons:
        boxes = [geometry.parse_polygon(p.geometry).bounds for p in polygons]
        return ((min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2,
                (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2)
    row = db.session.execute(select(func.avg(Building.lat), func.avg(Building.lon))
                             .where(building_scope(user))).first()
    return (row[0], row[1]) if row and row[0] is not None else DEFAULT_CENTRE


@bp.route("/map")
@login_required
def city_map():
    _roles(*MAP_ROLES)
    user = current_user
    editable = user.role in (SALES_HEAD, SUPERVISOR)
    shell = maps.build(current_app.config["TILE_URL"], current_app.config["TILE_ATTRIBUTION"],
                       centre=_centre(user), zoom=13 if user.role != AGENT else 15, editable=editable)
    queue = queue_total = idle_zones = None
    if user.role in (SALES_HEAD, FINANCE):
        queue, queue_total = services.head_queue(user, limit=50)
    elif user.role == SUPERVISOR:
        queue, queue_total, idle_zones = services.supervisor_queue(user, limit=50)
    territories = db.session.scalars(services.visible_territories(user).where(Territory.retired_at.is_(None))
                                     .order_by(Territory.name)).all()
    people = []
    if user.role == SALES_HEAD:
        people = db.session.scalars(select(User).where(User.manager_id == user.id, User.role == SUPERVISOR,
                                                       User.active).order_by(User.name)).all()
    elif user.role == SUPERVISOR:
        people = db.session.scalars(select(User).where(User.manager_id == user.id, User.role == AGENT,
                                                       User.active).order_by(User.name)).all()
    config = {"map": shell.map_name, "drawn": shell.drawn_name, "role": user.role, "editable": editable,
              "urls": {"polygons": url_for("api.map_polygons"), "buildings": url_for("api.map_buildings"),
                       "territories": url_for("api.save_territory"), "zones": url_for("api.save_zone"),
                       "building": url_for("api.map_building", building_id=0)[:-1]}}
    return render_template("territories/map.html", shell=shell, config=config, queue=queue,
                           queue_total=queue_total, idle_zones=idle_zones, territories=territories, people=people,
                           today=clock.today())


@bp.route("/territories")
@login_required
def index():
    _roles(SUPERVISOR, SALES_HEAD, FINANCE)
    territories = db.session.scalars(services.visible_territories(current_user).order_by(
        Territory.retired_at.is_not(None), Territory.name)).all()
    counts = dict(db.session.execute(select(Building.territory_id, func.count())
                                     .group_by(Building.territory_id)).all())
    zone_counts = dict(db.session.execute(select(Zone.territory_id, func.count()).where(Zone.retired_at.is_(None))
                                          .group_by(Zone.territory_id)).all())
    unzoned = dict(db.session.execute(select(Building.territory_id, func.count()).where(Building.zone_id.is_(None))
                                      .group_by(Building.territory_id)).all())
    return render_template("territories/index.html", territories=territories, counts=counts,
                           zone_counts=zone_counts, unzoned=unzoned)


class AssignForm(FlaskForm):
    agent_id = SelectField(_l("Agent"), coerce=int)
    valid_from = DateField(_l("From"), validators=[Optional()])
    valid_to = DateField(_l("To (inclusive; empty = open)"), validators=[Optional()])


class SupervisorForm(FlaskForm):
    supervisor_id = SelectField(_l("Supervisor"), coerce=int)


@bp.route("/territories/<int:territory_id>", methods=["GET", "POST"])
@login_required
def show(territory_id: int):
    _roles(SUPERVISOR, SALES_HEAD, FINANCE)
    territory = services.get_territory(current_user, territory_id)
    sup_form = None
    if services.may_edit_territory(current_user, territory) and territory.active:
        sup_form = SupervisorForm(prefix="sup")
        region = db.session.get(User, territory.region_id)
        sup_form.supervisor_id.choices = choices(
            [(0, _("— nobody —"))] + [(u.id, u.name) for u in db.session.scalars(
                select(User).where(User.manager_id == region.id, User.role == SUPERVISOR, User.active)
                .order_by(User.name))])
        if request.method == "GET":
            sup_form.supervisor_id.data = territory.supervisor_id or 0
    if request.method == "POST" and sup_form is None:
        abort(403)  # only who may hand the territory over posts here
        if request.method == "POST" and "sup-supervisor_id" in request.form and sup_form.validate_on_submit():
            supervisor = db.session.get(User, sup_form.supervisor_id.data) if sup_form.supervisor_id.data else None
            try:
                services.save_territory(current_user, name=territory.name, geometry_json=territory.geometry,
                                        supervisor=supervisor, territory=territory)
            except DomainError as exc:
                refuse_into_form(sup_form, exc)
            else:
                db.session.commit()
                flash(_("Territory %(name)s saved.", name=territory.name), "success")
                return redirect(url_for(".show", territory_id=territory.id))
    zones = db.session.scalars(select(Zone).where(Zone.territory_id == territory.id)
                               .order_by(Zone.retired_at.is_not(None), Zone.name)).all()
    agents = services.current_agents([z.id for z in zones])
    figures = stats.zone_figures([z.id for z in zones])
    history = {}
    for assignment in db.session.scalars(select(ZoneAssignment).where(ZoneAssignment.zone_id.in_([z.id for z in zones]))
                                         .order_by(ZoneAssignment.valid_from.desc(), ZoneAssignment.id.desc())):
        history.setdefault(assignment.zone_id, []).append(assignment)
    may_edit = services.may_edit_zones_of(current_user, territory) and current_user.role != FINANCE \
        and territory.active
    assign_form = None
    if may_edit:
        assign_form = AssignForm(prefix="assign")
        assign_form.agent_id.choices = choices([(u.id, u.name) for u in db.session.scalars(
            select(User).where(User.manager_id == territory.supervisor_id, User.role == AGENT, User.active)
            .order_by(User.name))])
    queue = db.session.scalars(select(Building).where(Building.territory_id == territory.id,
                                                      Building.zone_id.is_(None)).order_by(Building.address)
                               .limit(100)).all()
    return render_template("territories/show.html", territory=territory, zones=zones, agents=agents,
                           figures=figures, history=history, assign_form=assign_form, sup_form=sup_form,
                           queue=queue, today=clock.today())


@bp.route("/zones/<int:zone_id>/assign", methods=["POST"])
@login_required
def assign(zone_id: int):
    _roles(SUPERVISOR, SALES_HEAD)
    zone = services.get_zone(current_user, zone_id)
    form = AssignForm(prefix="assign")
    form.agent_id.choices = choices([(u.id, u.name) for u in db.session.scalars(
        select(User).where(User.manager_id == zone.territory.supervisor_id, User.role == AGENT, User.active))])
    if form.validate_on_submit():
        try:
            services.assign_zone(current_user, zone, db.session.get(User, form.agent_id.data),
                                 valid_from=form.valid_from.data, valid_to=form.valid_to.data)
        except DomainError as exc:
            refuse_into_form(form, exc)
        else:
            db.session.commit()
            flash(_("Zone %(name)s assigned.", name=zone.name), "success")
    else:
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
    return redirect(url_for(".show", territory_id=zone.territory_id))


@bp.route("/zones/<int:zone_id>/release", methods=["POST"])
@login_required
def release(zone_id: int):
    _roles(SUPERVISOR, SALES_HEAD)
    zone = services.get_zone(current_user, zone_id)
    if not services.may_edit_zones_of(current_user, zone.territory):
        abort(403)
    FlaskForm().validate_on_submit() or abort(400)
    services.end_assignments(zone_id=zone.id, reason="released")
    db.session.commit()
    flash(_("Zone %(name)s is back in your queue.", name=zone.name), "success")
    return redirect(url_for(".show", territory_id=zone.territory_id))


class UploadForm(FlaskForm):
    file = FileField(_l("GeoJSON or CSV file"), validators=[FileRequired(_l("Choose a file."))])


@bp.route("/buildings/import", methods=["GET", "POST"])
@login_required
def upload():
    _roles(SALES_HEAD)
    form = UploadForm()
    result = None
    if form.validate_on_submit():
        storage = form.file.data
        name = os.path.basename(storage.filename or "upload")
        try:
            records, rejections = importfile.parse_buildings(storage.read(), name, tz=clock.company_zone())
        except importfile.FileUnreadable as exc:
            form.file.errors = [_("The file cannot be read: %(reason)s", reason=str(exc))]
        else:
            result = importer.import_buildings(records, rejections, source=f"upload:{name}")
            db.session.commit()
            flash(_("Imported %(i)d, updated %(u)d, unchanged %(n)d, rejected %(r)d.", i=result.imported,
                    u=result.updated, n=result.unchanged, r=len(result.rejected)),
                  "success" if not result.rejected else "warning")
    reasons = []
    if result is not None:
        from flask_babel import get_translations

        raw = get_translations().ugettext
        reasons = [(r, r.localized(raw)) for r in result.rejected]
    return render_template("territories/upload.html", form=form, result=result, reasons=reasons)


@bp.route("/inbox", methods=["GET", "POST"])
@login_required
def inbox():
    if request.method == "POST":
        FlaskForm().validate_on_submit() or abort(400)
        services.mark_read(current_user)
        db.session.commit()
        return redirect(url_for(".inbox"))
    notes = services.inbox(current_user)
    return render_template("territories/inbox.html", notes=[(n, json.loads(n.params)) for n in notes],
                           form=FlaskForm())

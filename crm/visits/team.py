"""The supervisor's team day: the funnel per agent, the flagged visits on a map, the locked doors.

A supervisor sees their own team; a sales head sees the teams of the region's supervisors
and may pick one (``?supervisor=<id>``); everybody else gets 403. Every request checks it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField

from crm import clock
from crm.errors import DomainError
from crm.extensions import db
from crm.forms import refuse_into_form
from crm.users import scope
from crm.users.models import SALES_HEAD, SUPERVISOR, User
from crm.visits import reports, services
from territories import maps
from territories.models import Building, Territory

bp = Blueprint("team", __name__, url_prefix="/team")

#: the days a page can show (keeps the day arithmetic and the zone conversion in range)
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)

@dataclass
class Team:
    """Whose work the page shows: ``supervisor_ids``; for a sales head the picker and the choice."""

    supervisor_ids: list[int]
    territory_ids: object  # a SELECT of the territories whose doors the viewer may unlock
    supervisors: list[User]
    chosen: User | None

    @property
    def args(self) -> dict:
        """The query arguments that keep the choice across the team pages."""
        return {"supervisor": self.chosen.id} if self.chosen and self.supervisors else {}


def _team() -> Team:
    user = current_user
    if user.role == SUPERVISOR:
        return Team([user.id], reports.team_territory_ids([user.id]), [], user)
    if user.role != SALES_HEAD:
        abort(403)
    supervisors = db.session.scalars(select(User).where(
        User.role == SUPERVISOR, User.id.in_(scope.subtree_ids(user.id))).order_by(User.name)).all()
    wanted = request.args.get("supervisor", type=int)
    if wanted:
        chosen = next((s for s in supervisors if s.id == wanted), None)
        if chosen is None:
            abort(404)
        territories = select(Territory.id).where(Territory.region_id == user.id, Territory.supervisor_id == chosen.id)
        return Team([chosen.id], territories, supervisors, chosen)
    return Team([s.id for s in supervisors], select(Territory.id).where(Territory.region_id == user.id),
                supervisors, None)


def _day() -> date:
    """``?day=YYYY-MM-DD`` (a company-time calendar day), today by default or when it is not a date."""
    raw = request.args.get("day")
    if raw:
        try:
            chosen = date.fromisoformat(raw)
        except ValueError:
            chosen = None
        if chosen is not None and EARLIEST_DAY <= chosen <= LATEST_DAY:
            return chosen
        flash(_("%(value)s is not a date (YYYY-MM-DD): showing today.", value=raw[:20]), "error")
    return clock.today()


def _page(template: str, team: Team, day: date | None, status: int = 200, **context):
    today = clock.today()
    return render_template(template, team=team, day=day, today=today,
                           previous_day=day - timedelta(days=1) if day else None,
                           next_day=day + timedelta(days=1) if day and day < today else None,
                           **context), status


@bp.route("")
@login_required
def day():
    team = _team()
    when = _day()
    return _page("visits/team.html", team, when, report=reports.team_day(team.supervisor_ids, when))


@bp.route("/flags")
@login_required
def flags():
    team = _team()
    when = _day()
    visits = reports.flagged_visits(team.supervisor_ids, when)
    shell = points = None
    if visits:
        points = [{"id": v.id, "colour": v.gps_colour, "lat": v.lat, "lon": v.lon, "blat": v.building.lat,
                   "blon": v.building.lon, "address": v.building.address, "label": _point_label(v)}
                  for v in visits]
        centre = (sum(p["blat"] for p in points) / len(points), sum(p["blon"] for p in points) / len(points))
        shell = maps.build(current_app.config["TILE_URL"], current_app.config["TILE_ATTRIBUTION"],
                           centre=centre, zoom=15, editable=False)
    return _page("visits/flags.html", team, when, visits=visits, shell=shell, points=points)


def _point_label(visit) -> str:
    """What the map says about a visit: who, which flat, how far (or why there is no distance)."""
    where = (_("%(m)d m", m=round(visit.distance_m)) if visit.distance_m is not None
             else gettext(visit.flag_reason) if visit.flag_reason else "—")
    return _("%(agent)s, flat %(flat)d: %(where)s", agent=visit.agent.name, flat=visit.flat, where=where)


class UnlockForm(FlaskForm):
    reason = StringField(_l("Reason"))


@bp.route("/locks")
@login_required
def locks():
    return _locks_page(_team())


def _locks_page(team: Team, form: UnlockForm | None = None, failed: tuple[int, int] | None = None,
                status: int = 200):
    address = (request.args.get("q") or "").strip()[:100]
    doors, total = reports.locked_doors(team.territory_ids, address)
    return _page("visits/locks.html", team, None, status, doors=doors, total=total, address=address,
                 form=form or UnlockForm(), failed=failed)


@bp.route("/locks/<int:building_id>/<int:flat>/unlock", methods=["POST"])
@login_required
def unlock(building_id: int, flat: int):
    team = _team()
    form = UnlockForm()
    if not form.validate_on_submit():
        abort(400)
    building = db.session.scalar(select(Building).where(Building.id == building_id,
                                                        Building.territory_id.in_(team.territory_ids)))
    if building is None or not building.has_flat(flat):
        abort(404)
    try:
        services.unlock(current_user, building, flat, form.reason.data)
    except DomainError as exc:
        refuse_into_form(form, exc)
        return _locks_page(team, form, (building_id, flat), exc.status)
    db.session.commit()
    flash(_("Flat %(flat)d, %(address)s is unlocked.", flat=flat, address=building.address), "success")
    return redirect(url_for(".locks", q=request.args.get("q") or None, **team.args))

"""Dashboards: the region (sales head, finance), the team leaderboard (supervisor), the agent's
progress (phone), plans, and the records behind every figure. Scope is checked on the server."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm.dashboards import charts, figures, services
from crm.errors import DomainError
from crm.extensions import db
from crm.finance import core
from crm.finance.services import current_period
from crm.i18n import OUTCOME_NAMES
from crm.ledger import commission
from crm.users import scope
from crm.users.forms import ActionForm
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User

bp = Blueprint("dashboards", __name__)
PAGE_SIZE = 100


def _period() -> str:
    raw = request.args.get("period") or current_period()
    try:
        return core.parse_period(raw)
    except ValueError:
        abort(404)


def _recent_periods(count: int = 13) -> list[str]:
    p = current_period()
    out = [core.next_period(p)]
    for _month in range(count):
        out.append(p)
        p = core.previous_period(p)
    return out


def _link(figure: str, s: figures.Scope, key: str | None = None) -> str:
    return url_for("dashboards.records", figure=figure, key=key, period=s.period, team=s.team, agent=s.agent)


def _funnel_chart(s: figures.Scope, counts: dict) -> str:
    names = {"knocked": _("Doors knocked"), "contacts": _("Contacts"), "leads": _("Leads"),
             "contracts": _("Contracts"), "activations": _("Activations")}
    return charts.funnel([(names[k], counts[k], _link(k, s)) for k in figures.FUNNEL], _("Funnel"))


@bp.route("/dashboard")
@login_required
def index():
    if current_user.role == AGENT:
        return redirect(url_for("dashboards.me", period=request.args.get("period")))
    if current_user.role == SUPERVISOR:
        return redirect(url_for("dashboards.team", period=request.args.get("period")))
    if current_user.role not in (SALES_HEAD, FINANCE):
        abort(403)
    s = figures.make_scope(current_user, _period())
    counts = figures.funnel(s)
    plan_fact = figures.plan_vs_fact(s)
    contacts, competitor_doors, competitors = figures.competitor_share(s)
    cancellations = figures.cancellations_by_reason(s)
    signed, tariffs, addons = figures.tariff_mix(s)
    zones = figures.penetration_by_zone(s)
    plan_chart = charts.bars([charts.Bar(
        f"{pf.user.login} · {pf.user.name}", pf.contracts,
        f"{pf.contracts} / {pf.plan.contracts}" if pf.plan else str(pf.contracts),
        url_for("dashboards.team", supervisor=pf.user.id, period=s.period),
        mark=pf.plan.contracts if pf.plan else None) for pf in plan_fact], _("Contracts: fact and plan"))
    activation_chart = charts.bars([charts.Bar(
        f"{pf.user.login} · {pf.user.name}", pf.activations,
        f"{pf.activations} / {pf.plan.activations}" if pf.plan else str(pf.activations),
        url_for("dashboards.team", supervisor=pf.user.id, period=s.period),
        mark=pf.plan.activations if pf.plan else None) for pf in plan_fact], _("Activations: fact and plan"))
    return render_template(
        "dashboards/region.html", s=s, counts=counts, funnel_chart=_funnel_chart(s, counts), plan_fact=plan_fact,
        plan_chart=plan_chart, activation_chart=activation_chart,
        competitor_chart=charts.bars([charts.Bar(c.label, c.count, f"{c.count} · {charts.percent(c.share)}",
                                                 _link("competitor", s, c.key)) for c in competitors],
                                     _("Competitors named at the door")),
        contacts=contacts, competitor_doors=competitor_doors,
        cancel_chart=charts.bars([charts.Bar(c.label or _("no reason given"), c.count, str(c.count),
                                             _link("cancellations", s, c.key)) for c in cancellations],
                                 _("Cancellations by reason")),
        cancellations=cancellations, signed=signed,
        tariff_chart=charts.bars([charts.Bar(f"{t.key} · {t.label}", t.count, f"{t.count} · {charts.percent(t.share)}",
                                             _link("tariff", s, t.key)) for t in tariffs], _("Tariff mix")),
        addon_chart=charts.bars([charts.Bar(f"{a.key} · {a.label}", a.count, charts.percent(a.share),
                                            _link("addon", s, a.key)) for a in addons], _("Add-on attach rate"),
                                scale=max(signed, 1)),
        no_rate=figures.no_rate(s), zones=zones,
        zone_chart=charts.bars([charts.Bar(f"{z.name} · {z.group}", z.share or 0, charts.percent(z.share))
                                for z in zones], _("Penetration by zone")),
        buildings=figures.penetration_by_building(s), periods=_recent_periods(), pct=charts.percent)


def _team_scope():
    """The supervisor whose team is shown: yourself, or one of your region's (``?supervisor=``)."""
    wanted = request.args.get("supervisor", type=int)
    if current_user.role == SUPERVISOR:
        if wanted not in (None, current_user.id):
            abort(404)
        return current_user
    if current_user.role not in (SALES_HEAD, FINANCE):
        abort(403)
    sups = figures.supervisors_of(figures.make_scope(current_user, _period()))
    if wanted is None:
        if not sups:
            abort(404)
        return sups[0]
    chosen = next((u for u in sups if u.id == wanted), None)
    if chosen is None:
        abort(404)
    return chosen


@bp.route("/dashboard/team")
@login_required
def team():
    supervisor = _team_scope()
    period = _period()
    s = figures.make_scope(current_user, period, team=supervisor.id)
    members = list(db.session.scalars(select(User).where(User.manager_id == supervisor.id, User.role == AGENT,
                                                         User.active.is_(True))))
    rows = figures.leaderboard(s, members)
    agent_id = request.args.get("agent", type=int)
    chosen = None
    if agent_id is not None:
        chosen = next((r for r in rows if r.agent.id == agent_id), None)
        if chosen is None:
            abort(404)
    agent_scope = figures.make_scope(current_user, period, team=supervisor.id, agent=agent_id) if chosen else None
    agent_counts = figures.funnel(agent_scope) if chosen else None
    others = figures.supervisors_of(s) if current_user.role in (SALES_HEAD, FINANCE) else []
    return render_template(
        "dashboards/team.html", s=s, supervisor=supervisor, rows=rows, others=others, chosen=chosen,
        agent_funnel=_funnel_chart(agent_scope, agent_counts) if chosen else None,
        team_funnel=None if chosen else _funnel_chart(s, figures.funnel(s)),
        leader_chart=charts.bars([charts.Bar(r.agent.login, r.contracts,
                                             f"{r.contracts} / {r.plan.contracts}" if r.plan else str(r.contracts),
                                             url_for("dashboards.team", supervisor=supervisor.id, agent=r.agent.id,
                                                     period=period),
                                             mark=r.plan.contracts if r.plan else None) for r in rows],
                                 _("Contracts by agent")),
        periods=_recent_periods(), pct=charts.percent, link=_link)


@bp.route("/dashboard/me")
@login_required
def me():
    if current_user.role != AGENT:
        abort(403)
    s = figures.make_scope(current_user, _period())
    progress = figures.own_progress(s, current_user)
    counts = figures.funnel(s)
    return render_template("dashboards/me.html", s=s, progress=progress, counts=counts,
                           progress_chart=charts.bars([
                               charts.Bar(_("Contracts"), progress.contracts,
                                          f"{progress.contracts} / {progress.plan.contracts}" if progress.plan
                                          else str(progress.contracts), _link("contracts", s),
                                          mark=progress.plan.contracts if progress.plan else None),
                               charts.Bar(_("Activations"), progress.activations,
                                          f"{progress.activations} / {progress.plan.activations}" if progress.plan
                                          else str(progress.activations), _link("activations", s),
                                          mark=progress.plan.activations if progress.plan else None)],
                               _("My month against plan")),
                           funnel_chart=_funnel_chart(s, counts), periods=_recent_periods(), pct=charts.percent)


@bp.route("/dashboard/records")
@login_required
def records():
    """The rows behind a figure, in the same scope the figure was counted in."""
    if current_user.role not in (AGENT, SUPERVISOR, SALES_HEAD, FINANCE):
        abort(403)
    figure = request.args.get("figure", "")
    if figure not in figures.RECORD_FIGURES:
        abort(404)
    team = request.args.get("team", type=int)
    agent = request.args.get("agent", type=int)
    if team is not None and not (team == current_user.id or scope.in_scope(current_user, team)):
        abort(404)
    if agent is not None and not scope.in_scope(current_user, agent):
        abort(404)
    s = figures.make_scope(current_user, _period(), team=team, agent=agent)
    kind, q = figures.records(s, figure, request.args.get("key"))
    page = max(1, request.args.get("page", 1, type=int))
    model = q.column_descriptions[0]["entity"]
    related = (model.building, model.agent) + ((model.tariff,) if kind == "contracts" else ())
    q = q.options(*(selectinload(r) for r in related))  # the list shows them: no query per row
    rows = list(db.session.scalars(q.order_by(model.at.desc(), model.id.desc())
                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return render_template("dashboards/records.html", s=s, kind=kind, figure=figure, key=request.args.get("key"),
                           rows=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page,
                           fmt=commission.format_money, outcomes=OUTCOME_NAMES)


@bp.route("/plans", methods=["GET", "POST"])
@login_required
def plans():
    if current_user.role != SALES_HEAD:
        abort(403)
    period = _period()
    people = services.planned_people(current_user)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        changed = 0
        try:
            for user in people:
                contracts = services.parse_count(request.form.get(f"contracts_{user.id}"), f"contracts_{user.id}")
                activations = services.parse_count(request.form.get(f"activations_{user.id}"),
                                                   f"activations_{user.id}")
                if contracts is None and activations is None:
                    continue
                if services.set_plan(current_user, user=user, period=period, contracts=contracts or 0,
                                     activations=activations or 0):
                    changed += 1
        except DomainError as exc:
            db.session.rollback()
            if exc.status == 403:
                raise
            errors = {k: str(v) for k, v in exc.fields.items()}
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(_("Plans for %(p)s saved: %(n)d changed.", p=period, n=changed), "success")
            return redirect(url_for("dashboards.plans", period=period))
    return render_template("dashboards/plans.html", period=period, people=people,
                           plans=figures.plans_for(period, [u.id for u in people]), errors=errors,
                           values=request.form if request.method == "POST" else {}, action=ActionForm(),
                           periods=_recent_periods()), (422 if errors else 200)

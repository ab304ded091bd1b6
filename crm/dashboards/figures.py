"""Every number of the dashboards, written once and used by every page (PRODUCT.md §3, §6).

Each figure is about a *scope* (whose work) and a *period* (a month in the company time
zone). Work is attributed to the team it was done in: a visit carries the agent's
supervisor when it was recorded, a contract the supervisor at signing, so an agent who
moves mid-month leaves the first half with the old team. ``records`` gives the rows
behind any figure, for the click-through.

Definitions: doors knocked = visits; contacts = visits other than not_home and
no_access; leads = lead, callback and signed visits; contracts = signed in the month;
activations = activated in the month; penetration = flats with an active contract or an
``already_subscriber`` visit ÷ apartments, as at the end of the month (or now).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, case, false, func, or_, select, true, union

from crm import clock
from crm.catalogue.models import Tariff
from crm.contracts.models import Contract, ContractAddon
from crm.dashboards.models import Plan
from crm.extensions import db
from crm.finance import core
from crm.users import scope as user_scope
from crm.users.models import AGENT, FINANCE, SALES_HEAD, SUPERVISOR, User
from crm.visits.models import Visit
from territories.models import Building, Territory, Zone

NO_CONTACT = ("not_home", "no_access")
LEADS = ("lead", "callback", "signed")
FUNNEL = ("knocked", "contacts", "leads", "contracts", "activations")


@dataclass(frozen=True)
class Scope:
    """Whose work, when. ``team`` narrows a region to one supervisor's team; ``agent`` to one agent."""

    viewer: User
    period: str
    start: datetime
    end: datetime
    team: int | None = None
    agent: int | None = None

    @property
    def until(self) -> datetime:
        """The end of the month, or now while it runs (penetration "as at")."""
        return min(self.end, clock.now())

    def _attributed(self, agent_col, supervisor_col):
        if self.agent is not None:
            clause = agent_col == self.agent
            if self.team is not None:
                clause = and_(clause, supervisor_col == self.team)
            return and_(clause, self._base(agent_col, supervisor_col))
        if self.team is not None:
            return and_(supervisor_col == self.team, self._base(agent_col, supervisor_col))
        return self._base(agent_col, supervisor_col)

    def _base(self, agent_col, supervisor_col):
        role = self.viewer.role
        if role == FINANCE:
            return true()
        if role == AGENT:
            return agent_col == self.viewer.id
        if role == SUPERVISOR:
            return supervisor_col == self.viewer.id
        if role == SALES_HEAD:
            return supervisor_col.in_(user_scope.subtree_ids(self.viewer.id))
        return false()

    def visits(self):
        return and_(self._attributed(Visit.agent_id, Visit.supervisor_id), Visit.at >= self.start,
                    Visit.at < self.end)

    def contracts(self):
        return self._attributed(Contract.agent_id, Contract.supervisor_id)

    def signed(self):
        return and_(self.contracts(), Contract.at >= self.start, Contract.at < self.end)

    def activated(self):
        return and_(self.contracts(), Contract.activated_at >= self.start, Contract.activated_at < self.end)

    def cancelled(self):
        return and_(self.contracts(), Contract.cancelled_at >= self.start, Contract.cancelled_at < self.end)


def make_scope(viewer: User, period: str, team: int | None = None, agent: int | None = None) -> Scope:
    start, end = core.bounds(period, clock.company_zone())
    return Scope(viewer, period, start, end, team, agent)


def _count(where, model=Contract) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(where)) or 0


# --- the funnel and the leaderboard --------------------------------------------------


def _doors(s: Scope) -> dict[tuple[str, str | None], int]:
    """One pass over the month's visits: count per (outcome, trimmed competitor name). The
    funnel and the competitor share both read it (millions of visits: scan them once)."""
    cache = _request_cache()
    key = ("doors", s)
    if key not in cache:
        name = case((Visit.outcome == "competitor", func.trim(Visit.competitor)), else_=None)
        cache[key] = {(outcome, raw): n for outcome, raw, n in db.session.execute(
            select(Visit.outcome, name, func.count()).where(s.visits()).group_by(Visit.outcome, name))}
    return cache[key]


def _request_cache() -> dict:
    """Figures computed once per request (or app context) even when two of them need them."""
    from flask import g

    return g.setdefault("dashboard_figures", {})


def funnel(s: Scope) -> dict[str, int]:
    by_outcome: dict[str, int] = {}
    for (outcome, _name), n in _doors(s).items():
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
    knocked = sum(by_outcome.values())
    return {"knocked": knocked,
            "contacts": knocked - sum(by_outcome.get(o, 0) for o in NO_CONTACT),
            "leads": sum(by_outcome.get(o, 0) for o in LEADS),
            "contracts": _count(s.signed()),
            "activations": _count(s.activated())}


@dataclass
class AgentRow:
    agent: User
    knocked: int = 0
    contacts: int = 0
    leads: int = 0
    contracts: int = 0
    activations: int = 0
    cancellations: int = 0
    flagged: int = 0
    plan: Plan | None = None

    @property
    def conversion(self) -> float | None:
        """Contracts per contact."""
        return self.contracts / self.contacts if self.contacts else None


def leaderboard(s: Scope, members: list[User] | None = None) -> list[AgentRow]:
    """One row per agent with work in the scope (and every current member, even idle),
    by contracts, then activations."""
    rows: dict[int, AgentRow] = {}

    def row(agent_id):
        if agent_id not in rows:
            rows[agent_id] = AgentRow(agent=None)  # filled below
        return rows[agent_id]

    contact = case((Visit.outcome.in_(NO_CONTACT), 0), else_=1)
    lead = case((Visit.outcome.in_(LEADS), 1), else_=0)
    flagged = case((Visit.flagged.is_(True), 1), else_=0)
    for agent_id, knocked, contacts, leads, flags in db.session.execute(
            select(Visit.agent_id, func.count(), func.sum(contact), func.sum(lead), func.sum(flagged))
            .where(s.visits()).group_by(Visit.agent_id)):
        r = row(agent_id)
        r.knocked, r.contacts, r.leads, r.flagged = knocked, int(contacts or 0), int(leads or 0), int(flags or 0)
    for clause, attr in ((s.signed(), "contracts"), (s.activated(), "activations"), (s.cancelled(), "cancellations")):
        for agent_id, n in db.session.execute(select(Contract.agent_id, func.count()).where(clause)
                                              .group_by(Contract.agent_id)):
            setattr(row(agent_id), attr, n)
    for member in members or []:
        row(member.id)
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(list(rows))))}
    plans = plans_for(s.period, list(rows))
    for agent_id, r in rows.items():
        r.agent, r.plan = people[agent_id], plans.get(agent_id)
    return sorted(rows.values(), key=lambda r: (-r.contracts, -r.activations, -r.contacts, r.agent.login))


# --- plans ---------------------------------------------------------------------------


def plans_for(period: str, user_ids) -> dict[int, Plan]:
    ids = list(user_ids)
    if not ids:
        return {}
    return {p.user_id: p for p in db.session.scalars(select(Plan).where(Plan.period == period,
                                                                        Plan.user_id.in_(ids)))}


@dataclass
class PlanFact:
    user: User
    plan: Plan | None
    contracts: int
    activations: int

    def share(self, what: str) -> float | None:
        target = getattr(self.plan, what, 0) if self.plan else 0
        return getattr(self, what) / target if target else None


def supervisors_of(s: Scope) -> list[User]:
    if s.viewer.role == FINANCE:
        return list(db.session.scalars(select(User).where(User.role == SUPERVISOR).order_by(User.login)))
    if s.viewer.role == SALES_HEAD:
        return list(db.session.scalars(select(User).where(User.role == SUPERVISOR, User.id.in_(
            user_scope.subtree_ids(s.viewer.id))).order_by(User.login)))
    return []


def plan_vs_fact(s: Scope) -> list[PlanFact]:
    """Per supervisor of the region: the team plan against the contracts signed and the
    activations made under that supervisor this month."""
    sups = supervisors_of(s)
    if not sups:
        return []
    ids = [u.id for u in sups]
    fact = {i: [0, 0] for i in ids}
    for clause, index in ((s.signed(), 0), (s.activated(), 1)):
        for sup_id, n in db.session.execute(select(Contract.supervisor_id, func.count())
                                            .where(clause, Contract.supervisor_id.in_(ids))
                                            .group_by(Contract.supervisor_id)):
            fact[sup_id][index] = n
    plans = plans_for(s.period, ids)
    return [PlanFact(u, plans.get(u.id), *fact[u.id]) for u in sups]


def own_progress(s: Scope, agent: User) -> PlanFact:
    """An agent's own month: everything they signed and activated, whichever team."""
    mine = make_scope(agent, s.period)
    return PlanFact(agent, plans_for(s.period, [agent.id]).get(agent.id), _count(mine.signed()),
                    _count(mine.activated()))


# --- what the doors say and what was sold --------------------------------------------


@dataclass
class Share:
    key: str
    label: str
    count: int
    share: float | None
    extra: dict = field(default_factory=dict)


def competitor_share(s: Scope) -> tuple[int, int, list[Share]]:
    """(contacts, doors that named a competitor, per competitor) — names compared case-blind."""
    doors = _doors(s)
    contacts = sum(n for (outcome, _name), n in doors.items() if outcome not in NO_CONTACT)
    merged: dict[str, list] = {}  # Unicode case-folding in Python: SQLite's lower() is ASCII only
    for raw, n in ((name, n) for (outcome, name), n in doors.items() if outcome == "competitor"):
        key = (raw or "").casefold()
        entry = merged.setdefault(key, [raw or "", 0])
        entry[1] += n
        if n > 0 and raw and raw < entry[0]:
            entry[0] = raw
    total = sum(n for _label, n in merged.values())
    rows = sorted(merged.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return contacts, total, [Share(key, label, n, n / total if total else None) for key, (label, n) in rows]


def _competitor_spellings(s: Scope, key: str) -> list[str]:
    names = db.session.scalars(select(func.trim(Visit.competitor)).where(s.visits(), Visit.outcome == "competitor")
                               .distinct())
    return [n for n in names if (n or "").casefold() == key.strip().casefold()]


def cancellations_by_reason(s: Scope) -> list[Share]:
    reason = func.coalesce(func.trim(Contract.cancel_reason), "")
    after = case((Contract.activated_at.is_not(None), 1), else_=0)
    rows = db.session.execute(select(reason, func.count(), func.sum(after)).where(s.cancelled())
                              .group_by(reason).order_by(func.count().desc(), reason)).all()
    total = sum(n for _r, n, _a in rows)
    return [Share(r, r, n, n / total if total else None, {"after_activation": int(a or 0)}) for r, n, a in rows]


def tariff_mix(s: Scope) -> tuple[int, list[Share], list[Share]]:
    """(contracts, per tariff, per add-on attach rate) of the month's signings."""
    rows = db.session.execute(select(Tariff.code, Tariff.name, Tariff.speed_mbit, func.count())
                              .join(Contract, Contract.tariff_id == Tariff.id).where(s.signed())
                              .group_by(Tariff.code, Tariff.name, Tariff.speed_mbit)
                              .order_by(Tariff.speed_mbit.desc(), Tariff.code)).all()
    total = sum(n for *_x, n in rows)
    tariffs = [Share(code, name, n, n / total if total else None, {"speed": speed}) for code, name, speed, n in rows]
    addon_rows = db.session.execute(select(Tariff.code, Tariff.name, func.count())
                                    .join(ContractAddon, ContractAddon.tariff_id == Tariff.id)
                                    .join(Contract, Contract.id == ContractAddon.contract_id).where(s.signed())
                                    .group_by(Tariff.code, Tariff.name).order_by(Tariff.code)).all()
    addons = [Share(code, name, n, n / total if total else None) for code, name, n in addon_rows]
    return total, tariffs, addons


def no_rate(s: Scope) -> int:
    return _count(and_(s.signed(), Contract.rate_version_id.is_(None)))


# --- penetration ---------------------------------------------------------------------


def _zones_clause(s: Scope):
    """Zones the viewer's scope covers: own territories' (supervisor), the region's (sales head)."""
    live = Zone.retired_at.is_(None)
    if s.team is not None:
        return and_(live, Zone.territory_id.in_(select(Territory.id).where(Territory.supervisor_id == s.team)))
    if s.viewer.role == FINANCE:
        return live
    if s.viewer.role == SALES_HEAD:
        return and_(live, Zone.territory_id.in_(select(Territory.id).where(Territory.region_id == s.viewer.id)))
    if s.viewer.role == SUPERVISOR:
        return and_(live, Zone.territory_id.in_(select(Territory.id).where(Territory.supervisor_id == s.viewer.id)))
    return false()


def _penetrated_flats(s: Scope, buildings):
    """(building_id, flat) among ``buildings`` (a SELECT of ids) with an active contract or an
    already_subscriber visit at ``until``."""
    until = s.until
    active = select(Contract.building_id.label("building_id"), Contract.flat.label("flat")).where(
        Contract.building_id.in_(buildings), Contract.at < until,
        or_(Contract.cancelled_at.is_(None), Contract.cancelled_at >= until))
    subscriber = select(Visit.building_id, Visit.flat).where(Visit.outcome == "already_subscriber",
                                                            Visit.building_id.in_(buildings), Visit.at < until)
    return union(active, subscriber).subquery()


@dataclass
class Penetration:
    id: int
    name: str
    flats: int
    penetrated: int
    group: str | None = None  # the zone's territory

    @property
    def share(self) -> float | None:
        return self.penetrated / self.flats if self.flats else None


def _penetration(s: Scope) -> tuple[list, dict[int, int]]:
    """(the scope's zones, penetrated flats per building of those zones), computed once per request:
    one pass over the active contracts and the subscriber doors (a covering partial index)."""
    cache = _request_cache()
    key = ("penetration", s)
    if key not in cache:
        zones = db.session.execute(select(Zone.id, Zone.name, Territory.name)
                                   .join(Territory, Territory.id == Zone.territory_id)
                                   .where(_zones_clause(s)).order_by(Territory.name, Zone.name)).all()
        counts: dict[int, int] = {}
        if zones:
            in_zones = select(Building.id).where(Building.zone_id.in_(select(Zone.id).where(_zones_clause(s))))
            pen = _penetrated_flats(s, in_zones)
            counts = dict(db.session.execute(select(pen.c.building_id, func.count())
                                             .group_by(pen.c.building_id)).all())
        cache[key] = (zones, counts)
    return cache[key]


def penetration_by_zone(s: Scope) -> list[Penetration]:
    zones, counts = _penetration(s)
    if not zones:
        return []
    ids = [z[0] for z in zones]
    flats: dict[int, int] = {}
    penetrated: dict[int, int] = {}
    for building_id, zone_id, apartments in db.session.execute(
            select(Building.id, Building.zone_id, Building.apartments).where(Building.zone_id.in_(ids))):
        flats[zone_id] = flats.get(zone_id, 0) + apartments
        penetrated[zone_id] = penetrated.get(zone_id, 0) + counts.get(building_id, 0)
    return [Penetration(zid, name, flats.get(zid, 0), penetrated.get(zid, 0), owner) for zid, name, owner in zones]


def penetration_by_building(s: Scope, limit: int = 30) -> list[Penetration]:
    """The largest buildings of the scope's zones with their penetration (where the flats are)."""
    zones, counts = _penetration(s)
    if not zones:
        return []
    rows = db.session.execute(
        select(Building.id, Building.address, Building.apartments)
        .where(Building.zone_id.in_(select(Zone.id).where(_zones_clause(s))))
        .order_by(Building.apartments.desc(), Building.id).limit(limit)).all()
    return [Penetration(bid, address, apartments, counts.get(bid, 0)) for bid, address, apartments in rows]


# --- the records behind a figure -----------------------------------------------------


RECORD_FIGURES = ("knocked", "contacts", "leads", "flagged", "competitor", "contracts", "activations",
                  "cancellations", "tariff", "addon", "no_rate")


def records(s: Scope, figure: str, key: str | None = None):
    """("visits" | "contracts", a SELECT of the rows behind ``figure`` (with ``key``))."""
    if figure == "knocked":
        return "visits", select(Visit).where(s.visits())
    if figure == "contacts":
        return "visits", select(Visit).where(s.visits(), Visit.outcome.not_in(NO_CONTACT))
    if figure == "leads":
        return "visits", select(Visit).where(s.visits(), Visit.outcome.in_(LEADS))
    if figure == "flagged":
        return "visits", select(Visit).where(s.visits(), Visit.flagged.is_(True))
    if figure == "competitor":
        q = select(Visit).where(s.visits(), Visit.outcome == "competitor")
        if key:
            q = q.where(func.trim(Visit.competitor).in_(_competitor_spellings(s, key)))
        return "visits", q
    if figure == "contracts":
        return "contracts", select(Contract).where(s.signed())
    if figure == "activations":
        return "contracts", select(Contract).where(s.activated())
    if figure == "cancellations":
        q = select(Contract).where(s.cancelled())
        if key is not None:
            q = q.where(func.coalesce(func.trim(Contract.cancel_reason), "") == key)
        return "contracts", q
    if figure == "tariff":
        return "contracts", select(Contract).join(Tariff, Tariff.id == Contract.tariff_id).where(
            s.signed(), Tariff.code == (key or ""))
    if figure == "addon":
        return "contracts", select(Contract).where(s.signed(), Contract.id.in_(
            select(ContractAddon.contract_id).join(Tariff, Tariff.id == ContractAddon.tariff_id)
            .where(Tariff.code == (key or ""))))
    if figure == "no_rate":
        return "contracts", select(Contract).where(s.signed(), Contract.rate_version_id.is_(None))
    raise KeyError(figure)

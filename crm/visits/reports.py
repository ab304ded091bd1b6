"""The supervisor's team day: the funnel per agent, flagged visits, locked doors.

A team is one or more supervisors. A visit and a contract belong to the team of the
supervisor the agent had when it was recorded (``Visit.supervisor_id``,
``Contract.supervisor_id``), so an agent who moved keeps their past days where they
were worked. Days are calendar days in the company time zone. Queries only: nothing
here writes, and the caller decides who may ask (see ``crm.visits.team``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import aliased, joinedload

from crm import clock
from crm.contracts.models import Contract
from crm.extensions import db
from crm.users.models import AGENT, User
from crm.visits import rules
from crm.visits.models import DoorUnlock, Visit
from territories.models import Building, Territory

LOCKS_LIMIT = 50


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The company-time day ``day`` as a half-open UTC interval ``[start, end)``."""
    zone = clock.company_zone()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return clock.ensure_utc(start), clock.ensure_utc(end)


@dataclass
class AgentDay:
    agent: User
    doors: int = 0
    contacts: int = 0
    leads: int = 0
    contracts: int = 0
    flagged: int = 0

    FIGURES = ("doors", "contacts", "leads", "contracts", "flagged")


@dataclass
class TeamDay:
    day: date
    rows: list[AgentDay]
    totals: dict = field(default_factory=dict)


def team_day(supervisor_ids: list[int], day: date) -> TeamDay:
    """One row per agent of the team: today's agents (even idle) and anyone who worked for it that day.

    contracts = contracts signed that day (any status now) + ``signed`` visits without a contract.
    """
    start, end = day_bounds(day)
    in_day = and_(Visit.supervisor_id.in_(supervisor_ids), Visit.at >= start, Visit.at < end)

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    figures: dict[int, dict] = {}
    for agent_id, doors, contacts, leads, loose_signed, flagged in db.session.execute(
            select(Visit.agent_id, func.count(), count_if(Visit.outcome.in_(rules.CONTACTS)),
                   count_if(Visit.outcome.in_(rules.LEADS)),
                   count_if(and_(Visit.outcome == "signed", Visit.contract_id.is_(None))),
                   count_if(Visit.flagged.is_(True)))
            .where(in_day).group_by(Visit.agent_id)):
        figures[agent_id] = {"doors": doors, "contacts": int(contacts), "leads": int(leads),
                             "contracts": int(loose_signed), "flagged": int(flagged)}
    for agent_id, signed in db.session.execute(
            select(Contract.agent_id, func.count())
            .where(Contract.supervisor_id.in_(supervisor_ids), Contract.at >= start, Contract.at < end)
            .group_by(Contract.agent_id)):
        figures.setdefault(agent_id, {"doors": 0, "contacts": 0, "leads": 0, "contracts": 0, "flagged": 0})
        figures[agent_id]["contracts"] += signed

    agents = db.session.scalars(select(User).where(or_(
        User.id.in_(list(figures)),
        and_(User.manager_id.in_(supervisor_ids), User.role == AGENT, User.active.is_(True))))).all()
    rows = sorted((AgentDay(agent, **figures.get(agent.id, {})) for agent in agents),
                  key=lambda r: (r.agent.name.casefold(), r.agent.login))
    totals = {name: sum(getattr(r, name) for r in rows) for name in AgentDay.FIGURES}
    return TeamDay(day, rows, totals)


def flagged_visits(supervisor_ids: list[int], day: date) -> list[Visit]:
    """The team's visits flagged for the supervisor that day (no fix, poor fix, too far), in time order."""
    start, end = day_bounds(day)
    return list(db.session.scalars(
        select(Visit).options(joinedload(Visit.agent), joinedload(Visit.building))
        .where(Visit.supervisor_id.in_(supervisor_ids), Visit.at >= start, Visit.at < end, Visit.flagged.is_(True))
        .order_by(Visit.at, Visit.id)))


def team_territory_ids(supervisor_ids: list[int]):
    """A SELECT of the territories the team's supervisors hold (their doors are theirs to unlock)."""
    return select(Territory.id).where(Territory.supervisor_id.in_(supervisor_ids))


def _locking_now():
    """Visits that lock their door now: the door's latest locking visit, not lifted by an unlock
    (``crm.visits.services.last_locking_visit`` for every door at once)."""
    later = aliased(Visit)
    newer = exists().where(later.building_id == Visit.building_id, later.flat == Visit.flat,
                           later.outcome.in_(rules.LOCKING),
                           or_(later.at > Visit.at, and_(later.at == Visit.at, later.id > Visit.id)))
    lifted = exists().where(DoorUnlock.visit_id == Visit.id)
    return and_(Visit.outcome.in_(rules.LOCKING), ~newer, ~lifted)


def locked_doors(territory_ids, address: str = "", limit: int = LOCKS_LIMIT) -> tuple[list[Visit], int]:
    """The locking visits of the doors locked now in these territories (latest first; the address
    containing ``address`` when given), and how many there are."""
    buildings = select(Building.id).where(Building.territory_id.in_(territory_ids))
    if address:
        buildings = buildings.where(Building.address.icontains(address, autoescape=True))
    where = and_(_locking_now(), Visit.building_id.in_(buildings))
    total = db.session.scalar(select(func.count()).select_from(Visit).where(where))
    visits = list(db.session.scalars(
        select(Visit).options(joinedload(Visit.agent), joinedload(Visit.building)).where(where)
        .order_by(Visit.at.desc(), Visit.id.desc()).limit(limit)))
    return visits, total

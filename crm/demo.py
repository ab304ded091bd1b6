"""The demo (``flask crm seed-demo``): idempotent, every password ``demo``.

Each feature adds its part here (city, catalogue, history) and its count to the
"demo ready" line. History is written through the injected clock, moved to each
event's time, so rate versions are never backdated and every entry is genuine.
"""
from __future__ import annotations

import random
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from crm.clock import FixedClock, get_clock
from crm.extensions import db
from crm.users import services as users
from crm.users.models import User

DEMO_PASSWORD = "demo"

# login, role, manager, name
DEMO_PEOPLE = [
    ("head", "sales_head", None, "Ирина Соколова"),
    ("sup1", "supervisor", "head", "Андрей Волков"),
    ("sup2", "supervisor", "head", "Марина Лебедева"),
    ("sup3", "supervisor", "head", "Олег Никитин"),
    ("agent1", "agent", "sup1", "Дмитрий Козлов"),
    ("agent2", "agent", "sup1", "Екатерина Морозова"),
    ("agent3", "agent", "sup1", "Артём Павлов"),
    ("agent4", "agent", "sup1", "Наталья Белова"),
    ("agent5", "agent", "sup2", "Сергей Фёдоров"),
    ("agent6", "agent", "sup2", "Анна Егорова"),
    ("agent7", "agent", "sup2", "Максим Орлов"),
    ("agent8", "agent", "sup2", "Юлия Киселёва"),
    ("agent9", "agent", "sup3", "Илья Макаров"),
    ("agent10", "agent", "sup3", "Ольга Андреева"),
    ("agent11", "agent", "sup3", "Тимур Захаров"),
    ("agent12", "agent", "sup3", "Алина Ковалёва"),
    ("fin1", "finance", None, "Галина Степанова"),
    ("fin2", "finance", None, "Виктор Романов"),
    ("admin", "admin", None, "Служба ИТ"),
]


def seed_people() -> None:
    for number, (login, role, manager_login, name) in enumerate(DEMO_PEOPLE, start=1):
        if users.find_by_login(login):
            continue
        manager = users.find_by_login(manager_login) if manager_login else None
        users.create_user(None, login=login, name=name, role=role, manager=manager,
                          personnel_number=f"D-{number:04d}", password=DEMO_PASSWORD, must_change_password=False)


DEMO_BUILDINGS = 3400
DEMO_CONTRACTS = 420
# code, name, kind, fee, speed, add-on
CATALOGUE = [
    ("net100", "Домашний 100", "internet", 50000, 100, False),
    ("net300", "Домашний 300", "internet", 65000, 300, False),
    ("net500", "Домашний 500", "internet", 85000, 500, False),
    ("combo300", "Интернет 300 + ТВ", "bundle", 90000, 300, False),
    ("tv", "Цифровое ТВ", "tv", 30000, None, True),
    ("phone", "Домашний телефон", "phone", 15000, None, True),
    ("router", "Аренда роутера", "router_rent", 10000, None, True),
]


@contextmanager
def _clock_at(at: datetime):
    """Write history: everything inside sees ``at`` as now."""
    saved = current_app.extensions.get("doorstep_clock")
    current_app.extensions["doorstep_clock"] = FixedClock(at)
    try:
        yield
    finally:
        current_app.extensions["doorstep_clock"] = saved


def _rates(effective_from: datetime, scale: float, override: str, clawback_days: int, tiers) -> dict:
    base = {"net100": 120000, "net300": 160000, "net500": 200000, "combo300": 220000,
            "tv": 15000, "phone": 8000, "router": 5000}
    amounts = {code: int(round(v * scale / 100)) * 100 for code, v in base.items()}
    return {"effective_from": effective_from.isoformat(),
            "agent": {"tariffs": {c: amounts[c] for c in ("net100", "net300", "net500", "combo300")},
                      "addons": {c: amounts[c] for c in ("tv", "phone", "router")}},
            "supervisor_override_percent": override, "clawback_days": clawback_days,
            "tiers": [{"activations": a, "bonus_per_activation": b} for a, b in tiers]}


def seed_money(now: datetime) -> None:
    """Catalogue, a rate history with one future version, and weeks of contracts in every status."""
    from crm.catalogue import services as catalogue
    from crm.catalogue.models import Tariff
    from crm.contracts import services as contracts
    from crm.contracts.models import Contract
    from crm.ledger import services as ledger
    from territories.demo import seed_buildings, seed_polygons
    from territories.models import Building, ZoneAssignment

    rng = random.Random(2026)
    if not db.session.scalar(select(func.count()).select_from(Tariff)):
        with _clock_at(now - timedelta(days=130)):
            for code, name, kind, fee, speed, addon in CATALOGUE:
                catalogue.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee, speed_mbit=speed,
                                     is_addon=addon)
    seed_polygons(now, _clock_at)
    seed_buildings(DEMO_BUILDINGS, now, rng, _clock_at)
    if db.session.scalar(select(func.count()).select_from(Contract)):
        return

    start = (now - timedelta(days=120)).replace(hour=0, minute=0, second=0, microsecond=0)
    second = (now - timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
    upcoming = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    # a dozen agents activate a handful of contracts a month each: the demo's tiers are sized for that
    timeline = [
        (start - timedelta(days=3), "rates", _rates(start, 1.0, "10", 60, [(4, 5000), (8, 10000)])),
        (second - timedelta(days=5), "rates", _rates(second, 1.1, "10", 60, [(5, 6000), (9, 12000)])),
    ]
    agents = list(db.session.scalars(select(User).where(User.role == "agent").order_by(User.login)))
    buildings = list(db.session.scalars(select(Building).where(Building.external_id.like("demo-%"))
                                        .order_by(Building.id)))
    walked: dict[int, list] = {}  # agent id → buildings in the zones they walk
    for agent_id, building in db.session.execute(
            select(ZoneAssignment.agent_id, Building).join(Building, Building.zone_id == ZoneAssignment.zone_id)
            .order_by(ZoneAssignment.agent_id, Building.id)):
        walked.setdefault(agent_id, []).append(building)
    tariffs = ["net100", "net100", "net300", "net300", "net300", "net500", "combo300"]
    taken: set[tuple[int, int]] = set()
    span = (now - timedelta(hours=6) - start).total_seconds()
    for i in range(DEMO_CONTRACTS):
        at = start + timedelta(seconds=rng.uniform(0, span))
        if i < 3:  # signed before any rate was in force: the sales head's alert
            at = start - timedelta(days=10, hours=-5 * i)
        agent = rng.choice(agents)
        building = rng.choice(walked.get(agent.id) or buildings)
        flat = rng.randint(1, building.apartments)
        if (building.id, flat) in taken:
            continue
        taken.add((building.id, flat))
        plan = rng.choices(["signed", "paid", "scheduled", "activated", "void", "clawback", "late"],
                           weights=[12, 8, 8, 50, 10, 7, 5])[0]
        deal = {"agent": agent, "building": building, "flat": flat, "at": at,
                "tariff": rng.choice(tariffs), "addons": [a for a in ("tv", "phone", "router") if rng.random() < 0.25],
                "client_id": str(uuid.UUID(int=rng.getrandbits(128)))}
        timeline.append((at + timedelta(minutes=rng.randint(1, 600)), "sign", deal))
        t = at
        steps = {"signed": [], "paid": ["paid"], "scheduled": ["paid", "installation_scheduled"],
                 "activated": ["paid", "installation_scheduled", "activated"], "void": ["paid", "cancelled"],
                 "clawback": ["paid", "installation_scheduled", "activated", "cancelled"],
                 "late": ["paid", "installation_scheduled", "activated", "cancelled"]}[plan]
        for step in steps:
            gap = timedelta(days=70) if (plan == "late" and step == "cancelled") else timedelta(hours=rng.uniform(4, 96))
            t = t + gap
            if t > now - timedelta(minutes=10):
                break
            timeline.append((t, "event", (deal, step, t)))
    timeline.append((now, "rates", _rates(upcoming, 1.15, "12.5", 45, [(5, 8000), (10, 15000)])))
    timeline += _finance_timeline(start, now)
    timeline.sort(key=lambda item: item[0])  # stable: a close stays before its payout

    reasons = ["переезд", "передумал", "нашёл дешевле у конкурента", "не устроило время подключения",
               "дом не готов к подключению"]
    seq = 0
    for when, kind, payload in timeline:
        if kind == "rates":
            with _clock_at(when):
                ledger.add_rate_version(None, payload)
            continue
        if kind in FINANCE_STEPS:
            with _clock_at(when):
                FINANCE_STEPS[kind](payload)
            continue
        if kind == "sign":
            with _clock_at(when):
                contract, _ = contracts.sign(
                    None, agent=payload["agent"], building=payload["building"], flat=payload["flat"],
                    subscriber_name=_resident(rng), phone=f"+7912{rng.randint(0, 9999999):07d}",
                    tariff_code=payload["tariff"], addon_codes=payload["addons"], adult_confirmed=True,
                    at=payload["at"], client_id=payload["client_id"])
                payload["number"] = contract.number
            continue
        deal, step, at = payload
        if "number" not in deal:
            continue
        seq += 1
        with _clock_at(when + timedelta(minutes=rng.randint(0, 3))):
            contract = db.session.scalars(select(Contract).where(Contract.number == deal["number"])).one()
            contracts.apply_event(contract, event=step, at=at, event_key=f"demo:{seq}",
                                  reason=rng.choice(reasons) if step == "cancelled" else None)
    db.session.flush()


def _finance_timeline(start: datetime, now: datetime) -> list:
    """Every finished month closed (3rd of the next month, or just now for the last one) and
    paid two days later; an approved and a rejected adjustment last month; an open dispute."""
    from crm.clock import company_zone
    from crm.finance import core

    zone = company_zone()
    items = []
    month = core.period_of(start, zone)
    while (end := core.bounds(month, zone)[1]) <= now:
        closed_at = min(end + timedelta(days=2, hours=10), max(end + timedelta(minutes=1), now - timedelta(minutes=30)),
                        now)
        items.append((closed_at, "close", month))
        items.append((min(closed_at + timedelta(days=2), now), "payout", month))
        month = core.next_period(month)
    last = core.previous_period(core.period_of(now, zone))
    first_day = core.bounds(last, zone)[0]
    items += [
        (first_day + timedelta(days=17, hours=6), "propose",
         ("sup1", "agent1", 150000, "Кв. 57 подписана на бумаге, телефон был без сети — договора нет в системе")),
        (first_day + timedelta(days=18, hours=5), "decide", ("fin2", 0, "approve", None)),
        (first_day + timedelta(days=23, hours=7), "propose",
         ("sup2", "agent6", 80000, "Доплата за двойной обход дома")),
        (first_day + timedelta(days=24, hours=4), "decide",
         ("fin1", 1, "reject", "Такой доплаты нет в ставках: бонусы считаются по порогам месяца")),
        (now - timedelta(hours=3), "propose",
         ("sup3", "agent9", 50000, "Повторный выезд монтажника списан с агента по ошибке: адрес был верный")),
        (now - timedelta(days=1), "dispute",
         ("agent2", "Я подписала кв. 12 позавчера вечером, а в «Моих деньгах» её нет. Номер договора не успела записать.")),
        (now - timedelta(hours=20), "reply", ("sup1", "Проверяю с монтажниками, отвечу до вечера.")),
    ]
    return items


@contextmanager
def _acting(login: str):
    """Act as a demo person (their name goes into the ledger and the audit log)."""
    from flask import g

    from crm.actors import Actor

    user = users.find_by_login(login)
    saved = g.get("doorstep_actor")
    g.doorstep_actor = Actor(user.id, user.login)
    try:
        yield user
    finally:
        g.doorstep_actor = saved


def _close(month):
    from crm.finance import services

    with _acting("fin1") as user:
        services.close_period(user, month)


def _payout(month):
    from crm.finance import services

    with _acting("fin1") as user:
        services.record_payout(user, month)


def _propose(args):
    from crm.finance import services

    author, beneficiary, amount, reason = args
    with _acting(author) as user:
        services.propose_adjustment(user, beneficiary=users.find_by_login(beneficiary), amount=amount, reason=reason)


def _decide(args):
    from crm.finance import services
    from crm.finance.models import Adjustment

    decider, index, decision, reason = args  # index: the demo's n-th proposal
    adjustment = db.session.scalars(select(Adjustment).order_by(Adjustment.id).offset(index).limit(1)).one()
    with _acting(decider) as user:
        if decision == "approve":
            services.approve_adjustment(user, adjustment)
        else:
            services.reject_adjustment(user, adjustment, reason)


def _dispute(args):
    from crm.finance import services

    login, text = args
    with _acting(login) as user:
        services.open_dispute(user, text=text)


def _reply(args):
    from crm.finance import services
    from crm.finance.models import Dispute

    login, text = args
    dispute = db.session.scalars(select(Dispute).order_by(Dispute.id.desc())).first()
    with _acting(login) as user:
        services.post_message(user, dispute, text)


FINANCE_STEPS = {"close": _close, "payout": _payout, "propose": _propose, "decide": _decide, "dispute": _dispute,
                 "reply": _reply}


DEMO_VISITS = 2000


def seed_visits(now: datetime) -> None:
    """Three weeks of door visits in every outcome, through the sync's own service with the clock
    at each visit; every demo contract signed at a door its agent walks gets its ``signed`` visit."""
    from crm.contracts.models import Contract
    from crm.visits import services as visits
    from crm.visits.models import Visit
    from crm.errors import DomainError
    from territories.models import Building, ZoneAssignment

    if db.session.scalar(select(func.count()).select_from(Visit)):
        return
    rng = random.Random(57)
    for contract in db.session.scalars(select(Contract).order_by(Contract.id)):
        walks = db.session.scalar(select(ZoneAssignment.id).where(
            ZoneAssignment.agent_id == contract.agent_id, ZoneAssignment.zone_id == contract.building.zone_id))
        if walks:
            visits.link_signed_visit(contract, f"demo-signed-{contract.number}", "{}",
                                     *_near(rng, contract.building))
    outcomes = ["not_home"] * 30 + ["refused"] * 8 + ["not_interested"] * 10 + ["callback"] * 6 + ["lead"] * 5 \
        + ["already_subscriber"] * 8 + ["competitor"] * 6 + ["no_access"] * 5 + ["do_not_knock"] * 2
    walked: dict[int, list] = {}
    for agent_id, building in db.session.execute(
            select(ZoneAssignment.agent_id, Building).join(Building, Building.zone_id == ZoneAssignment.zone_id)
            .order_by(ZoneAssignment.agent_id, Building.id)):
        walked.setdefault(agent_id, []).append(building)
    agents = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(list(walked))))}
    start = now - timedelta(days=21)
    moments = sorted(start + timedelta(seconds=rng.uniform(0, (now - start).total_seconds() - 3600))
                     for _ in range(DEMO_VISITS))
    for i, at in enumerate(moments):
        local_hour = (at.hour + 5) % 24  # Yekaterinburg: knock between 10:00 and 21:00 local
        if not 10 <= local_hour < 21:
            at = at.replace(hour=(rng.randint(10, 20) - 5) % 24)
        agent_id = rng.choice(list(walked))
        building = rng.choice(walked[agent_id])
        outcome = rng.choice(outcomes)
        lat, lon, accuracy = _near(rng, building)
        item = {"client_id": f"demo-visit-{i:05d}", "building_id": building.id,
                "flat": rng.randint(1, building.apartments), "outcome": outcome, "at": at.isoformat(),
                "gps": {"lat": lat, "lon": lon, "accuracy": accuracy} if lat is not None else None}
        if outcome == "callback":
            item["callback_at"] = (at + timedelta(days=rng.randint(1, 5), hours=rng.randint(0, 6))).isoformat()
        elif outcome == "lead":
            item["phone"] = f"+7912{rng.randint(0, 9999999):07d}"
        elif outcome == "competitor":
            item["competitor"] = rng.choice(["Ростелеком", "МТС", "Билайн", "Дом.ру", "ЭР-Телеком"])
        with _clock_at(at + timedelta(minutes=rng.randint(1, 120))):
            try:
                with db.session.begin_nested():
                    visits.record_visit(agents[agent_id], item)
            except DomainError:  # a door locked earlier in the story: the agent moves on
                continue
    db.session.flush()


def seed_plans(now: datetime) -> None:
    """The sales head's plans for last month and this one (teams and agents)."""
    from crm.clock import company_zone
    from crm.dashboards import services as plans
    from crm.dashboards.models import Plan
    from crm.finance import core

    if db.session.scalar(select(func.count()).select_from(Plan)):
        return
    rng = random.Random(7)
    this = core.period_of(now, company_zone())
    with _acting("head") as head:
        for period in (core.previous_period(this), this):
            for user in plans.planned_people(head):
                if user.role == "agent":
                    contracts = rng.choice([7, 8, 9, 10])
                    plans.set_plan(head, user=user, period=period, contracts=contracts,
                                   activations=contracts - rng.choice([2, 3]))
                else:
                    plans.set_plan(head, user=user, period=period, contracts=32, activations=22)
    db.session.flush()


def _near(rng: random.Random, building) -> tuple:
    """A phone fix near the building: mostly good, sometimes poor, sometimes none (flags)."""
    roll = rng.random()
    if roll < 0.05:
        return None, None, None
    spread = 0.0004 if roll < 0.85 else 0.004
    return (round(building.lat + rng.uniform(-spread, spread), 6), round(building.lon + rng.uniform(-spread, spread), 6),
            round(rng.uniform(5, 40) if roll < 0.92 else rng.uniform(120, 400), 1))


FIRST = ["Александр", "Мария", "Сергей", "Елена", "Дмитрий", "Ольга", "Андрей", "Татьяна", "Алексей", "Наталья",
         "Иван", "Светлана", "Павел", "Ксения", "Николай", "Юлия"]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
        "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров"]


def _resident(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if first[-1] in "аяи" and first not in ("Никита",):
        last = last + "а"
    return f"{first} {last}"


def seed() -> dict[str, int]:
    """Create whatever part of the demo is missing; return what the demo holds."""
    from crm.catalogue.models import Tariff
    from crm.contracts.models import Contract
    from crm.finance.models import PeriodClose
    from crm.ledger.models import LedgerEntry, RateVersion
    from crm.visits.models import Visit
    from territories.models import Building, Territory, Zone

    seed_people()
    db.session.flush()
    seed_money(get_clock().now())
    db.session.flush()
    seed_visits(get_clock().now())
    db.session.flush()
    seed_plans(get_clock().now())

    def count(model):
        return db.session.scalar(select(func.count()).select_from(model))

    return {"users": count(User), "buildings": count(Building), "territories": count(Territory),
            "zones": count(Zone), "tariffs": count(Tariff),
            "rate versions": count(RateVersion), "contracts": count(Contract), "ledger entries": count(LedgerEntry),
            "visits": count(Visit), "closed periods": count(PeriodClose)}

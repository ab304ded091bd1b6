"""A small priced world for contract and ledger tests: catalogue, rates, buildings."""
from __future__ import annotations

from datetime import timedelta

from tests.helpers import operator

RATES = {"agent": {"tariffs": {"net100": 150000, "net300": 200000, "net500": 250000},
                   "addons": {"tv": 20000, "phone": 10005}},
         "supervisor_override_percent": "10", "clawback_days": 60,
         "tiers": [{"activations": 30, "bonus_per_activation": 10000},
                   {"activations": 50, "bonus_per_activation": 15000}]}


def build_world(app, clock, *, rates=True, buildings=3):
    from crm.catalogue import services as catalogue
    from crm.ledger import services as ledger
    from territories.models import Building

    with operator(app) as session:
        catalogue.add_tariff(None, code="net100", name="Домашний 100", kind="internet", monthly_fee=50000, speed_mbit=100)
        catalogue.add_tariff(None, code="net300", name="Домашний 300", kind="internet", monthly_fee=70000, speed_mbit=300)
        catalogue.add_tariff(None, code="net500", name="Домашний 500", kind="internet", monthly_fee=90000, speed_mbit=500)
        catalogue.add_tariff(None, code="tv", name="ТВ", kind="tv", monthly_fee=30000, is_addon=True)
        catalogue.add_tariff(None, code="phone", name="Телефон", kind="phone", monthly_fee=15000, is_addon=True)
        if rates:
            ledger.add_rate_version(None, {**RATES, "effective_from": clock.now().isoformat()})
        for i in range(1, buildings + 1):
            session.add(Building(external_id=f"b{i}", address=f"ул. Ленина, {i}", lat=56.83 + i / 1000, lon=60.6,
                                 apartments=60, entrances=3, floors=5, connected_at=clock.now() - timedelta(days=30),
                                 created_at=clock.now()))


def sign(app, clock, agent="agent1", building="b1", flat=1, tariff="net100", addons=(), at=None, actor=None, **kw):
    from sqlalchemy import select

    from crm.contracts import services
    from crm.users.services import find_by_login
    from territories.models import Building

    with operator(app) as session:
        contract, _ = services.sign(
            find_by_login(actor) if actor else None, agent=find_by_login(agent),
            building=session.scalars(select(Building).where(Building.external_id == building)).first(), flat=flat,
            subscriber_name="Иван Петров", phone="8 (912) 345-67-89", tariff_code=tariff, addon_codes=list(addons),
            adult_confirmed=True, at=at or clock.now(), **kw)
        return contract.number


def event(app, number, name, at, key=None, reason=None):
    from sqlalchemy import select

    from crm.contracts import services
    from crm.contracts.models import Contract

    with operator(app) as session:
        contract = session.scalars(select(Contract).where(Contract.number == number)).first()
        return services.apply_event(contract, event=name, at=at, reason=reason or ("test" if name == "cancelled" else None),
                                    event_key=key or f"test:{number}:{name}:{at.isoformat()}")


def entries(app, number=None):
    from sqlalchemy import select

    from crm.contracts.models import Contract
    from crm.extensions import db
    from crm.ledger.models import LedgerEntry

    with app.app_context():
        q = select(LedgerEntry).order_by(LedgerEntry.position)
        if number:
            q = q.where(LedgerEntry.contract_id == select(Contract.id).where(Contract.number == number).scalar_subquery())
        return [(e.kind, e.bucket, e.beneficiary.login, e.amount) for e in db.session.scalars(q)]


def balances(app, login):
    from crm.ledger import services as ledger
    from crm.users.services import find_by_login

    with app.app_context():
        uid = find_by_login(login).id
        return ledger.balances([uid])[uid]


SQUARE = '{"type": "Polygon", "coordinates": [[[60, 56], [61, 56], [61, 57], [60, 56]]]}'


def territory_with_zone(session, clock, *, supervisor: str, name: str, zone: str, buildings=(), agent: str | None = None):
    """A territory of ``supervisor`` (in the demo head's region) with one zone holding ``buildings``
    (external ids), walked by ``agent`` from a month ago. Rows written directly: the geometry
    services are tested in test_territories.py. Returns (territory, zone)."""
    from datetime import timedelta

    from sqlalchemy import select

    from crm.users.services import find_by_login
    from territories.models import Building, Territory, Zone, ZoneAssignment

    head, sup = find_by_login("head"), find_by_login(supervisor)
    t = Territory(name=name, region_id=head.id, supervisor_id=sup.id, geometry=SQUARE, created_at=clock.now(),
                  updated_at=clock.now())
    session.add(t)
    session.flush()
    z = Zone(name=zone, territory_id=t.id, geometry=SQUARE, created_at=clock.now(), updated_at=clock.now())
    session.add(z)
    session.flush()
    for building in session.scalars(select(Building).where(Building.external_id.in_(list(buildings)))):
        building.territory_id, building.zone_id = t.id, z.id
    if agent:
        session.add(ZoneAssignment(zone_id=z.id, agent_id=find_by_login(agent).id,
                                   valid_from=clock.now().date() - timedelta(days=30), assigned_by_id=sup.id,
                                   created_at=clock.now()))
    session.flush()
    return t, z

"""Signing, the lifecycle and the two-phase entries each event writes (PRODUCT.md §3, §4)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm.errors import Conflict, DomainError
from tests.helpers import csrf_token, login, operator, post
from tests.money import balances, build_world, entries, event, sign


@pytest.fixture
def world(demo_app, clock):
    build_world(demo_app, clock)
    return demo_app


def test_signing_locks_the_rate_and_accrues_pending_for_agent_and_supervisor(world, clock):
    number = sign(world, clock, tariff="net300", addons=["tv", "phone"])
    x = 200000 + 20000 + 10005
    o = 23001  # 10 % of 230005 = 23000.5 → half-up
    assert entries(world, number) == [("accrual", "pending", "agent1", x), ("override", "pending", "sup1", o)]
    assert balances(world, "agent1") == {"pending": x, "payable": 0}
    with world.app_context():
        from crm.contracts.models import Contract
        from crm.extensions import db

        contract = db.session.scalars(select(Contract).where(Contract.number == number)).one()
        assert contract.rate_version_id == 1 and contract.phone == "+79123456789"
        assert contract.supervisor.login == "sup1" and contract.monthly_fee == 70000 + 30000 + 15000
        assert contract.number.startswith("D-2026-")


def test_activation_releases_pending_and_earns_payable_copying_amounts(world, clock):
    number = sign(world, clock)
    clock.advance(days=2)
    status, answer = event(world, number, "activated", clock.now())
    assert status == 201 and answer["status"] == "activated"
    assert entries(world, number)[2:] == [("release", "pending", "agent1", -150000),
                                          ("earned", "payable", "agent1", 150000),
                                          ("release", "pending", "sup1", -15000),
                                          ("earned", "payable", "sup1", 15000)]
    assert balances(world, "agent1") == {"pending": 0, "payable": 150000}
    assert balances(world, "sup1") == {"pending": 0, "payable": 15000}


def test_cancellation_voids_before_activation_claws_back_inside_the_window_and_nothing_after(world, clock):
    t0 = clock.now()
    early = sign(world, clock, flat=1)
    inside = sign(world, clock, flat=2)
    late = sign(world, clock, flat=3)
    clock.advance(days=70)
    event(world, early, "paid", t0 + timedelta(hours=1))
    event(world, early, "cancelled", t0 + timedelta(hours=2))
    assert entries(world, early)[2:] == [("void", "pending", "agent1", -150000), ("void", "pending", "sup1", -15000)]

    event(world, inside, "activated", t0 + timedelta(days=1))
    event(world, inside, "cancelled", t0 + timedelta(days=61))  # exactly 60 days after activation: inside
    assert entries(world, inside)[-2:] == [("clawback", "payable", "agent1", -150000),
                                           ("clawback", "payable", "sup1", -15000)]

    event(world, late, "activated", t0 + timedelta(days=1))
    event(world, late, "cancelled", t0 + timedelta(days=61, seconds=1))  # a second past the window: no entry
    assert [k for k, *_ in entries(world, late)] == ["accrual", "override", "release", "earned", "release", "earned"]
    assert balances(world, "agent1") == {"pending": 0, "payable": 150000}


def test_one_active_contract_per_flat_names_the_first_and_frees_the_flat_on_cancel(world, clock):
    first = sign(world, clock, flat=57)
    with pytest.raises(Conflict) as err:
        sign(world, clock, agent="agent5", flat=57)
    assert first in str(err.value.message) and "agent1" in str(err.value.message)
    event(world, first, "cancelled", clock.now())
    second = sign(world, clock, agent="agent5", flat=57)
    assert second != first


def test_the_database_itself_refuses_a_second_active_contract(world, clock, demo_db_url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    from crm.database import normalise_url

    sign(world, clock, flat=9)
    engine = create_engine(normalise_url(demo_db_url))
    with engine.begin() as conn:
        row = dict(conn.execute(text("SELECT * FROM contracts")).mappings().one())
    row.update(id=999, number="D-2026-999999", client_id=None)
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO contracts ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)
    engine.dispose()


def test_signing_validates_everything_and_writes_nothing_when_refused(world, clock):
    from crm.contracts import services
    from crm.users.services import find_by_login
    from territories.models import Building

    cases = [
        (dict(flat=61), "bad_flat"), (dict(flat=0), "bad_flat"), (dict(phone="12"), "bad_phone"),
        (dict(adult_confirmed=False), "not_adult"), (dict(tariff_code="tv"), "bad_tariff"),
        (dict(addon_codes=["net100"]), "bad_addon"), (dict(subscriber_name="  "), "bad_name"),
        (dict(at=clock.now() + timedelta(minutes=6)), "bad_time"),
        (dict(at=clock.now() - timedelta(hours=73)), "bad_time"),
    ]
    for override, code in cases:
        with world.app_context():
            from crm.extensions import db

            args = dict(agent=find_by_login("agent1"), building=db.session.scalars(select(Building)).first(), flat=5,
                        subscriber_name="Анна", phone="+7 912 345 67 89", tariff_code="net100", addon_codes=[],
                        adult_confirmed=True, at=clock.now())
            args.update(override)
            with pytest.raises(DomainError) as err:
                services.sign(None, **args)
            assert err.value.code == code, override
            db.session.rollback()
    assert entries(world) == []


def test_a_replayed_client_id_returns_the_same_contract(world, clock):
    first = sign(world, clock, flat=4, client_id="c-1")
    again = sign(world, clock, flat=4, client_id="c-1")
    assert first == again and len(entries(world)) == 2


def test_no_rate_in_force_accepts_the_contract_with_no_entries_and_alerts_the_sales_head(demo_app, clock):
    build_world(demo_app, clock, rates=False)
    number = sign(demo_app, clock)
    assert entries(demo_app) == []
    client = demo_app.test_client()
    login(client, "head")
    home = client.get("/home").get_data(as_text=True)
    assert 'id="no-rate-alert"' in home
    listing = client.get("/contracts?no_rate=1").get_data(as_text=True)
    assert number in listing
    event(demo_app, number, "activated", clock.now())
    assert entries(demo_app) == []


def test_new_versions_are_never_retroactive(world, clock):
    from crm.ledger import services as ledger
    from tests.money import RATES

    old = sign(world, clock, flat=1)
    before = entries(world)
    start = clock.now() + timedelta(days=10)
    with operator(world):
        ledger.add_rate_version(None, {**RATES, "effective_from": start.isoformat(),
                                       "agent": {"tariffs": {"net100": 1, "net300": 2, "net500": 3},
                                                 "addons": {"tv": 4, "phone": 5}}})
    # a replacement for the same start recorded later wins
    clock.advance(days=1)
    with operator(world):
        ledger.add_rate_version(None, {**RATES, "effective_from": start.isoformat(),
                                       "agent": {"tariffs": {"net100": 100, "net300": 2, "net500": 3},
                                                 "addons": {"tv": 4, "phone": 5}}})
    assert entries(world) == before
    clock.advance(days=10)
    event(world, old, "activated", clock.now())
    assert entries(world, old)[-1] == ("earned", "payable", "sup1", 15000)  # old contract, old rates
    new = sign(world, clock, flat=2)
    assert entries(world, new)[0] == ("accrual", "pending", "agent1", 100)


def test_past_or_incomplete_rate_versions_are_refused(world, clock):
    from crm.ledger import services as ledger
    from tests.money import RATES

    with world.app_context():
        with pytest.raises(DomainError) as err:
            ledger.add_rate_version(None, {**RATES, "effective_from": (clock.now() - timedelta(seconds=1)).isoformat()})
        assert err.value.code == "past"
        incomplete = json.loads(json.dumps(RATES))
        del incomplete["agent"]["addons"]["phone"]
        with pytest.raises(DomainError) as err:
            ledger.add_rate_version(None, {**incomplete, "effective_from": clock.now().isoformat()})
        assert err.value.code == "missing_amounts" and "phone" in str(err.value.message)
        for bad in ({"supervisor_override_percent": "101"}, {"supervisor_override_percent": "1.234"},
                    {"clawback_days": -1}, {"tiers": [{"activations": 0, "bonus_per_activation": 1}]},
                    {"agent": {"tariffs": {"net100": 1.5}}},
                    {"agent": {"tariffs": {"net100": 2**64, "net300": 1, "net500": 1}, "addons": {"tv": 1, "phone": 1}}},
                    {"tiers": [{"activations": 30, "bonus_per_activation": 2**63}]}):
            with pytest.raises(DomainError):
                ledger.add_rate_version(None, {**RATES, "effective_from": clock.now().isoformat(), **bad})


def test_sales_head_records_events_from_the_page_supervisor_may_not(world, clock):
    number = sign(world, clock)
    sup = world.test_client()
    login(sup, "sup1")
    page = sup.get(f"/contracts/{number}")
    assert page.status_code == 200 and f'action="/contracts/{number}/events"' not in page.get_data(as_text=True)
    assert post(sup, f"/contracts/{number}/events", {"event": "activated", "reason": "x"}).status_code == 403
    head = world.test_client()
    login(head, "head")
    assert f'action="/contracts/{number}/events"' in head.get(f"/contracts/{number}").get_data(as_text=True)
    response = post(head, f"/contracts/{number}/events", {"event": "activated", "reason": "installer called"},
                    token_from=f"/contracts/{number}")
    assert response.status_code == 302
    assert balances(world, "agent1")["payable"] == 150000


def test_contract_pages_are_scoped(world, clock):
    number = sign(world, clock)
    for who, status in (("agent1", 200), ("agent2", 404), ("sup1", 200), ("sup2", 404), ("head", 200),
                        ("fin1", 200), ("admin", 404)):
        client = world.test_client()
        login(client, who)
        assert client.get(f"/contracts/{number}").status_code == status, who


def test_money_page_shows_entries_balances_pipeline_and_head(world, clock):
    number = sign(world, clock)
    client = world.test_client()
    login(client, "agent1")
    html = client.get("/money").get_data(as_text=True)
    assert number in html and "1500.00" in html and 'id="ledger-head">2:' in html
    with world.app_context():
        from crm.users.services import find_by_login

        other = find_by_login("agent2").id
        own_sup = find_by_login("sup1").id
    assert client.get(f"/money?user={other}").status_code == 404
    assert client.get(f"/money?user={own_sup}").status_code == 404
    sup = world.test_client()
    login(sup, "sup1")
    assert "150.00" in sup.get("/money").get_data(as_text=True)  # own override
    with world.app_context():
        agent1 = find_by_login("agent1").id
        stranger = find_by_login("agent5").id
    assert number in sup.get(f"/money?user={agent1}").get_data(as_text=True)
    assert sup.get(f"/money?user={stranger}").status_code == 404

"""Dashboards: every figure against an independent computation over a generated history
(PRODUCT.md §3 definitions), edge cases (an empty month, an agent moved mid-month,
cancelled contracts), scope, plans and the pages.

The history is generated here from a seeded random source; contracts go through the real
signing and event services, visits are inserted as rows (their validation is tested in
test_visits.py). Expected figures are computed in plain Python from the generated lists.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tests.conftest import START
from tests.helpers import login, operator, post, user_id
from tests.money import build_world, event, sign, territory_with_zone

UTC = timezone.utc
NOV = (datetime(2026, 10, 31, 19, tzinfo=UTC), datetime(2026, 11, 30, 19, tzinfo=UTC))  # local month bounds
OUTCOMES = ["not_home"] * 6 + ["no_access", "refused", "not_interested", "callback", "lead", "already_subscriber",
                                "competitor", "competitor", "do_not_knock"]
COMPETITORS = ["МТС", "мтс ", "Билайн", "Ростелеком"]
REASONS = ["переезд", "передумал", " переезд"]


def in_nov(at):
    return NOV[0] <= at < NOV[1]


@pytest.fixture
def history(demo_app, clock):
    """Five buildings in two zones of sup1's and sup2's territories; agents 1–6 at work in
    October and November; agent3 moves from sup1 to sup2 on 15 November."""
    app = demo_app
    build_world(app, clock, buildings=5)
    from crm.users.services import find_by_login, move_agent
    from crm.visits.models import Visit
    from territories.models import Building

    with operator(app) as session:
        territory_with_zone(session, clock, supervisor="sup1", name="T1", zone="Z-T1", buildings=["b1", "b2", "b3"])
        territory_with_zone(session, clock, supervisor="sup2", name="T2", zone="Z-T2", buildings=["b4", "b5"])

    rng = random.Random(20261120)
    agents = ["agent1", "agent2", "agent3", "agent5", "agent6"]
    team = {"agent1": "sup1", "agent2": "sup1", "agent3": "sup1", "agent5": "sup2", "agent6": "sup2"}
    move_at = datetime(2026, 11, 15, 6, tzinfo=UTC)
    visits, contracts = [], []
    start = datetime(2026, 10, 20, tzinfo=UTC)
    moments = sorted(start + timedelta(minutes=rng.randint(0, 60 * 24 * 45)) for _ in range(260))
    taken = set()
    moved = False
    for i, at in enumerate(moments):
        if not moved and at >= move_at:
            with operator(app):
                move_agent(None, find_by_login("agent3"), find_by_login("sup2"))
            team["agent3"] = "sup2"
            moved = True
        agent = rng.choice(agents)
        building = f"b{rng.randint(1, 5)}"
        flat = rng.randint(1, 60)
        if rng.random() < 0.18 and (building, flat) not in taken:  # a signing, through the real services
            taken.add((building, flat))
            clock.set(at)
            tariff = rng.choice(["net100", "net300", "net500"])
            addons = [a for a in ("tv", "phone") if rng.random() < 0.4]
            number = sign(app, clock, agent=agent, building=building, flat=flat, tariff=tariff, addons=addons)
            contracts.append({"number": number, "agent": agent, "sup": team[agent], "at": at, "tariff": tariff,
                              "addons": addons, "building": building, "flat": flat, "activated": None,
                              "cancelled": None, "reason": None})
            continue
        outcome = rng.choice(OUTCOMES)
        visits.append({"agent": agent, "sup": team[agent], "at": at, "outcome": outcome, "building": building,
                       "flat": flat, "flagged": rng.random() < 0.1,
                       "competitor": rng.choice(COMPETITORS) if outcome == "competitor" else None})
    clock.set(datetime(2026, 12, 20, tzinfo=UTC))
    for c in contracts:  # lifecycles: activations, cancellations before and after activation
        roll = rng.random()
        if roll < 0.55:
            c["activated"] = c["at"] + timedelta(days=rng.randint(1, 12))
            event(app, c["number"], "activated", c["activated"])
            if rng.random() < 0.2:
                c["cancelled"], c["reason"] = c["activated"] + timedelta(days=3), rng.choice(REASONS)
        elif roll < 0.75:
            c["cancelled"], c["reason"] = c["at"] + timedelta(days=2), rng.choice(REASONS)
        if c["cancelled"]:
            event(app, c["number"], "cancelled", c["cancelled"], reason=c["reason"])
    with operator(app) as session:
        ids = {login: user_id(app, login) for login in ("agent1", "agent2", "agent3", "agent5", "agent6", "sup1",
                                                        "sup2")}
        bids = {b.external_id: b.id for b in session.scalars(select(Building))}
        for i, v in enumerate(visits):
            session.add(Visit(client_id=f"gen-{i}", agent_id=ids[v["agent"]], supervisor_id=ids[v["sup"]],
                              building_id=bids[v["building"]], flat=v["flat"], outcome=v["outcome"], at=v["at"],
                              recorded_at=v["at"], gps_colour="red" if v["flagged"] else "green",
                              flagged=v["flagged"], competitor=v["competitor"], request="{}"))
    assert moved and contracts and visits
    return app, visits, contracts, ids


def expected_funnel(visits, contracts, keep):
    vs = [v for v in visits if in_nov(v["at"]) and keep(v)]
    cs = [c for c in contracts if keep(c)]
    return {"knocked": len(vs),
            "contacts": sum(v["outcome"] not in ("not_home", "no_access") for v in vs),
            "leads": sum(v["outcome"] in ("lead", "callback", "signed") for v in vs),
            "contracts": sum(in_nov(c["at"]) for c in cs),
            "activations": sum(bool(c["activated"]) and in_nov(c["activated"]) for c in cs)}


def scope_for(app, login_name, period="2026-11", **kw):
    from crm.dashboards import figures
    from crm.users.services import find_by_login

    return figures.make_scope(find_by_login(login_name), period, **kw)


def test_funnel_and_leaderboard_equal_an_independent_count(history):
    app, visits, contracts, ids = history
    from crm.dashboards import figures

    with app.app_context():
        assert figures.funnel(scope_for(app, "head")) == expected_funnel(visits, contracts, lambda r: True)
        for sup in ("sup1", "sup2"):  # work counts for the team it was done in (agent3 moved on the 15th)
            got = figures.funnel(scope_for(app, sup))
            assert got == expected_funnel(visits, contracts, lambda r, s=sup: r["sup"] == s), sup
        board = {r.agent.login: r for r in figures.leaderboard(scope_for(app, "sup1"))}
    nov = [v for v in visits if in_nov(v["at"]) and v["sup"] == "sup1"]
    for agent in ("agent1", "agent2", "agent3"):
        mine = [v for v in nov if v["agent"] == agent]
        signed = [c for c in contracts if c["agent"] == agent and c["sup"] == "sup1"]
        row = board.get(agent)
        expected = (len(mine), sum(v["outcome"] not in ("not_home", "no_access") for v in mine),
                    sum(v["flagged"] for v in mine), sum(in_nov(c["at"]) for c in signed),
                    sum(bool(c["activated"]) and in_nov(c["activated"]) for c in signed),
                    sum(bool(c["cancelled"]) and in_nov(c["cancelled"]) for c in signed))
        if row is None:
            assert expected == (0, 0, 0, 0, 0, 0), agent
            continue
        assert (row.knocked, row.contacts, row.flagged, row.contracts, row.activations, row.cancellations) == expected
    assert "agent5" not in board  # another team's agent never appears
    # agent3's November is split between the two teams and adds up
    with app.app_context():
        halves = [figures.funnel(scope_for(app, "head", team=ids[s], agent=ids["agent3"])) for s in ("sup1", "sup2")]
        whole = figures.funnel(scope_for(app, "agent3"))
    assert {k: halves[0][k] + halves[1][k] for k in whole} == whole


def test_plan_vs_fact_sales_mix_competitors_cancellations_and_no_rate(history):
    app, visits, contracts, ids = history
    from crm.dashboards import figures, services
    from crm.users.services import find_by_login

    with operator(app):
        head = find_by_login("head")
        services.set_plan(head, user=find_by_login("sup1"), period="2026-11", contracts=20, activations=10)
        services.set_plan(head, user=find_by_login("agent1"), period="2026-11", contracts=5, activations=3)
    nov_signed = [c for c in contracts if in_nov(c["at"])]
    with app.app_context():
        s = scope_for(app, "head")
        pf = {row.user.login: (row.plan.contracts if row.plan else None, row.contracts, row.activations)
              for row in figures.plan_vs_fact(s)}
        for sup in ("sup1", "sup2", "sup3"):
            mine = [c for c in contracts if c["sup"] == sup]
            assert pf[sup][1:] == (sum(in_nov(c["at"]) for c in mine),
                                   sum(bool(c["activated"]) and in_nov(c["activated"]) for c in mine))
        assert pf["sup1"][0] == 20 and pf["sup2"][0] is None

        total, tariffs, addons = figures.tariff_mix(s)
        assert total == len(nov_signed)
        assert {t.key: t.count for t in tariffs} == dict(Counter(c["tariff"] for c in nov_signed))
        assert {a.key: a.count for a in addons} == dict(Counter(a for c in nov_signed for a in c["addons"]))

        contacts, named, shares = figures.competitor_share(s)
        nov = [v for v in visits if in_nov(v["at"])]
        assert contacts == sum(v["outcome"] not in ("not_home", "no_access") for v in nov)
        names = Counter(v["competitor"].strip().casefold() for v in nov if v["outcome"] == "competitor")
        assert named == sum(names.values()) and {x.key: x.count for x in shares} == dict(names)

        cancelled = [c for c in contracts if c["cancelled"] and in_nov(c["cancelled"])]
        got = {c.key: (c.count, c.extra["after_activation"]) for c in figures.cancellations_by_reason(s)}
        want = defaultdict(lambda: [0, 0])
        for c in cancelled:
            want[c["reason"].strip()][0] += 1
            want[c["reason"].strip()][1] += bool(c["activated"])
        assert got == {k: tuple(v) for k, v in want.items()}
        # the rate version starts at START (build_world): earlier signings carry "no rate"
        assert figures.no_rate(s) == sum(c["at"] < START for c in nov_signed) > 0

        agent1 = figures.own_progress(scope_for(app, "agent1"), find_by_login("agent1"))
        mine = [c for c in contracts if c["agent"] == "agent1"]
        assert (agent1.plan.contracts, agent1.contracts, agent1.activations) == (
            5, sum(in_nov(c["at"]) for c in mine), sum(bool(c["activated"]) and in_nov(c["activated"]) for c in mine))


def test_penetration_by_zone_at_the_end_of_the_month(history):
    app, visits, contracts, ids = history
    from crm.dashboards import figures

    end = NOV[1]
    penetrated = defaultdict(set)
    for c in contracts:
        if c["at"] < end and not (c["cancelled"] and c["cancelled"] < end):
            penetrated["T1" if c["building"] in ("b1", "b2", "b3") else "T2"].add((c["building"], c["flat"]))
    for v in visits:
        if v["outcome"] == "already_subscriber" and v["at"] < end:
            penetrated["T1" if v["building"] in ("b1", "b2", "b3") else "T2"].add((v["building"], v["flat"]))
    with app.app_context():
        got = {z.group: (z.flats, z.penetrated) for z in figures.penetration_by_zone(scope_for(app, "head"))}
        sup1 = [z.group for z in figures.penetration_by_zone(scope_for(app, "sup1"))]
    assert got == {"T1": (180, len(penetrated["T1"])), "T2": (120, len(penetrated["T2"]))}
    assert sup1 == ["T1"]


def test_an_empty_month_is_all_zeros_and_records_follow_the_figures(history):
    app, visits, contracts, ids = history
    from crm.dashboards import figures

    with app.app_context():
        empty = scope_for(app, "head", period="2026-08")
        assert figures.funnel(empty) == dict.fromkeys(figures.FUNNEL, 0)
        assert figures.leaderboard(empty) == [] and figures.competitor_share(empty) == (0, 0, [])
        assert figures.tariff_mix(empty) == (0, [], []) and figures.cancellations_by_reason(empty) == []
        s = scope_for(app, "sup2")
        counts = figures.funnel(s)
        for figure in ("knocked", "contacts", "leads", "contracts", "activations"):
            kind, q = figures.records(s, figure)
            assert len(app.extensions["sqlalchemy"].session.scalars(q).all()) == counts[figure], figure


def test_pages_respect_scope(history):
    app, visits, contracts, ids = history
    expected = {  # path → {login: status}
        "/dashboard?period=2026-11": {"head": 200, "fin1": 200, "sup1": 302, "agent1": 302, "admin": 403},
        "/dashboard/team?period=2026-11": {"sup1": 200, "head": 200, "fin1": 200, "agent1": 403, "admin": 403},
        f"/dashboard/team?period=2026-11&supervisor={ids['sup2']}": {"sup1": 404, "head": 200, "sup2": 200},
        f"/dashboard/team?period=2026-11&agent={ids['agent5']}": {"sup1": 404, "sup2": 200},
        "/dashboard/me?period=2026-11": {"agent1": 200, "sup1": 403},
        f"/dashboard/records?figure=contracts&period=2026-11&team={ids['sup2']}": {"sup1": 404, "head": 200},
        f"/dashboard/records?figure=contracts&period=2026-11&agent={ids['agent5']}": {"agent1": 404, "sup2": 200},
        "/dashboard/records?figure=nonsense&period=2026-11": {"head": 404},
        "/dashboard?period=2026-13": {"head": 404},
        "/plans?period=2026-11": {"head": 200, "sup1": 403, "fin1": 403, "agent1": 403},
    }
    seen = {}
    for path, by_login in expected.items():
        for who in by_login:
            client = app.test_client()
            login(client, who)
            seen[(path, who)] = client.get(path).status_code
    assert seen == {(p, w): s for p, by in expected.items() for w, s in by.items()}
    client = app.test_client()
    login(client, "sup1")
    page = client.get("/dashboard/team?period=2026-11").get_data(as_text=True)
    assert "agent1" in page and "agent5" not in page and "<svg" in page
    records = client.get("/dashboard/records?figure=contracts&period=2026-11").get_data(as_text=True)
    theirs = [c["number"] for c in contracts if c["sup"] == "sup2" and in_nov(c["at"])]
    mine = [c["number"] for c in contracts if c["sup"] == "sup1" and in_nov(c["at"])]
    assert all(n in records for n in mine) and not any(n in records for n in theirs)


def test_plans_page_saves_validates_and_audits(history):
    app, *_ = history
    ids = history[3]
    client = app.test_client()
    login(client, "head")
    bad = post(client, "/plans?period=2026-12", {f"contracts_{ids['sup1']}": "ten"}, token_from="/plans")
    assert bad.status_code == 422
    r = post(client, "/plans?period=2026-12", {f"contracts_{ids['sup1']}": "30", f"activations_{ids['sup1']}": "20",
                                               f"contracts_{ids['agent1']}": "8"}, token_from="/plans")
    assert r.status_code == 302
    again = post(client, "/plans?period=2026-12", {f"contracts_{ids['sup1']}": "30", f"activations_{ids['sup1']}": "20"},
                 token_from="/plans", follow_redirects=True)
    assert again.status_code == 200
    with app.app_context():
        from crm.audit.models import AuditEvent
        from crm.dashboards.models import Plan
        from crm.extensions import db

        plans = {(p.user.login, p.contracts, p.activations) for p in db.session.scalars(
            select(Plan).where(Plan.period == "2026-12"))}
        assert plans == {("sup1", 30, 20), ("agent1", 8, 0)}
        assert db.session.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "plan.set")).all() == [
            "2026-12:sup1", "2026-12:agent1"]  # the unchanged resubmission wrote nothing
    sup = app.test_client()
    login(sup, "sup1")
    assert post(sup, "/plans?period=2026-12", {f"contracts_{ids['agent1']}": "99"}, token_from="/home").status_code == 403

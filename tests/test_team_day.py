"""The supervisor's team day (``/team``), flagged visits (``/team/flags``) and locked doors (``/team/locks``).

World (see tests/test_territories.py): T1 (sup1) with zones W (agent1) and E (agent2),
T2 (sup2) with zone Z2 (agent5). The clock stands at 2026-11-20 09:00 UTC = 14:00 in
Yekaterinburg (UTC+5), so the company day 2026-11-20 runs from 2026-11-19 19:00 UTC.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.helpers import csrf_token, login, operator
from tests.test_territories import IN_EAST, IN_WEST, IN_Z2, arrive, feature, make_world, u, zone_id

METRES_PER_DEGREE_LAT = 111_195.0
NOT_CONTACTS = {"not_home", "no_access"}  # the funnel of PRODUCT.md §3, written out independently
LEADS = {"lead", "callback", "signed"}


@pytest.fixture
def team_app(demo_app, clock):
    """The demo app with the team blueprint (registered here until app.py does it)."""
    if "team" not in demo_app.blueprints:
        from crm.visits.team import bp

        demo_app.register_blueprint(bp)
    make_world(demo_app)
    arrive(demo_app, feature("west", *IN_WEST), feature("east", *IN_EAST), feature("z2", *IN_Z2))
    from crm.catalogue import services as catalogue
    from crm.extensions import db
    from territories import services
    from territories.models import Zone

    now = clock.now()
    clock.set(now - timedelta(days=1))  # walking since yesterday (an assignment cannot start in the past)
    with operator(demo_app):
        for zone, agent in (("W", "agent1"), ("E", "agent2"), ("Z2", "agent5")):
            services.assign_zone(None, db.session.get(Zone, zone_id(zone)), u(agent))
    clock.set(now)
    with operator(demo_app):
        catalogue.add_tariff(None, code="net100", name="Домашний 100", kind="internet", monthly_fee=50000,
                             speed_mbit=100)
    return demo_app


def building(app, external_id):
    from crm.extensions import db
    from territories.models import Building

    with app.app_context():
        b = db.session.scalar(select(Building).where(Building.external_id == external_id))
        return {"id": b.id, "lat": b.lat, "lon": b.lon}


def gps(b, metres_north=5.0, accuracy=10.0):
    return {"lat": b["lat"] + metres_north / METRES_PER_DEGREE_LAT, "lon": b["lon"], "accuracy": accuracy}


class Field:
    """Sends items as the phone's sync does (through the services, as the agent) and keeps what it sent."""

    def __init__(self, app):
        self.app = app
        self.sent: list[tuple[str, dict]] = []
        self.n = 0

    def send(self, agent_login, item):
        from crm.actors import Actor, set_actor
        from crm.extensions import db
        from crm.visits import services

        self.n += 1
        item = {"client_id": f"team-{self.n}", **item}
        with self.app.app_context():
            agent = u(agent_login)
            set_actor(Actor(agent.id, agent.login))
            if item["type"] == "visit":
                services.record_visit(agent, item)
            else:
                services.record_contract(agent, item)
            db.session.commit()
        self.sent.append((agent_login, item))
        return item

    def visit(self, agent_login, b, flat, outcome, at, gps_fix="near", **extra):
        fix = gps(b) if gps_fix == "near" else gps_fix
        return self.send(agent_login, {"type": "visit", "building_id": b["id"], "flat": flat, "outcome": outcome,
                                       "at": at.isoformat(), "gps": fix, **extra})

    def contract(self, agent_login, b, flat, at):
        return self.send(agent_login, {"type": "contract", "building_id": b["id"], "flat": flat,
                                       "subscriber": {"name": "Иван Петров", "phone": "+79123456789"},
                                       "tariff": "net100", "addons": [], "adult_confirmed": True,
                                       "at": at.isoformat(), "gps": gps(b)})


def expected_figures(sent, start, end, counter_contracts=None):
    """An independent count of the team day from the items sent (a contract item is a signed door)."""
    figures: dict[str, dict] = {}
    for agent, item in sent:
        at = datetime.fromisoformat(item["at"])
        if not start <= at < end:
            continue
        outcome = "signed" if item["type"] == "contract" else item["outcome"]
        row = figures.setdefault(agent, {"doors": 0, "contacts": 0, "leads": 0, "contracts": 0, "flagged": 0})
        row["doors"] += 1
        row["contacts"] += outcome not in NOT_CONTACTS
        row["leads"] += outcome in LEADS
        row["contracts"] += outcome == "signed"
        fix = item.get("gps")
        row["flagged"] += fix is None or fix["accuracy"] > 100 or item.get("_metres", 0) > 150
    for agent, n in (counter_contracts or {}).items():
        figures.setdefault(agent, {"doors": 0, "contacts": 0, "leads": 0, "contracts": 0, "flagged": 0})
        figures[agent]["contracts"] += n
    return figures


ROW_RE = re.compile(r'<tr data-agent="([^"]*)"[^>]*>(.*?)</tr>', re.DOTALL)
NUM_RE = re.compile(r'<td class="num">(?:<a[^>]*>)?(\d+)')


def table(html):
    """login ('' = the totals row) → the five figures of its row."""
    rows = {}
    for agent, cells in ROW_RE.findall(html):
        numbers = [int(n) for n in NUM_RE.findall(cells)]
        rows[agent] = dict(zip(("doors", "contacts", "leads", "contracts", "flagged"), numbers))
    return rows


def as_user(app, login_name):
    client = app.test_client()
    assert login(client, login_name).status_code == 302
    return client


@pytest.fixture
def day_of_work(team_app, clock):
    """A day of sup1's and sup2's teams, plus the evening before and a web-signed contract."""
    from crm.contracts import services as contracts
    from crm.extensions import db

    west, east, z2 = building(team_app, "west"), building(team_app, "east"), building(team_app, "z2")
    field = Field(team_app)
    midnight = datetime(2026, 11, 19, 19, 0, tzinfo=UTC)  # 2026-11-20 00:00 in Yekaterinburg
    t = midnight + timedelta(hours=6)
    field.visit("agent1", west, 1, "not_home", midnight - timedelta(seconds=1))  # the day before
    field.visit("agent1", west, 2, "not_home", midnight)  # the first second of the day
    field.visit("agent1", west, 3, "refused", t)
    field.visit("agent1", west, 4, "lead", t + timedelta(minutes=5), phone="+79120000004")
    field.visit("agent1", west, 5, "callback", t + timedelta(minutes=9),
                callback_at=(t + timedelta(days=1)).isoformat())
    amber = field.visit("agent1", west, 6, "competitor", t + timedelta(minutes=12), competitor="Ростелеком",
                        gps_fix=gps(west, metres_north=200))
    amber["_metres"] = 200
    field.visit("agent1", west, 7, "do_not_knock", t + timedelta(minutes=15), note="злая собака")
    field.contract("agent1", west, 8, t + timedelta(minutes=20))
    field.visit("agent2", east, 1, "no_access", t + timedelta(minutes=1))
    field.visit("agent2", east, 2, "already_subscriber", t + timedelta(minutes=3), gps_fix=None)
    field.visit("agent2", east, 3, "not_interested", t + timedelta(minutes=4), gps_fix=gps(east, accuracy=150))
    field.visit("agent5", z2, 1, "lead", t + timedelta(minutes=2), phone="+79120000011")
    field.visit("agent5", z2, 2, "refused", t + timedelta(minutes=6), gps_fix=None)
    with operator(team_app):
        from territories.models import Building

        contracts.sign(None, agent=u("agent2"), building=db.session.get(Building, east["id"]), flat=9,
                       subscriber_name="Мария Иванова", phone="+79123450000", tariff_code="net100",
                       adult_confirmed=True, at=t + timedelta(minutes=30))
    return field, midnight


def test_the_team_day_counts_each_agents_funnel_from_what_they_sent(team_app, day_of_work):
    field, midnight = day_of_work
    client = as_user(team_app, "sup1")
    html = client.get("/team").get_data(as_text=True)
    rows = table(html)
    expected = expected_figures([(a, i) for a, i in field.sent if a in ("agent1", "agent2")],
                                midnight, midnight + timedelta(days=1), counter_contracts={"agent2": 1})
    assert {login: rows[login] for login in ("agent1", "agent2")} == expected
    assert expected["agent1"] == {"doors": 7, "contacts": 6, "leads": 3, "contracts": 1, "flagged": 1}
    assert expected["agent2"] == {"doors": 3, "contacts": 2, "leads": 0, "contracts": 1, "flagged": 2}
    assert rows["agent3"] == rows["agent4"] == {"doors": 0, "contacts": 0, "leads": 0, "contracts": 0, "flagged": 0}
    assert rows[""] == {k: sum(r[k] for r in expected.values()) for k in expected["agent1"]}
    assert set(rows) == {"", "agent1", "agent2", "agent3", "agent4"}

    # the day before holds the one visit of 23:59:59 local time; links walk the days
    assert 'href="/team?day=2026-11-19"' in html
    before = table(client.get("/team?day=2026-11-19").get_data(as_text=True))
    assert before["agent1"] == {"doors": 1, "contacts": 0, "leads": 0, "contracts": 0, "flagged": 0}
    assert before[""]["doors"] == 1
    assert client.get("/team?day=nonsense").status_code == 200  # falls back to today, says so


def test_each_supervisor_sees_only_the_team_and_the_sales_head_picks(team_app, day_of_work):
    sup2 = table(as_user(team_app, "sup2").get("/team").get_data(as_text=True))
    assert set(sup2) == {"", "agent5", "agent6", "agent7", "agent8"}
    assert sup2["agent5"] == {"doors": 2, "contacts": 2, "leads": 1, "contracts": 0, "flagged": 1}

    head = as_user(team_app, "head")
    everyone = table(head.get("/team").get_data(as_text=True))
    assert {"agent1", "agent5", "agent12"} <= set(everyone)
    assert everyone[""]["doors"] == 12 and everyone[""]["contracts"] == 2
    sup2_id = u_id(team_app, "sup2")
    picked = table(head.get(f"/team?supervisor={sup2_id}").get_data(as_text=True))
    assert set(picked) == set(sup2) and picked["agent5"] == sup2["agent5"]
    assert head.get(f"/team?supervisor={u_id(team_app, 'agent1')}").status_code == 404
    # a supervisor cannot look at another team by asking for it
    assert "agent1" not in table(as_user(team_app, "sup2").get(f"/team?supervisor={u_id(team_app, 'sup1')}")
                                 .get_data(as_text=True))


@pytest.mark.parametrize("login_name", ["agent1", "admin", "fin1"])
@pytest.mark.parametrize("path", ["/team", "/team/flags", "/team/locks"])
def test_other_roles_are_refused(team_app, login_name, path):
    assert as_user(team_app, login_name).get(path).status_code == 403


def test_pages_need_a_login(team_app):
    response = team_app.test_client().get("/team")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def u_id(app, login_name):
    with app.app_context():
        return u(login_name).id


def flag_rows(html):
    return {int(i): body for i, body in re.findall(r'<tr data-visit="(\d+)"[^>]*>(.*?)</tr>', html, re.DOTALL)}


def test_flagged_visits_show_colour_reason_and_a_map_with_no_outside_assets(team_app, day_of_work):
    from crm.extensions import db
    from crm.visits.models import Visit
    from territories.assets import external_urls

    with team_app.app_context():
        flagged = {v.flat: v.id for v in db.session.scalars(
            select(Visit).where(Visit.flagged.is_(True), Visit.agent_id.in_([u("agent1").id, u("agent2").id])))}
    assert sorted(flagged) == [2, 3, 6]  # east 2 (no GPS), east 3 (accuracy 150 m), west 6 (200 m away)
    client = as_user(team_app, "sup1")
    client.post("/account/language", data={"locale": "en", "csrf_token": csrf_token(client, "/team")})
    html = client.get("/team/flags").get_data(as_text=True)
    rows = flag_rows(html)
    assert set(rows) == set(flagged.values())
    amber = rows[flagged[6]]
    assert "gps-amber" in amber and "farther than 150 m from the building" in amber and "200 m" in amber
    red = rows[flagged[2]]
    assert "gps-red" in red and "no GPS position" in red
    assert "GPS accuracy worse than 100 m" in rows[flagged[3]]
    assert "folium-map" in html and "js/flags.js" in html and '"colour": "amber"' in html
    assert external_urls(html, allowed=(team_app.config["TILE_URL"],)) == []
    # sup2 sees only agent5's flagged visit; the day before had none
    assert len(flag_rows(as_user(team_app, "sup2").get("/team/flags").get_data(as_text=True))) == 1
    assert flag_rows(client.get("/team/flags?day=2026-11-19").get_data(as_text=True)) == {}


def test_a_supervisor_unlocks_a_locked_door_with_a_reason(team_app, day_of_work, clock):
    from crm.errors import Conflict

    field, _midnight = day_of_work
    west, east = building(team_app, "west"), building(team_app, "east")
    sup1 = as_user(team_app, "sup1")
    html = sup1.get("/team/locks").get_data(as_text=True)
    doors = set(re.findall(r'data-door="(\d+/\d+)"', html))
    assert doors == {f"{west['id']}/7", f"{east['id']}/2"}
    assert "злая собака" in html
    assert set(re.findall(r'data-door="(\d+/\d+)"', sup1.get("/team/locks?q=east").get_data(as_text=True))) \
        == {f"{east['id']}/2"}
    assert set(re.findall(r'data-door="(\d+/\d+)"', as_user(team_app, "sup2").get("/team/locks")
                          .get_data(as_text=True))) == set()

    clock.advance(minutes=30)
    with pytest.raises(Conflict):
        field.visit("agent1", west, 7, "lead", clock.now(), phone="+79120000007")

    url = f"/team/locks/{west['id']}/7/unlock"
    token = csrf_token(sup1, "/team/locks")
    # another supervisor cannot unlock it
    sup2 = as_user(team_app, "sup2")
    assert sup2.post(url, data={"reason": "ошибка", "csrf_token": csrf_token(sup2, "/team/locks")}).status_code \
        in (403, 404)
    # no reason: refused, shown next to the field, still locked
    refused = sup1.post(url, data={"reason": "  ", "csrf_token": token})
    assert refused.status_code == 422
    assert 'aria-invalid="true"' in refused.get_data(as_text=True)
    with pytest.raises(Conflict):
        field.visit("agent1", west, 7, "lead", clock.now(), phone="+79120000007")

    done = sup1.post(url, data={"reason": "жилец сам попросил зайти", "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith("/team/locks")
    page = sup1.get("/team/locks").get_data(as_text=True)
    assert f'data-door="{west["id"]}/7"' not in page and f'data-door="{east["id"]}/2"' in page
    field.visit("agent1", west, 7, "lead", clock.now(), phone="+79120000007")  # accepted now
    # unlocking it again: nothing is locked there any more
    assert sup1.post(url, data={"reason": "ещё раз", "csrf_token": token}).status_code == 409

    from crm.audit.models import AuditEvent
    from crm.extensions import db

    with team_app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "door.unlocked")).one()
        assert event.actor_id == u("sup1").id


def test_the_sales_head_unlocks_in_the_region_and_a_supervisor_not_elsewhere(team_app, day_of_work):
    east = building(team_app, "east")
    head = as_user(team_app, "head")
    html = head.get(f"/team/locks?supervisor={u_id(team_app, 'sup1')}").get_data(as_text=True)
    assert f'data-door="{east["id"]}/2"' in html
    answer = head.post(f"/team/locks/{east['id']}/2/unlock?supervisor={u_id(team_app, 'sup1')}",
                       data={"reason": "проверено по базе", "csrf_token": csrf_token(head, "/team/locks")})
    assert answer.status_code == 302 and f"supervisor={u_id(team_app, 'sup1')}" in answer.headers["Location"]
    sup3 = as_user(team_app, "sup3")
    west = building(team_app, "west")
    assert sup3.post(f"/team/locks/{west['id']}/7/unlock",
                     data={"reason": "x", "csrf_token": csrf_token(sup3, "/team/locks")}).status_code == 404


def test_the_pages_speak_russian_by_default(team_app, day_of_work):
    sup1 = as_user(team_app, "sup1")
    html = sup1.get("/team/flags").get_data(as_text=True)
    assert "Отмеченные визиты" in html and "дальше 150 м от дома" in html and "нет координат GPS" in html
    assert "жёлтый" in html and "200 м" in html
    assert "Заблокированные двери" in sup1.get("/team/locks").get_data(as_text=True)
    page = sup1.get("/team?day=0001-01-01").get_data(as_text=True)  # out of range: today, and says so
    assert "не дата" in page and "Итого" in page

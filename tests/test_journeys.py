"""Four journeys end to end in headless Chromium, each from signing in to the result it is for.

1. The sales head uploads a GeoJSON of newly connected buildings at /buildings/import, draws a
   territory on the map and hands it to sup1; sup1 finds the notification in /inbox, draws two
   zones inside it and gives them to agent1 and agent2.
2. agent1 on a 390×844 phone opens the field app, loses the network, logs a visit and signs a
   contract offline, then comes back online: the queue drains and the server holds each record
   exactly once (a replay of the same items is answered "duplicate").
3. The installer system activates that kind of contract through the API (an API key, urllib
   against the live server): agent1's /money shows the amount the test's own rates say; a
   cancellation inside the clawback window claws it back.
4. sup1 proposes an adjustment, fin2 approves it, fin1 closes the month (the app's clock moved to
   the next month), downloads the CSV and XLSX and records the payout; the agent's row in both
   files and the file's ledger head match agent1's statement page.

``test_journey2_contract_with_an_addon_fits_the_phone`` is the contract screen of journey 2 with an
add-on: four-digit amounts once made the page scroll sideways on a 390 px phone (fixed in app.css).

Everything runs on SQLite (a private copy of the demo database per test) on a live server whose
app reads the injected ``FixedClock`` of tests/conftest.py (the ``clock`` fixture); the tests move
it with ``clock.set``/``clock.advance`` between steps. In journey 2 the phone's own clock (which
stamps visits and contracts) is pinned to the server's with Playwright's ``clock.set_fixed_time``.
Every request a page makes is checked (``Watch``): nothing may leave 127.0.0.1; the map tiles come
from the stub tile server of tests/test_browser_map.py.

Screenshots go to ``artifacts/screenshots/journey*-*.png``.
"""
from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

import pytest
from test_browser import (  # noqa: F401 (fixtures)
    PHONE,
    TIMEOUT_MS,
    assert_no_horizontal_scroll,
    backend,
    browser,
    live_server,
    path_of,
    screenshot,
    sign_in,
)
from test_browser_field import (  # noqa: F401 (the `world` fixture)
    Network,
    door_class,
    is_sync,
    queued,
    server_state,
    tap_flat,
    tap_outcome,
    wait_controlled,
    wait_waiting,
    world,
)
from test_browser_map import (  # noqa: F401 (fixtures)
    DESKTOP,
    draw_rectangle,
    open_map,
    open_page,
    show_box,
    tile_server,
    wait_map_idle,
    watch,
)

from tests.helpers import operator, user_id
from tests.money import RATES, build_world, entries, event, sign

pytestmark = pytest.mark.browser


def minor(text: str) -> int:
    """``"2200.00"`` / ``"-2 200,00 ₽"`` → 220000 (the pages print amounts with two decimals)."""
    cleaned = re.sub(r"[^\d,.\-−]", "", text).replace("−", "-").replace(",", ".")
    return int(Decimal(cleaned) * 100)


def money_text(amount: int) -> str:
    """How the pages and the payout files write an amount of minor units: ``-2200.00``."""
    sign_ = "-" if amount < 0 else ""
    return f"{sign_}{abs(amount) // 100}.{abs(amount) % 100:02d}"


def agent_amount(tariff: str, addons=()) -> int:
    """X from the rates this test world was given (tests/money.py), never from the app."""
    return RATES["agent"]["tariffs"][tariff] + sum(RATES["agent"]["addons"][a] for a in addons)


def override_amount(x: int) -> int:
    return int((Decimal(x) * Decimal(RATES["supervisor_override_percent"]) / 100).quantize(Decimal(1), ROUND_HALF_UP))


@pytest.fixture
def demo_app(demo_db_url, make_app, tile_server):  # noqa: F811
    """Overrides conftest's ``demo_app`` (which ``live_server`` serves): map tiles from the stub
    server, the injected ``clock`` fixture as the app's clock (``make_app`` passes it)."""
    return make_app(demo_db_url, TILE_URL=tile_server[0])


def forget(watch, kind: str, pattern: str, since: int = 0) -> None:
    """Drop the watched lines (``failed`` or ``console``, from line ``since`` on) that match
    ``pattern``: noise a step is known to make (named where it is used), so that
    ``watch.assert_clean()`` still judges everything else."""
    lines = getattr(watch, kind)
    setattr(watch, kind, lines[:since] + [line for line in lines[since:] if not re.search(pattern, line)])


def accept_dialogs(page):
    """The close and payout buttons ask ``confirm()``; the user says yes."""
    page.on("dialog", lambda dialog: dialog.accept())


# =====================================================================================
# 1. new buildings → territory (sales head) → inbox → two zones with agents (supervisor)
# =====================================================================================

TERRITORY = (60.580, 56.825, 60.630, 56.855)     # (west, south, east, north)
ZONE_WEST = (60.584, 56.829, 60.603, 56.851)
ZONE_EAST = (60.607, 56.829, 60.626, 56.851)
TERRITORY_NAME = "Новостройки-Юг"
ZONE_WEST_NAME = "НЮ-Запад"
ZONE_EAST_NAME = "НЮ-Восток"


def _point(external_id, lon, lat, **props):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"external_id": external_id, "address": f"ул. Новая, {external_id}", "apartments": 48,
                           "entrances": 2, "floors": 6, "connected_at": "2026-11-18", **props}}


def _footprint(external_id, lon, lat, half=0.0002):
    w, s, e, n = lon - half, lat - half, lon + half, lat + half
    return {"type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "properties": {"external_id": external_id, "address": f"ул. Новая, {external_id}", "apartments": 120,
                           "entrances": 4, "floors": 10}}


WEST_IDS = ["nb-w1", "nb-w2", "nb-w3"]
EAST_IDS = ["nb-e1", "nb-e2", "nb-e3"]
NEW_BUILDINGS = {"type": "FeatureCollection", "features": [
    _point("nb-w1", 60.590, 56.835), _point("nb-w2", 60.595, 56.840), _footprint("nb-w3", 60.598, 56.846),
    _point("nb-e1", 60.612, 56.835), _point("nb-e2", 60.617, 56.840), _point("nb-e3", 60.622, 56.846),
    _point("nb-far", 60.700, 56.840),                   # outside the territory: stays in the head's queue
    _point("nb-bad", 60.600, 56.840, apartments=0),     # feature #8: rejected, the others imported
]}


def _layout(app):
    from sqlalchemy import select

    from crm.extensions import db
    from territories import services
    from crm.users.models import User
    from territories.models import Building, Notification, Territory, Zone

    with app.app_context():
        buildings = {b.external_id: (b.territory.name if b.territory else None, b.zone.name if b.zone else None)
                     for b in db.session.scalars(select(Building))}
        territories = {t.name: t.supervisor.login if t.supervisor else None for t in db.session.scalars(select(Territory))}
        zones = {z.name: (z.territory.name, getattr(services.current_assignment(z.id), "agent", None))
                 for z in db.session.scalars(select(Zone))}
        zones = {name: (t, a.login if a else None) for name, (t, a) in zones.items()}
        notes = [(login, kind, json.loads(params)) for login, kind, params in db.session.execute(
            select(User.login, Notification.kind, Notification.params).join(User, User.id == Notification.user_id)
            .order_by(Notification.id))]
        ids = {t.name: t.id for t in db.session.scalars(select(Territory))}
        db.session.remove()
        return buildings, territories, zones, notes, ids


def test_journey1_new_buildings_to_territory_to_zones(open_page, demo_app, watch):  # noqa: F811
    # ---- the sales head uploads the network system's GeoJSON
    head = open_page(**DESKTOP)
    sign_in(head, "head")
    head.goto("/buildings/import")
    head.set_input_files("#file", files=[{"name": "connected-2026-11.geojson", "mimeType": "application/geo+json",
                                          "buffer": json.dumps(NEW_BUILDINGS, ensure_ascii=False).encode()}])
    with head.expect_navigation():
        head.click("form[enctype] button[type=submit]")
    result = head.locator("main section.card").nth(1)
    assert re.findall(r"\d+", result.locator("p").first.inner_text()) == ["7", "0", "0", "1"]
    rejected = result.locator("li").all_inner_texts()
    assert len(rejected) == 1 and "#8" in rejected[0] and "nb-bad" in rejected[0], rejected
    screenshot(head, "journey1-head-import.png", full_page=True)
    buildings, *_ = _layout(demo_app)
    assert buildings == {eid: (None, None) for eid in WEST_IDS + EAST_IDS + ["nb-far"]}

    # ---- … draws the territory around six of them and hands it to sup1
    config = open_map(head, expected_count=7)
    assert config["role"] == "sales_head" and config["editable"] is True
    show_box(head, config["map"], TERRITORY, pad=0.1)
    draw_rectangle(head, config, TERRITORY)
    head.fill("#pf-name", TERRITORY_NAME)
    head.select_option("#pf-owner", value=str(user_id(demo_app, "sup1")))
    with head.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/map/territories") as answer:
        head.click("#pf-save")
    assert answer.value.status == 201, answer.value.text()
    assert answer.value.json()["buildings"] == 6
    head.wait_for_function("n => document.querySelector('#map-status').dataset.saved === n", arg=TERRITORY_NAME)
    wait_map_idle(head, config["map"])
    screenshot(head, "journey1-head-territory.png", full_page=True)

    buildings, territories, _, notes, ids = _layout(demo_app)
    assert territories == {TERRITORY_NAME: "sup1"}
    assert buildings == {**{eid: (TERRITORY_NAME, None) for eid in WEST_IDS + EAST_IDS}, "nb-far": (None, None)}
    sup1_notes = [(kind, params) for login, kind, params in notes if login == "sup1"]
    assert ("territory_assigned", {"territory": TERRITORY_NAME}) in sup1_notes, notes
    assert ("buildings_arrived", {"count": 6, "territory": TERRITORY_NAME}) in sup1_notes, notes

    # ---- sup1 signs in and finds it in the inbox
    sup = open_page(**DESKTOP)
    sign_in(sup, "sup1")
    sup.goto("/inbox")
    items = sup.locator("main ul.list > li").all_inner_texts()
    arrived = [t for t in items if TERRITORY_NAME in t and re.search(r"\b6\b", t)]
    handed = [t for t in items if TERRITORY_NAME in t and not re.search(r"\b6\b", t)]
    assert len(arrived) == 1 and len(handed) == 1, items
    link = sup.locator("main ul.list > li a", has_text=re.compile(r"\b6\b")).get_attribute("href")
    assert link == f"/territories/{ids[TERRITORY_NAME]}"
    screenshot(sup, "journey1-sup1-inbox.png", full_page=True)

    # ---- … draws two zones inside the territory and assigns agent1 and agent2
    config = open_map(sup, expected_count=6)
    assert config["role"] == "supervisor" and config["editable"] is True
    for box, name, agent in ((ZONE_WEST, ZONE_WEST_NAME, "agent1"), (ZONE_EAST, ZONE_EAST_NAME, "agent2")):
        show_box(sup, config["map"], TERRITORY, pad=0.1)
        draw_rectangle(sup, config, box)
        sup.fill("#pf-name", name)
        sup.select_option("#pf-territory", value=str(ids[TERRITORY_NAME]))
        sup.select_option("#pf-owner", value=str(user_id(demo_app, agent)))
        assert sup.input_value("#pf-from") == "2026-11-20"  # the injected clock's today
        with sup.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/map/zones") as answer:
            sup.click("#pf-save")
        assert answer.value.status == 201, answer.value.text()
        assert answer.value.json()["buildings"] == 3
        sup.wait_for_function("n => document.querySelector('#map-status').dataset.saved === n", arg=name)
    sup.wait_for_function("() => document.querySelectorAll('#zone-table tbody tr').length === 2")
    rows = sup.locator("#zone-table tbody tr").all_inner_texts()
    assert any(ZONE_WEST_NAME in r and "Дмитрий Козлов" in r for r in rows), rows
    assert any(ZONE_EAST_NAME in r and "Екатерина Морозова" in r for r in rows), rows
    sup.evaluate("window.scrollTo(0, 0)")
    wait_map_idle(sup, config["map"])
    screenshot(sup, "journey1-sup1-zones.png", full_page=True)

    buildings, _, zones, notes, _ = _layout(demo_app)
    assert zones == {ZONE_WEST_NAME: (TERRITORY_NAME, "agent1"), ZONE_EAST_NAME: (TERRITORY_NAME, "agent2")}
    assert buildings == {**{eid: (TERRITORY_NAME, ZONE_WEST_NAME) for eid in WEST_IDS},
                         **{eid: (TERRITORY_NAME, ZONE_EAST_NAME) for eid in EAST_IDS}, "nb-far": (None, None)}

    # ---- agent1, on a phone, is told about the zone
    agent = open_page(**PHONE)
    sign_in(agent, "agent1")
    agent.goto("/inbox")
    items = agent.locator("main ul.list > li").all_inner_texts()
    assert any(ZONE_WEST_NAME in t and "2026-11-20" in t for t in items), items
    assert_no_horizontal_scroll(agent)
    screenshot(agent, "journey1-agent1-inbox-phone.png")

    watch.assert_clean()


# =====================================================================================
# 2. the agent's phone: a visit and a contract offline, then back online
# =====================================================================================

def test_journey2_agent_signs_offline_then_syncs(world, browser, live_server, clock, watch):  # noqa: F811
    # the phone's clock is pinned to the server's (a minute on), so its stamps are "now" for the app
    clock.advance(minutes=1)
    phone_time = clock.now()
    net = Network(watch)
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    context.clock.set_fixed_time(phone_time)
    net.context = context
    context.route("**/*", net.route)
    page = context.new_page()
    watch.attach(page)
    try:
        # ---- online: sign in, the day's buildings, the door grid (all cached by the service worker)
        sign_in(page, "agent1")
        page.goto("/field")
        wait_controlled(page)
        page.locator("#buildings li a").first.wait_for()
        assert page.locator("#buildings li a").count() == 2
        wait_waiting(page, 0)
        assert_no_horizontal_scroll(page)
        screenshot(page, "journey2-field-day.png")
        page.locator(f'#buildings a[href="#b{world.tower}"]').tap()
        page.locator("#view-building").wait_for(state="visible")
        assert page.locator("#grid button[data-flat]").count() == 12

        # ---- the stairwell: no network; the page still reloads (from the service worker)
        net.set_offline(True)
        offline_from = {"console": len(watch.console), "failed": len(watch.failed)}
        page.wait_for_function("!navigator.onLine")
        hits_offline = len(world.hits)
        response = page.reload()
        assert response is not None and response.ok and response.from_service_worker
        page.locator("#view-building").wait_for(state="visible")
        assert "off" in page.locator("#net").get_attribute("class").split()

        # one visit …
        tap_flat(page, 1)
        tap_outcome(page, "not_home")
        wait_waiting(page, 1)

        # … and a contract, both queued on the phone
        tap_flat(page, 2)
        tap_outcome(page, "signed")
        page.locator("#view-contract").wait_for(state="visible")
        page.fill("#c-name", "Ольга Иванова")
        page.fill("#c-phone", "8 912 000-00-02")
        page.select_option("#c-tariff", "net500")
        page.locator("#c-adult").tap()
        expected = agent_amount("net500")
        assert re.sub(r"\D", "", page.locator("#c-commission").inner_text()) == str(expected)
        assert_no_horizontal_scroll(page)
        screenshot(page, "journey2-contract-offline.png", full_page=True)
        page.locator('#contract-form button[type="submit"]').tap()
        page.locator("#view-building").wait_for(state="visible")
        wait_waiting(page, 2)
        assert "pending" in door_class(page, 1) and "pending" in door_class(page, 2)
        assert "o-signed" in door_class(page, 2)
        page.evaluate("window.scrollTo(0, 0)")
        assert_no_horizontal_scroll(page)
        screenshot(page, "journey2-queued-offline.png")
        waiting = queued(page)
        assert sorted((i["type"], i["flat"]) for i in waiting) == [("contract", 2), ("visit", 1)]
        assert all(i["state"] == "pending" and i["at"].startswith(phone_time.strftime("%Y-%m-%dT%H:%M"))
                   for i in waiting), waiting
        assert len(world.hits) == hits_offline, f"the server was reached offline: {world.hits[hits_offline:]}"
        assert server_state(world.app).visits == [] and server_state(world.app).contracts == []

        # ---- twenty minutes later the network is back: the queue drains by itself
        # Offline, the reload's request for the day's data may fail (Chromium reports and logs it) when
        # the service worker holds no copy yet (the first load ran before it took control); the page
        # then shows the day it keeps in IndexedDB, as it is built to. Only that is forgiven.
        zones = r"http://127\.0\.0\.1:\d+/api/v1/me/zones"
        forget(watch, "console", rf"^Failed to load resource: net::ERR_FAILED @ \{{'url': '{zones}'", offline_from["console"])
        forget(watch, "failed", rf"^{zones}: net::ERR_FAILED$", offline_from["failed"])

        clock.advance(minutes=20)
        synced_at = clock.now()
        with page.expect_response(is_sync) as answer:
            net.set_offline(False)
        assert answer.value.status == 200, answer.value.text()
        results = {r["client_id"]: r for r in answer.value.json()["results"]}
        assert set(results) == {i["client_id"] for i in waiting}
        assert all(r["status"] == "created" for r in results.values()), results
        wait_waiting(page, 0)
        page.wait_for_function("() => !document.querySelector('#grid .door.pending')")
        assert queued(page) == []
        assert "o-signed" in door_class(page, 2) and "o-not_home" in door_class(page, 1)
        screenshot(page, "journey2-back-online.png")

        # a retry of the very same items (a phone that missed the answer) adds nothing
        replay = page.evaluate("""items => fetch('/api/v1/sync', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': document.querySelector('meta[name="csrf-token"]').content},
            body: JSON.stringify({items})}).then(r => r.json())""",
                               [{k: v for k, v in i.items() if k not in ("state", "error")} for i in waiting])
        assert [r["status"] for r in replay["results"]] == ["duplicate", "duplicate"], replay
    finally:
        context.close()

    # ---- the server: each record exactly once, stamped with the phone's time, recorded at sync
    [contract_item] = [i for i in waiting if i["type"] == "contract"]
    [visit_item] = [i for i in waiting if i["type"] == "visit"]
    state = server_state(world.app)
    assert not state.dup_visits and not state.dup_contracts
    [contract] = state.contracts
    assert contract.client_id == contract_item["client_id"] and contract.flat == 2
    assert contract.number == results[contract_item["client_id"]]["contract_number"]
    assert contract.phone == "+79120000002" and contract.subscriber_name == "Ольга Иванова"
    assert contract.rate_version_id is not None
    assert sorted((v.client_id, v.flat, v.outcome, v.contract_id) for v in state.visits) == sorted([
        (visit_item["client_id"], 1, "not_home", None), (f"{contract_item['client_id']}#signed", 2, "signed", contract.id)])
    with world.app.app_context():
        from sqlalchemy import select

        from crm.contracts.models import Contract
        from crm.extensions import db
        from crm.visits.models import Visit

        times = db.session.execute(select(Contract.at, Contract.recorded_at)).one()
        visit_times = db.session.execute(select(Visit.at, Visit.recorded_at).where(Visit.flat == 1)).one()
        db.session.remove()
    assert abs(times.at - phone_time) < timedelta(seconds=1) and times.recorded_at == synced_at
    assert abs(visit_times.at - phone_time) < timedelta(seconds=1) and visit_times.recorded_at == synced_at
    # the money: one pending accrual of the rate for net500, one override, nothing twice
    x = expected
    assert entries(world.app, contract.number) == [("accrual", "pending", "agent1", x),
                                                   ("override", "pending", "sup1", override_amount(x))]
    watch.assert_clean()


def test_journey2_contract_with_an_addon_fits_the_phone(world, browser, live_server):  # noqa: F811
    """The same contract screen as journey 2, with an add-on (a common sale): no horizontal scroll."""
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, "agent1")
        page.goto(f"/field#b{world.tower}")
        page.locator("#view-building").wait_for(state="visible")
        tap_flat(page, 3)
        tap_outcome(page, "signed")
        page.locator("#view-contract").wait_for(state="visible")
        page.select_option("#c-tariff", "net300")
        page.locator("#a-tv").tap()
        assert re.sub(r"\D", "", page.locator("#c-commission").inner_text()) == str(agent_amount("net300", ["tv"]))
        screenshot(page, "journey2-contract-addon-overflow.png", full_page=True)
        right = page.evaluate("Math.max(...[...document.querySelectorAll('#view-contract .balance')]"
                              ".map(b => b.getBoundingClientRect().right))")
        assert right <= PHONE["viewport"]["width"], f"the contract's money boxes end at x={right}"
        assert_no_horizontal_scroll(page)
    finally:
        context.close()


# =====================================================================================
# 3. the installer system (API) activates and later cancels; the agent watches /money
# =====================================================================================

def api_event(base_url: str, key: str, number: str, body: dict) -> tuple[int, dict]:
    """``POST /api/v1/contracts/<number>/events`` from the test process, as the installers' system."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{base_url}/api/v1/contracts/{number}/events", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def read_money(page) -> dict:
    page.goto("/money")
    return {"payable": minor(page.locator(".balance.payable strong").inner_text()),
            "pending": minor(page.locator(".balance.pending strong").inner_text())}


def test_journey3_installer_activates_then_cancel_claws_back(open_page, demo_app, live_server, clock, watch):  # noqa: F811
    from crm.apikeys.services import create_key

    build_world(demo_app, clock, buildings=1)     # the catalogue and tests/money.py's RATES in force from now
    with operator(demo_app):
        _, key = create_key(None, "installers", ["contracts:events"])
    number = sign(demo_app, clock, agent="agent1", building="b1", flat=7, tariff="net300", addons=["tv"])
    x = agent_amount("net300", ["tv"])             # what activation must make payable, from the test's rates

    # ---- agent1, on a phone: the contract waits in pending
    page = open_page(**PHONE)
    sign_in(page, "agent1")
    before = read_money(page)
    assert before["pending"] == x
    assert page.locator("main").inner_text().count(number) >= 1
    assert_no_horizontal_scroll(page)
    screenshot(page, "journey3-money-signed.png", full_page=True)

    # ---- three days on, the installer's system reports the activation
    clock.advance(days=3)
    activation = {"event_id": f"inst-{number}-act", "event": "activated", "at": clock.now().isoformat()}
    status, answer = api_event(live_server, key, number, activation)
    assert status == 201, answer
    assert api_event(live_server, key, number, activation) == (200, answer)   # a replay changes nothing

    after = read_money(page)
    assert after["payable"] == before["payable"] + x
    assert after["pending"] == before["pending"] - x
    earned = page.locator("li.entry.kind-earned", has_text=number)
    assert earned.count() == 1 and money_text(x) in earned.locator(".amount").inner_text()
    assert_no_horizontal_scroll(page)
    screenshot(page, "journey3-money-activated.png", full_page=True)

    # ---- twenty days after activation (inside the 60-day window) the subscriber cancels
    clock.advance(days=20)
    status, answer = api_event(live_server, key, number, {"event_id": f"inst-{number}-cancel", "event": "cancelled",
                                                          "at": clock.now().isoformat(), "reason": "переезд"})
    assert status == 201, answer

    clawed = read_money(page)
    assert clawed["payable"] == before["payable"]
    assert clawed["pending"] == before["pending"] - x
    clawback = page.locator("li.entry.kind-clawback", has_text=number)
    assert clawback.count() == 1 and money_text(-x) in clawback.locator(".amount").inner_text()
    assert_no_horizontal_scroll(page)
    screenshot(page, "journey3-money-clawed-back.png", full_page=True)

    o = override_amount(x)
    assert entries(demo_app, number) == [
        ("accrual", "pending", "agent1", x), ("override", "pending", "sup1", o),
        ("release", "pending", "agent1", -x), ("earned", "payable", "agent1", x),
        ("release", "pending", "sup1", -o), ("earned", "payable", "sup1", o),
        ("clawback", "payable", "agent1", -x), ("clawback", "payable", "sup1", -o)]
    watch.assert_clean()


# =====================================================================================
# 4. adjustment (four eyes) → close → CSV/XLSX → payout, checked against the statement
# =====================================================================================

PERIOD = "2026-11"


def _download(page, selector: str, folder) -> bytes:
    with page.expect_download() as info:
        page.click(selector)
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path.read_bytes()


def _csv(data: bytes) -> tuple[str, list[str], list[list[str]]]:
    text = data.decode("utf-8")
    first, rest = text.split("\n", 1)
    rows = list(csv.reader(io.StringIO(rest)))
    return first, rows[0], rows[1:]


def test_journey4_adjustment_close_export_payout_match_the_statement(open_page, demo_app, clock, watch,  # noqa: F811
                                                                      tmp_path):
    from openpyxl import load_workbook
    from sqlalchemy import select

    from crm.extensions import db
    from crm.finance.models import Adjustment

    build_world(demo_app, clock, buildings=1)
    number = sign(demo_app, clock, agent="agent1", building="b1", flat=3, tariff="net500")   # 20 November
    clock.advance(days=1)
    event(demo_app, number, "activated", clock.now())                                          # 21 November
    x = agent_amount("net500")
    adjustment = 150000                                                                        # 1500.00

    # ---- sup1 proposes an adjustment for agent1 (on a phone)
    sup = open_page(**PHONE)
    sign_in(sup, "sup1")
    sup.goto("/finance/adjustments")
    sup.fill("#beneficiary", "agent1")
    sup.fill("#amount", "1500.00")
    sup.fill("#reason", "Дом по ул. Ленина, 1 обошли вдвоём — доплата за второй подъезд")
    with sup.expect_navigation():
        sup.click("#propose button[type=submit]")
    assert path_of(sup) == "/finance/adjustments"
    assert sup.locator(".flashes .flash-success").count() == 1
    with demo_app.app_context():
        proposal = db.session.scalars(select(Adjustment)).one()
        proposal_id, status = proposal.id, proposal.status
        assert proposal.amount == adjustment and proposal.beneficiary.login == "agent1"
        db.session.remove()
    assert status == "proposed"
    waiting = sup.locator(f"#adjustment-{proposal_id}")
    assert "1500.00" in waiting.inner_text() and waiting.locator("button").count() == 0  # sup1 cannot approve
    assert_no_horizontal_scroll(sup)
    screenshot(sup, "journey4-sup1-proposed-phone.png", full_page=True)

    # ---- fin2 approves it
    fin2 = open_page(**DESKTOP)
    sign_in(fin2, "fin2")
    fin2.goto("/finance/adjustments")
    with fin2.expect_navigation():
        fin2.click(f"#adjustment-{proposal_id} form[action$='/approve'] button[type=submit]")
    assert fin2.locator(".flashes .flash-success").count() == 1
    assert fin2.locator(f"#adjustment-{proposal_id}").count() == 0
    assert "agent1" in fin2.locator("#decided li.adjustment.approved").first.inner_text()
    screenshot(fin2, "journey4-fin2-approved.png", full_page=True)
    with demo_app.app_context():
        proposal = db.session.get(Adjustment, proposal_id)
        assert proposal.status == "approved" and proposal.decided_by.login == "fin2" and proposal.entry_position
        db.session.remove()

    # ---- December: fin1 closes November
    clock.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))   # 1 December, 10:00 in Yekaterinburg
    fin1 = open_page(**DESKTOP, accept_downloads=True)
    accept_dialogs(fin1)
    sign_in(fin1, "fin1")
    fin1.goto("/finance")
    with fin1.expect_navigation():
        fin1.click(f"#open-periods form[action='/finance/periods/{PERIOD}/close'] button[type=submit]")
    assert path_of(fin1) == f"/finance/periods/{PERIOD}"
    close_head = fin1.locator("#close-head").inner_text().strip()
    assert re.fullmatch(r"\d+:[0-9a-f]{64}", close_head), close_head
    assert close_head in fin1.locator(".flashes .flash-success").inner_text()
    screenshot(fin1, "journey4-fin1-closed.png", full_page=True)

    # … downloads the payout files …
    csv_bytes = _download(fin1, f"a[href='/finance/periods/{PERIOD}/export.csv']", tmp_path)
    xlsx_bytes = _download(fin1, f"a[href='/finance/periods/{PERIOD}/export.xlsx']", tmp_path)

    # … and records the payout
    with fin1.expect_navigation():
        fin1.click(f"form[action='/finance/periods/{PERIOD}/payout'] button[type=submit]")
    assert fin1.locator(".flashes .flash-success").count() == 1
    assert fin1.locator(f"form[action='/finance/periods/{PERIOD}/payout']").count() == 0
    screenshot(fin1, "journey4-fin1-paid.png", full_page=True)
    csv_again = _download(fin1, f"a[href='/finance/periods/{PERIOD}/export.csv']", tmp_path)

    # ---- agent1 reads the November statement on a phone
    agent = open_page(**PHONE)
    sign_in(agent, "agent1")
    agent.goto(f"/statement?period={PERIOD}")
    shown = {k: agent.locator(f"#summary [data-k={k}]").inner_text().strip()
             for k in ("opening", "accruals_earned", "overrides_earned", "bonuses", "adjustments", "clawbacks",
                       "payouts", "net")}
    statement_head = agent.locator("#statement-head").inner_text().strip()
    assert_no_horizontal_scroll(agent)
    screenshot(agent, "journey4-agent1-statement-phone.png", full_page=True)

    # the statement is what the rates and the adjustment say (1 activation: under the first tier, no bonus)
    assert shown == {"opening": "0.00", "accruals_earned": money_text(x), "overrides_earned": "0.00",
                     "bonuses": "0.00", "adjustments": money_text(adjustment), "clawbacks": "0.00",
                     "payouts": "0.00", "net": money_text(x + adjustment)}
    assert statement_head == close_head

    # the CSV: ledger head and agent1's row as the statement shows them
    meta, header, rows = _csv(csv_bytes)
    assert meta.startswith(f"# period={PERIOD} ") and meta.endswith(f" ledger_head={close_head}"), meta
    assert meta.split("ledger_head=")[1] == statement_head
    assert header == ["period", "personnel_number", "login", "name", "role", "supervisor", "accruals_earned",
                      "overrides_earned", "bonuses", "adjustments", "clawbacks", "net", "currency"]
    by_login = {r[header.index("login")]: dict(zip(header, r)) for r in rows}
    row = by_login["agent1"]
    for column in ("accruals_earned", "adjustments", "net", "bonuses", "clawbacks"):
        assert row[column] == shown[column], (column, row, shown)
    assert row["period"] == PERIOD and row["role"] == "agent" and row["currency"] == "RUB"
    assert by_login["sup1"]["overrides_earned"] == money_text(override_amount(x))

    # the XLSX: the same rows on `payout`, the same head on `about`
    book = load_workbook(io.BytesIO(xlsx_bytes), read_only=True)
    assert book.sheetnames == ["payout", "about"]
    sheet_rows = [["" if v is None else str(v) for v in r] for r in book["payout"].iter_rows(values_only=True)]
    assert sheet_rows[0] == header
    assert sheet_rows[1:] == rows
    xlsx_row = dict(zip(header, next(r for r in sheet_rows[1:] if r[header.index("login")] == "agent1")))
    for column in ("accruals_earned", "adjustments", "net"):
        assert xlsx_row[column] == shown[column], (column, xlsx_row, shown)
    about = {r[0]: r[1] for r in book["about"].iter_rows(values_only=True)}
    assert about["ledger_head"] == statement_head and about["period"] == PERIOD

    # exporting again after the payout gives the same figures and head
    meta_again, _, rows_again = _csv(csv_again)
    assert rows_again == rows and meta_again.split("ledger_head=")[1] == close_head

    # the payout took exactly the net out of agent1's payable balance
    assert read_money(agent)["payable"] == 0
    assert_no_horizontal_scroll(agent)
    screenshot(agent, "journey4-agent1-money-after-payout-phone.png", full_page=True)
    # a download ends its navigation: Chromium reports the export requests as aborted
    forget(watch, "failed", rf"/finance/periods/{PERIOD}/export\.(csv|xlsx): net::ERR_ABORTED$")
    watch.assert_clean()

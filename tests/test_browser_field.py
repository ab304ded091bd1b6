"""The agent's phone app (``/field``) offline, in a real browser with a persistent profile.

agent1 opens /field on a 390×844 phone, the service worker takes control, three outcomes
and a contract are logged and sent; then the browser goes offline (the service worker is
cut off too), the page is reloaded from the service worker's cache, two more visits are
queued in IndexedDB, the whole browser is closed and started again on the same profile —
still offline, the page and its two waiting visits come back — and when the network returns
the queue drains. On the server every client id is stored exactly once.

The server records every request it receives, so the test also proves that nothing reached
it while the browser was offline. Every request the browser makes (pages and the service
worker) is routed through a handler that aborts anything not addressed to 127.0.0.1 and,
while offline, everything (see ``Network``). The clock is the real time: the phone stamps
visits with the browser's clock, which the server checks against its own.

Screenshots go to ``artifacts/screenshots/field-*.png``.
"""
from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    TIMEOUT_MS,
    assert_no_horizontal_scroll,
    backend,
    live_server,
    screenshot,
    sign_in,
)
from test_browser_map import Watch

from crm.clock import FixedClock
from tests.helpers import operator
from tests.money import build_world
from tests.test_territories import arrive, feature, rect, u

pytestmark = pytest.mark.browser

TERRITORY = rect(60.60, 56.84, 60.63, 56.85)
ZONE = rect(60.60, 56.84, 60.61, 56.85)
TOWER = feature("field-tower", 60.605, 56.845, apartments=12, entrances=2, floors=3)   # 2 entrances × 3 floors × 2
SMALL = feature("field-small", 60.606, 56.846, apartments=6, floors=3)
PHONE_NUMBER = "+79120000001"


# --- the world: demo people, sup1's territory, agent1's zone with two buildings, rates in force ----

@pytest.fixture
def clock():
    """The server's clock stands at the real time the test starts (the browser stamps visits with
    its own real time, which must be neither in the future nor older than the offline grace)."""
    return FixedClock(datetime.now(UTC) - timedelta(seconds=5))


@pytest.fixture
def world(demo_app, clock):
    from flask import request
    from sqlalchemy import select

    from crm.extensions import db
    from territories import services
    from territories.models import Building

    with operator(demo_app):
        territory = services.save_territory(None, name="Поле", geometry_json=TERRITORY, supervisor=u("sup1"),
                                            region=u("head")).polygon
        services.save_zone(None, name="Зона агента 1", geometry_json=ZONE, territory=territory, agent=u("agent1"))
    build_world(demo_app, clock, buildings=0)  # catalogue, and a rate version in force from now
    arrive(demo_app, TOWER, SMALL)
    with demo_app.app_context():
        ids = dict(db.session.execute(select(Building.external_id, Building.id)
                                      .where(Building.zone_id.is_not(None))).all())
    assert set(ids) == {"field-tower", "field-small"}, ids

    hits: list[str] = []  # every request the server answered, in order

    @demo_app.before_request
    def _record_hit():
        hits.append(f"{request.method} {request.path}")

    return SimpleNamespace(app=demo_app, tower=ids["field-tower"], small=ids["field-small"], hits=hits)


# --- the browser: a persistent profile, every request checked --------------------------------

class Network:
    """The browser's link to the world. Offline means ``context.set_offline`` (the page and its
    service worker: ``navigator.onLine`` false, fetches fail) and, belt and braces, every routed
    request aborted as disconnected: right after a browser restart Chromium's offline emulation
    does not always reach the freshly started service worker's first fetches."""

    def __init__(self, watch: Watch):
        self.watch = watch
        self.offline = False
        self.context = None

    def route(self, route):
        if self.offline:
            if urlsplit(route.request.url).hostname != "127.0.0.1":
                self.watch.foreign.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            self.watch.route(route)  # aborts (and records) anything not addressed to 127.0.0.1

    def set_offline(self, offline: bool):
        self.offline = offline
        self.context.set_offline(offline)


def launch(playwright, profile, base_url, net: Network, offline=False):
    """The persistent browser on ``profile``; with ``offline`` cut off before any navigation,
    so only the service worker can answer."""
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, base_url=base_url, **PHONE)
    net.context = context
    if offline:
        net.set_offline(True)
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", net.route)
    # the service worker's requests too: any http(s) request to another host is recorded
    context.on("request", lambda req: net.watch.foreign.append(req.url)
               if urlsplit(req.url).scheme in ("http", "https") and urlsplit(req.url).hostname != "127.0.0.1" else None)
    # the service worker's console (a page's own messages are watched by ``Watch.attach``)
    context.on("console", lambda msg: net.watch.console.append(f"service worker: {msg.text} @ {msg.location}")
               if msg.type == "error" and msg.page is None else None)
    page = context.pages[0] if context.pages else context.new_page()
    net.watch.attach(page)
    return context, page


def wait_controlled(page):
    """The service worker is active and controls this page (reload once if it took over late)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    assert page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
    try:
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=3_000)
    except PlaywrightTimeout:
        page.reload()
        page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.wait_for_function("""() => caches.open('doorstep-field-v1').then(c => c.match('/field'))
        .then(r => !!r)""", polling=200)


def wait_waiting(page, n: int):
    page.wait_for_function("n => { const w = document.getElementById('waiting');"
                           " return w.dataset.count === String(n) && w.textContent.trim() !== ''; }", arg=n)


def is_sync(resp) -> bool:
    return urlsplit(resp.url).path == "/api/v1/sync" and resp.request.method == "POST"


def tap_flat(page, flat: int):
    page.locator(f'#grid button[data-flat="{flat}"]').tap()
    page.locator("#sheet").wait_for(state="visible")


def tap_outcome(page, outcome: str):
    page.locator(f'#outcomes button[data-outcome="{outcome}"]').tap()


def sent(page, action) -> list[dict]:
    """Run ``action`` online and return the results of the sync it sets off (queue drained)."""
    with page.expect_response(is_sync) as answer:
        action()
    assert answer.value.status == 200, answer.value.text()
    results = answer.value.json()["results"]
    wait_waiting(page, 0)
    page.wait_for_function("() => !document.querySelector('#grid .door.pending')")
    return results


def queued(page) -> list[dict]:
    return page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open('doorstep-agent1');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => { const req = open.result.transaction('queue').objectStore('queue').getAll();
            req.onsuccess = () => { resolve(req.result); open.result.close(); }; req.onerror = () => reject(req.error); };
    })""")


def door_class(page, flat: int) -> str:
    return page.locator(f'#grid button[data-flat="{flat}"]').get_attribute("class")


def server_state(app, agent_login="agent1"):
    from sqlalchemy import func, select

    from crm.contracts.models import Contract
    from crm.extensions import db
    from crm.visits.models import Visit

    with app.app_context():
        agent = u(agent_login)
        visits = db.session.execute(select(Visit.client_id, Visit.flat, Visit.outcome, Visit.building_id,
                                           Visit.contract_id, Visit.callback_at).where(Visit.agent_id == agent.id)).all()
        contracts = db.session.execute(select(Contract.id, Contract.client_id, Contract.flat, Contract.number,
                                              Contract.phone, Contract.subscriber_name, Contract.rate_version_id)
                                       .where(Contract.agent_id == agent.id)).all()
        dup_visits = db.session.execute(select(Visit.client_id).group_by(Visit.client_id)
                                        .having(func.count() > 1)).all()
        dup_contracts = db.session.execute(select(Contract.client_id).where(Contract.client_id.is_not(None))
                                           .group_by(Contract.client_id).having(func.count() > 1)).all()
        return SimpleNamespace(visits=visits, contracts=contracts, dup_visits=dup_visits, dup_contracts=dup_contracts)


# --- the journey ---------------------------------------------------------------------------------

def test_agent_works_offline_across_a_browser_restart(world, live_server, tmp_path):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"system Chromium not found at {CHROMIUM}")
    profile = tmp_path / "chromium-profile"
    watch = Watch()
    net = Network(watch)
    started = time.monotonic()
    logged: dict[int, str] = {}  # flat → client id of what the phone logged there

    with sync_api.sync_playwright() as pw:
        # ---------------------------------------------------------------- online: the day, the door grid
        context, page = launch(pw, profile, live_server, net)
        sign_in(page, "agent1")
        page.goto("/field")
        wait_controlled(page)
        page.locator("#buildings li a").first.wait_for()
        assert page.locator("#buildings li a").count() == 2
        wait_waiting(page, 0)
        assert "off" not in page.locator("#net").get_attribute("class").split()
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-day.png")

        page.locator(f'#buildings a[href="#b{world.tower}"]').tap()
        page.locator("#view-building").wait_for(state="visible")
        assert page.locator("#grid button[data-flat]").count() == 12
        assert page.locator("#grid section.entrance").count() == 2
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-grid.png", full_page=True)

        # ---------------------------------------------------------------- three outcomes and a contract, sent
        tap_flat(page, 1)
        assert page.locator("#outcomes button[data-outcome]").count() == 10
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-sheet.png")
        [r] = sent(page, lambda: tap_outcome(page, "not_home"))
        assert r["status"] == "created", r
        logged[1] = r["client_id"]
        assert "o-not_home" in door_class(page, 1)

        tap_flat(page, 2)
        [r] = sent(page, lambda: tap_outcome(page, "refused"))
        assert r["status"] == "created", r
        logged[2] = r["client_id"]

        tap_flat(page, 3)
        tap_outcome(page, "callback")
        page.locator("#f-callback").wait_for(state="visible")
        page.locator("#extra-save").tap()  # without a time: refused on the phone
        assert page.locator("#extra-error").inner_text().strip()
        tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT18:30")
        page.fill("#f-callback", tomorrow)
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-callback.png")
        [r] = sent(page, lambda: page.locator("#extra-save").tap())
        assert r["status"] == "created", r
        logged[3] = r["client_id"]

        tap_flat(page, 4)
        tap_outcome(page, "signed")
        page.locator("#view-contract").wait_for(state="visible")
        assert page.locator("#sheet").is_hidden()
        tariffs = page.locator("#c-tariff option").evaluate_all("os => os.map(o => o.value)")
        assert tariffs == ["net100", "net300", "net500"], tariffs
        page.fill("#c-name", "Анна Смирнова")
        page.fill("#c-phone", PHONE_NUMBER)
        page.select_option("#c-tariff", "net300")
        page.locator("#c-adult").tap()
        assert page.locator("#c-adult").is_checked()
        # net300 earns 2000.00 under the test rates; shown in the page's language ("2 000,00 ₽" in Russian)
        assert re.sub(r"\D", "", page.locator("#c-commission").inner_text()) == "200000"
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-contract.png", full_page=True)
        [r] = sent(page, lambda: page.locator('#contract-form button[type="submit"]').tap())
        assert r["status"] == "created" and r["contract_number"], r
        contract_client_id = r["client_id"]
        page.locator("#view-building").wait_for(state="visible")
        assert "o-signed" in door_class(page, 4)

        state = server_state(world.app)
        assert len(state.visits) == 4 and len(state.contracts) == 1, state

        # ---------------------------------------------------------------- offline: reload from the cache, two more
        net.set_offline(True)
        page.wait_for_function("!navigator.onLine")
        hits_offline = len(world.hits)
        response = page.reload()
        assert response is not None and response.ok and response.from_service_worker, \
            "the offline reload of /field was not answered by the service worker"
        page.locator("#view-building").wait_for(state="visible")  # the hash route: the same building again
        wait_waiting(page, 0)
        assert "off" in page.locator("#net").get_attribute("class").split()
        assert "o-signed" in door_class(page, 4) and "o-refused" in door_class(page, 2)

        tap_flat(page, 5)
        tap_outcome(page, "not_home")
        wait_waiting(page, 1)
        tap_flat(page, 6)
        tap_outcome(page, "no_access")
        wait_waiting(page, 2)
        assert "pending" in door_class(page, 5) and "pending" in door_class(page, 6)
        assert re.search(r"\b2\b", page.locator("#waiting").inner_text())  # "2 waiting", "в очереди: 2"
        page.evaluate("window.scrollTo(0, 0)")
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-offline.png")
        pending = {i["flat"]: i for i in queued(page)}
        assert sorted(pending) == [5, 6] and all(i["state"] == "pending" for i in pending.values()), pending
        context.close()  # the whole browser goes away with its persistent profile

        # ---------------------------------------------------------------- a restart, still offline
        context, page = launch(pw, profile, live_server, net, offline=True)
        response = page.goto(f"/field#b{world.tower}")
        assert response is not None and response.ok and response.from_service_worker, \
            "the offline navigation to /field was not answered by the service worker"
        page.locator("#view-building").wait_for(state="visible")
        wait_waiting(page, 2)
        assert "pending" in door_class(page, 5) and "pending" in door_class(page, 6)
        assert_no_horizontal_scroll(page)
        screenshot(page, "field-restarted-offline.png")
        assert {i["client_id"] for i in queued(page)} == {i["client_id"] for i in pending.values()}
        assert len(world.hits) == hits_offline, f"the server was reached while offline: {world.hits[hits_offline:]}"

        # ---------------------------------------------------------------- back online: the queue drains
        with page.expect_response(is_sync) as answer:
            net.set_offline(False)  # the page listens to the `online` event
        assert answer.value.status == 200, answer.value.text()
        results = answer.value.json()["results"]
        assert sorted(r["client_id"] for r in results) == sorted(i["client_id"] for i in pending.values())
        assert all(r["status"] == "created" for r in results), results
        wait_waiting(page, 0)
        page.wait_for_function("() => !document.querySelector('#grid .door.pending')")
        assert "off" not in page.locator("#net").get_attribute("class").split()
        assert queued(page) == []
        screenshot(page, "field-back-online.png")
        logged[5], logged[6] = pending[5]["client_id"], pending[6]["client_id"]
        context.close()

    # ---------------------------------------------------------------- the server: each client id exactly once
    state = server_state(world.app)
    assert not state.dup_visits and not state.dup_contracts
    assert len(state.visits) == 6, state.visits
    by_client = {row.client_id: row for row in state.visits}
    assert len(by_client) == 6
    assert set(by_client) == set(logged.values()) | {f"{contract_client_id}#signed"}
    assert {flat: by_client[cid].outcome for flat, cid in logged.items()} == {
        1: "not_home", 2: "refused", 3: "callback", 5: "not_home", 6: "no_access"}
    assert all(row.building_id == world.tower for row in state.visits)
    assert by_client[logged[3]].callback_at is not None
    [contract] = state.contracts
    assert contract.client_id == contract_client_id and contract.flat == 4
    assert contract.phone == PHONE_NUMBER and contract.subscriber_name == "Анна Смирнова"
    assert contract.rate_version_id is not None
    assert by_client[f"{contract_client_id}#signed"].contract_id == contract.id
    assert by_client[f"{contract_client_id}#signed"].flat == 4

    sync_posts = [h for h in world.hits if h == "POST /api/v1/sync"]
    assert len(sync_posts) == 5, world.hits  # one per send: four online, one after the restart
    assert not watch.foreign, f"requests to other hosts: {watch.foreign}"
    assert not watch.page_errors, f"page errors: {watch.page_errors}"
    watch.assert_clean()  # no foreign requests, page errors, console errors or failed responses
    assert time.monotonic() - started < 60

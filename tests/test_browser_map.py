"""The map editor in a real browser: a supervisor draws a zone with Leaflet.draw and saves it.

The app runs on a live server (SQLite, a private copy of the demo database) with
``TILE_URL`` pointed at a stub tile server on 127.0.0.1 that answers every path with
a generated 256×256 PNG. Every request the browser makes is routed through a handler
that aborts (and records) anything not addressed to 127.0.0.1, so the test proves the
map page loads nothing from the internet. Console errors and page errors fail the test.

Screenshots go to ``artifacts/screenshots/map-*.png``.
"""
from __future__ import annotations

import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from helpers import operator
from test_browser import (  # noqa: F401 (fixtures)
    PHONE,
    PHONE_WIDTH,
    TIMEOUT_MS,
    backend,
    browser,
    live_server,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}}

# lon/lat boxes (west, south, east, north), around Yekaterinburg's centre
TERRITORY = (60.580, 56.825, 60.630, 56.855)
BUILDINGS_BOX = (60.600, 56.836, 60.610, 56.842)   # a 4×3 grid of buildings
ZONE = (60.597, 56.834, 60.613, 56.844)            # covers the buildings, inside the territory
OUTSIDE_ZONE = (60.620, 56.828, 60.640, 56.832)    # sticks out of the territory's east side by ~600 m
TERRITORY_NAME = "Центр-Север"
ZONE_NAME = "Зона Ц-1"


def _box_polygon(box) -> dict:
    w, s, e, n = box
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


# --- the stub tile server --------------------------------------------------------

def _png(width: int = 256, height: int = 256) -> bytes:
    """A light grey RGB PNG with a darker 32 px grid, built by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    light, dark = b"\xee\xee\xe8", b"\xc8\xc8\xc0"
    grid_row = b"\x00" + dark * width
    plain_row = b"\x00" + b"".join(dark if x % 32 == 0 else light for x in range(width))
    raw = b"".join(grid_row if y % 32 == 0 else plain_row for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bit, truecolour
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


TILE_PNG = _png()


@pytest.fixture
def tile_server():
    """Answers every GET with the PNG; yields (TILE_URL template, list of paths served)."""
    served: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TILE_PNG)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(TILE_PNG)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="tile-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the app: demo people, sup1's territory, a dozen unzoned buildings -------------

@pytest.fixture
def demo_app(demo_db_url, make_app, tile_server):
    """Overrides conftest's ``demo_app`` (which ``live_server`` serves): tiles from the stub."""
    from crm.users.services import find_by_login
    from territories import services
    from territories.importer import import_buildings
    from territories.importfile import BuildingRecord

    app = make_app(demo_db_url, TILE_URL=tile_server[0])
    with operator(app):
        head, sup1 = find_by_login("head"), find_by_login("sup1")
        services.save_territory(None, name=TERRITORY_NAME, geometry_json=_box_polygon(TERRITORY),
                                supervisor=sup1, region=head)
        w, s, e, n = BUILDINGS_BOX
        records = []
        for i in range(12):
            row, col = divmod(i, 4)
            lat, lon = s + (n - s) * row / 2, w + (e - w) * col / 3
            records.append(BuildingRecord(index=i + 1, label=f"#{i + 1}", external_id=f"map-b{i + 1:02d}",
                                          lat=lat, lon=lon, footprint=None,
                                          fields={"address": f"ул. Тестовая, {i + 1}", "apartments": 40,
                                                  "entrances": 2, "floors": 9}))
        result = import_buildings(records, [], source="test:map")
        assert result.imported == 12 and not result.rejected
    with app.app_context():
        from sqlalchemy import select

        from crm.extensions import db
        from territories.models import Building

        rows = db.session.execute(select(Building.territory_id, Building.zone_id)).all()
        assert len(rows) == 12 and all(t is not None and z is None for t, z in rows), rows
    return app


# --- the browser: every request checked, every console error kept ----------------

class Watch:
    """What the pages did wrong: requests to other hosts, console errors, uncaught exceptions."""

    def __init__(self):
        self.foreign: list[str] = []
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []

    def route(self, route):
        url = route.request.url
        if urlsplit(url).hostname != "127.0.0.1":
            self.foreign.append(url)
            route.abort()
        else:
            route.continue_()

    def attach(self, page):
        page.on("console", lambda msg: self.console.append(f"{msg.text} @ {msg.location}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("requestfailed", lambda req: None if _benign_abort(req) else
                self.failed.append(f"{req.url}: {req.failure}"))
        page.on("response", lambda resp: self.failed.append(f"{resp.url}: HTTP {resp.status}")
                if resp.status >= 400 and not _tile(resp.url) and not _expected_refusal(resp) else None)

    def assert_clean(self):
        console = [line for line in self.console if not _expected_console(line)]
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not self.page_errors, f"page errors: {self.page_errors}"
        assert not console, f"console errors: {console}"
        assert not self.failed, f"failed requests: {self.failed}"


def _tile(url: str) -> bool:
    return url.endswith(".png") and "/vendor/" not in url and "/static/" not in url


def _benign_abort(req) -> bool:
    """Leaflet cancels tiles it no longer needs; a navigation cancels the favicon's load."""
    return req.failure == "net::ERR_ABORTED" and (_tile(req.url) or urlsplit(req.url).path == "/static/favicon.svg")


def _expected_console(line: str) -> bool:
    """Chromium logs every HTTP error response; the deliberate 422 and tile 404s are expected."""
    if not line.startswith("Failed to load resource"):
        return False
    return ("status of 422" in line and "/api/v1/map/zones'" in line) or ("status of 404" in line and _tile(
        line.split("'url': '")[-1].split("'")[0]))


def _expected_refusal(resp) -> bool:
    """The deliberately refused zone (422 from the zones endpoint)."""
    return resp.status == 422 and urlsplit(resp.url).path == "/api/v1/map/zones"


@pytest.fixture
def watch():
    """Checked by the test itself (``watch.assert_clean()``) once the journey is done."""
    return Watch()


@pytest.fixture
def open_page(browser, live_server, watch):  # noqa: F811 (fixtures imported above)
    """``open_page(**context_options)`` → a page in a fresh context, watched."""
    contexts = []

    def factory(**options):
        context = browser.new_context(base_url=live_server, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", watch.route)
        contexts.append(context)
        page = context.new_page()
        watch.attach(page)
        return page

    yield factory
    for context in contexts:
        context.close()


# --- map helpers -------------------------------------------------------------------

def open_map(page, expected_count: int):
    page.goto("/map")
    config = json.loads(page.locator("#map-config").text_content())
    page.wait_for_function("document.querySelector('#map-status').dataset.count !== undefined")
    assert page.locator("#map-status").get_attribute("data-count") == str(expected_count)
    assert page.evaluate("typeof L") == "object"
    return config


def wait_map_idle(page, name: str):
    """Wait until the map has stopped moving and its visible tiles have loaded."""
    page.wait_for_function(
        """name => { const m = window[name]; if (!m || m._animatingZoom || (m._panAnim && m._panAnim._inProgress)) return false;
                     const tiles = [...document.querySelectorAll('.leaflet-tile')];
                     return tiles.length > 0 && tiles.every(t => t.complete); }""", arg=name)


def show_box(page, name: str, box, pad: float = 0.15):
    """Fit the map to ``box`` (plus ``pad`` of its size on each side), without animation."""
    page.evaluate("""([name, b, pad]) => { const m = window[name];
        m.fitBounds(L.latLngBounds([b[1], b[0]], [b[3], b[2]]).pad(pad), {animate: false}); }""",
                  [name, list(box), pad])
    page.evaluate("window.scrollTo(0, 0)")
    wait_map_idle(page, name)


def to_screen(page, name: str, lat: float, lon: float) -> tuple[float, float]:
    """Viewport pixel coordinates of a point on the map."""
    point = page.evaluate("""([name, lat, lon]) => { const m = window[name];
        const p = m.latLngToContainerPoint([lat, lon]); const r = m.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }""", [name, lat, lon])
    return point[0], point[1]


def draw_rectangle(page, config: dict, box):
    """Pick the rectangle tool and drag from the box's north-west to its south-east corner;
    check that the drawn rectangle is ``box`` (to a few metres)."""
    name = config["map"]
    w, s, e, n = box
    page.locator(".leaflet-draw-draw-rectangle").click()
    page.locator(".leaflet-draw-draw-rectangle.leaflet-draw-toolbar-button-enabled").wait_for()
    x1, y1 = to_screen(page, name, n, w)
    x2, y2 = to_screen(page, name, s, e)
    size = page.evaluate("([n]) => { const s = window[n].getSize(); return [s.x, s.y]; }", [name])
    assert 0 < x1 < x2 and 0 < y1 < y2, (x1, y1, x2, y2, size)
    # Leaflet's canvas renderer (the map has preferCanvas) passes on at most one mousemove per
    # 32 ms and drops the rest, so the drag moves in paced steps, ending with a real move
    # (Chromium does not dispatch a move to where the pointer already is) onto the corner.
    page.mouse.move(x1, y1)
    page.wait_for_timeout(60)
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(x1 + (x2 - x1) * k / 6, y1 + (y2 - y1) * k / 6)
        page.wait_for_timeout(60)
    page.mouse.move(x2 - 2, y2 - 2)
    page.wait_for_timeout(60)
    page.mouse.move(x2, y2)
    page.wait_for_timeout(60)
    page.mouse.up()
    page.locator("#polygon-form").wait_for(state="visible")
    drawn = page.evaluate("""([g]) => { const ls = window[g].getLayers(); const b = ls[ls.length - 1].getBounds();
        return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }""", [config["drawn"]])
    assert all(abs(a - b) < 0.0002 for a, b in zip(drawn, box)), f"drew {drawn}, meant {list(box)}"


def assert_no_horizontal_scroll(page, width: int = PHONE_WIDTH):
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"


def db_state(app):
    from sqlalchemy import func, select

    from crm.extensions import db
    from crm.users.services import find_by_login
    from territories import services
    from territories.models import Building, Zone

    with app.app_context():
        zones = db.session.scalars(select(Zone).order_by(Zone.id)).all()
        buildings = dict(db.session.execute(select(Building.external_id, Building.zone_id)).all())
        agent = find_by_login("agent1")
        current = {z.name: services.current_assignment(z.id) for z in zones}
        state = {"zones": [(z.id, z.name, z.territory_id) for z in zones], "buildings": buildings,
                 "assignments": {name: (a.agent_id if a else None, a.valid_from if a else None, a.valid_to if a else None)
                                 for name, a in current.items()},
                 "agent1": agent.id,
                 "agent1_zones": db.session.scalars(services.agent_zone_ids(agent)).all(),
                 "zone_count": db.session.scalar(select(func.count()).select_from(Zone))}
        db.session.remove()
        return state


# --- the journey ---------------------------------------------------------------------

def test_supervisor_draws_a_zone_and_agent_sees_it(open_page, demo_app, tile_server, watch):
    tile_url, tiles_served = tile_server

    # --- desktop: sup1 sees the territory and the 12 queued buildings
    page = open_page(**DESKTOP)
    sign_in(page, "sup1")
    config = open_map(page, expected_count=12)
    name = config["map"]
    assert config["editable"] is True and config["role"] == "supervisor"
    assert page.evaluate("typeof L.Draw") == "object"
    assert page.evaluate("typeof L.Control.Draw") == "function"
    assert page.locator(".leaflet-draw-draw-rectangle").count() == 1
    assert page.locator(".leaflet-draw-draw-polygon").count() == 1
    assert tile_url.split("{z}")[0] in page.content()  # the page's tile layer is the stub

    # --- draw the zone over the buildings, assign agent1, save
    show_box(page, name, TERRITORY, pad=0.1)
    assert tiles_served, "the map asked the stub tile server for nothing"
    draw_rectangle(page, config, ZONE)
    assert page.locator("#pf-title").is_visible()
    page.fill("#pf-name", ZONE_NAME)
    state = db_state(demo_app)
    page.select_option("#pf-owner", value=str(state["agent1"]))
    today = page.input_value("#pf-from")
    assert today == "2026-11-20"  # the app's (fixed) clock
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/map/zones") as answer:
        page.click("#pf-save")
    assert answer.value.status == 201, answer.value.text()
    page.wait_for_function("name => document.querySelector('#map-status').dataset.saved === name", arg=ZONE_NAME)
    assert page.locator("#polygon-form").is_hidden()
    assert page.locator("#pf-error").text_content() == ""

    state = db_state(demo_app)
    assert [z[1] for z in state["zones"]] == [ZONE_NAME]
    zone_id = state["zones"][0][0]
    assert set(state["buildings"].values()) == {zone_id}, state["buildings"]
    assert state["assignments"][ZONE_NAME][0] == state["agent1"]
    assert str(state["assignments"][ZONE_NAME][1]) == today and state["assignments"][ZONE_NAME][2] is None
    assert state["agent1_zones"] == [zone_id]

    # the page reloaded its data: the zone is in the table, the buildings are no longer queued (red)
    page.wait_for_function("() => document.querySelectorAll('#zone-table tbody tr').length === 1")
    row = page.locator("#zone-table tbody tr").first.inner_text()
    assert ZONE_NAME in row and "Дмитрий Козлов" in row and "12" in row
    page.evaluate("window.scrollTo(0, 0)")
    wait_map_idle(page, name)
    screenshot(page, "map-supervisor-desktop.png", full_page=True)

    # --- a zone sticking out of the territory is refused with the server's words
    show_box(page, name, (TERRITORY[0], TERRITORY[1], OUTSIDE_ZONE[2], TERRITORY[3]), pad=0.1)
    draw_rectangle(page, config, OUTSIDE_ZONE)
    page.fill("#pf-name", "Зона за границей")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/map/zones") as answer:
        page.click("#pf-save")
    refusal = answer.value
    assert refusal.status == 422, refusal.text()
    message = refusal.json()["error"]["message"]
    assert TERRITORY_NAME in message
    page.wait_for_function("() => document.querySelector('#pf-error').textContent.trim() !== ''")
    shown = page.locator("#pf-error").inner_text()
    assert message in shown, (message, shown)
    assert page.locator("#pf-error").is_visible()
    assert page.locator("#polygon-form").is_visible()
    screenshot(page, "map-supervisor-refused-desktop.png", full_page=True)
    after = db_state(demo_app)
    assert after["zone_count"] == 1 and after["buildings"] == state["buildings"]
    page.click("#pf-cancel")
    assert page.locator("#polygon-form").is_hidden()

    # --- sup1 on a phone
    phone = open_page(**PHONE)
    sign_in(phone, "sup1")
    config = open_map(phone, expected_count=12)
    phone.wait_for_function("() => document.querySelectorAll('#zone-table tbody tr').length === 1")
    wait_map_idle(phone, config["map"])
    assert_no_horizontal_scroll(phone)
    screenshot(phone, "map-supervisor-phone.png")
    screenshot(phone, "map-supervisor-phone-full.png", full_page=True)

    # --- agent1 on a phone: own zone with its 12 buildings, nothing editable
    agent = open_page(**PHONE)
    sign_in(agent, "agent1")
    config = open_map(agent, expected_count=12)
    assert config["editable"] is False and config["role"] == "agent"
    assert agent.locator(".leaflet-draw-draw-rectangle").count() == 0
    assert agent.locator("#polygon-form").count() == 0
    zones = agent.evaluate("""() => fetch('/api/v1/map/polygons', {credentials: 'same-origin'})
        .then(r => r.json()).then(d => d.features.map(f => [f.properties.kind, f.properties.name]))""")
    assert ["zone", ZONE_NAME] in zones
    wait_map_idle(agent, config["map"])
    assert_no_horizontal_scroll(agent)
    screenshot(agent, "map-agent1-phone.png")
    screenshot(agent, "map-agent1-phone-full.png", full_page=True)

    watch.assert_clean()


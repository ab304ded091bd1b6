"""Phone journeys in a real browser: the app on a live HTTP server, driven by headless Chromium.

Each test gets its own server (the ``demo_app`` fixture is per test: a private copy
of the demo database); the browser is shared by the module, every test opens a
fresh context (its own cookies) with a 390×844 phone viewport.

We always use the system Chromium (``/usr/bin/chromium``), never ``playwright install``.
Screenshots go to ``artifacts/screenshots/`` at the repository root (git-ignored).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-sync", "--disable-background-networking", "--disable-component-update"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
PHONE_WIDTH = PHONE["viewport"]["width"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
TIMEOUT_MS = 10_000


# --- plumbing -----------------------------------------------------------------

@pytest.fixture
def backend():
    """Browser journeys run on SQLite only (overrides the parametrized conftest fixture)."""
    return "sqlite"


@pytest.fixture
def live_server(demo_app):
    """The demo app served over real HTTP from a daemon thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, demo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"system Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def assert_no_horizontal_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"{page.url} is {width}px wide on a {PHONE_WIDTH}px phone"


def sign_in(page, login_name: str, password: str = "demo"):
    page.goto("/login")
    page.fill("#login", login_name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("form:has(#password) button[type=submit]")


def path_of(page) -> str:
    from urllib.parse import urlsplit

    return urlsplit(page.url).path


# --- journeys -------------------------------------------------------------------

def test_head_signs_in_on_a_phone(page):
    page.goto("/login")
    assert page.locator("#login").is_visible()
    assert page.locator("#password").is_visible()
    assert_no_horizontal_scroll(page)
    screenshot(page, "login-390x844.png")

    sign_in(page, "head")

    assert path_of(page) == "/home"
    assert "Ирина Соколова" in page.locator("main h1").inner_text()
    nav = page.locator("nav.mainnav")
    assert nav.locator('a[href="/audit"]').count() == 1
    assert_no_horizontal_scroll(page)
    screenshot(page, "home-head-390x844.png", full_page=True)


def test_agent_sees_no_admin_links_and_big_tap_targets(page):
    sign_in(page, "agent1")

    assert path_of(page) == "/home"
    assert "Дмитрий Козлов" in page.locator("main h1").inner_text()
    screenshot(page, "home-agent1-390x844.png", full_page=True)

    for href in ("/audit", "/api-keys"):
        assert page.locator(f'a[href^="{href}"]').count() == 0, f"agent sees a link to {href}"
    assert_no_horizontal_scroll(page)

    targets = page.locator("nav.mainnav a, nav.mainnav button")
    assert targets.count() >= 3  # home, my profile, password, sign out
    small = []
    for i in range(targets.count()):
        target = targets.nth(i)
        if not target.is_visible():
            continue
        box = target.bounding_box()
        if box is None or box["height"] < 44:
            small.append((target.inner_text().strip(), box and box["height"]))
    assert not small, f"nav tap targets under 44px: {small}"


def test_wrong_password_shows_an_error(page):
    sign_in(page, "head", "not-the-password")

    assert path_of(page) == "/login"
    flash = page.locator(".flashes[role=status] .flash-error")
    assert flash.count() == 1
    assert flash.is_visible()
    assert flash.inner_text().strip()
    assert page.locator("nav.mainnav").count() == 0  # still signed out
    assert_no_horizontal_scroll(page)
    screenshot(page, "login-error-390x844.png")


def test_language_switch_to_english(page):
    page.goto("/login")
    with page.expect_navigation():
        page.click('footer form.lang button[value="en"]')

    assert path_of(page) == "/login"
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("main h1").inner_text().strip() == "Sign in"
    assert "current" in (page.locator('footer button[value="en"]').get_attribute("class") or "")

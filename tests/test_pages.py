"""Error pages, flash messages, role-aware navigation and times in the company zone."""
from __future__ import annotations

import pytest

from tests.helpers import login, user_id


def test_friendly_404_and_403_pages(demo_client):
    login(demo_client, "agent1")
    missing = demo_client.get("/no/such/page")
    assert missing.status_code == 404 and 'class="card error-page"' in missing.get_data(as_text=True)
    forbidden = demo_client.get("/audit")
    assert forbidden.status_code == 403 and "403" in forbidden.get_data(as_text=True)


def test_unexpected_errors_get_a_friendly_500_and_nothing_half_written(demo_app):
    from sqlalchemy import func, select

    from crm.audit import services as audit
    from crm.audit.models import AuditEvent
    from crm.extensions import db

    @demo_app.route("/boom", methods=["POST"])
    def boom():
        audit.record("test.half_way", "thing", 1)
        raise RuntimeError("boom")

    demo_app.config["WTF_CSRF_ENABLED"] = False
    client = demo_app.test_client()
    response = client.post("/boom")
    assert response.status_code == 500
    assert "error-page" in response.get_data(as_text=True)
    with demo_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "test.half_way")) == 0
    api = client.get("/api/v1/nothing-here")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("who, visible, hidden", [
    ("agent1", ["/users/"], ["/audit", "/api-keys", "/users/grants"]),
    ("sup1", ["/users", "/users/new"], ["/audit", "/api-keys", "/users/grants"]),
    ("head", ["/users", "/audit", "/users/grants"], ["/api-keys"]),
    ("fin1", ["/users", "/users/grants"], ["/audit", "/api-keys"]),
    ("admin", ["/users", "/audit", "/api-keys", "/users/grants"], []),
])
def test_navigation_follows_the_role(demo_client, who, visible, hidden):
    login(demo_client, who)
    html = demo_client.get("/home").get_data(as_text=True)
    for href in visible:
        assert f'href="{href}' in html, href
    for href in hidden:
        assert f'href="{href}"' not in html, href


def test_times_are_shown_in_the_company_time_zone(demo_app, demo_client, clock):
    # the demo people were created at 09:00 UTC, which is 14:00 in Asia/Yekaterinburg (+05:00)
    login(demo_client, "admin")
    demo_client.get("/login?lang=en")
    html = demo_client.get(f"/users/{user_id(demo_app, 'agent1')}").get_data(as_text=True)
    assert "14:00" in html and "09:00" not in html


def test_flash_message_after_an_action(demo_app, demo_client):
    from tests.helpers import post

    login(demo_client, "sup1")
    response = post(demo_client, f"/users/{user_id(demo_app, 'agent2')}/deactivate", follow_redirects=True)
    assert response.status_code == 200 and 'class="flash flash-success"' in response.get_data(as_text=True)

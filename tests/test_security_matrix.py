"""Every route and API endpoint, requested as each kind of user, against a hand-written table.

Roles (columns): anonymous, agent1, agent5 (another team's agent), sup1, sup2 (another
team's supervisor), head (sales head), fin1 (finance), admin. The objects in the paths
belong to agent1 / sup1 (contract C1, territory T1, zone Z1, dispute D1, …).

Outcomes: ``A`` allowed (2xx, a redirect elsewhere than the login, or a validation
answer 400/422 to the deliberately empty form), ``D`` denied (403, or 404: not yours to
see), ``L`` not signed in (a redirect to the login page, or 401 from the API).
The app's URL map is used only to fail when a route is missing from the table.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from tests.helpers import csrf_token, login, operator
from tests.money import build_world, event, sign, territory_with_zone

ROLES = ("anon", "agent1", "agent5", "sup1", "sup2", "head", "fin1", "admin")
ALL, SIGNED_IN = "AAAAAAAA", "LAAAAAAA"

# (method, path template, expected per role in ROLES order) — written from PRODUCT.md §2 and
# the README's "Who can do what", not read back from the app.
TABLE = [
    ("GET", "/", SIGNED_IN),
    ("POST", "/account/language", ALL),
    ("GET", "/account/password", SIGNED_IN),
    ("POST", "/account/password", SIGNED_IN),
    ("GET", "/api-keys", "LDDDDDDA"),
    ("POST", "/api-keys", "LDDDDDDA"),
    ("POST", "/api-keys/{key}/revoke", "LDDDDDDA"),
    ("POST", "/api/v1/buildings", "LLLLLLLL"),  # an API key, never a session
    ("POST", "/api/v1/contracts/{c1}/events", "LLLLLLLL"),
    ("POST", "/api/v1/doors/unlock", "LDDAAADD"),
    ("POST", "/api/v1/map/zones/{z1}/retire", "LDDADADD"),
    ("GET", "/api/v1/map/buildings", "LAAAAAAD"),
    ("GET", "/api/v1/map/buildings/{b1}", "LADADAAD"),
    ("GET", "/api/v1/map/polygons", "LAAAAAAD"),
    ("POST", "/api/v1/map/territories", "LDDDDADD"),
    ("PUT", "/api/v1/map/territories/{t1}", "LDDDDADD"),
    ("POST", "/api/v1/map/zones", "LDDAAADD"),
    ("PUT", "/api/v1/map/zones/{z1}", "LDDADADD"),
    ("GET", "/api/v1/me", SIGNED_IN),
    ("GET", "/api/v1/me/zones", "LAADDDDD"),
    ("GET", "/api/v1/openapi.json", ALL),
    ("POST", "/api/v1/sync", "LAADDDDD"),
    ("GET", "/audit", "LDDDDADA"),
    ("GET", "/buildings/import", "LDDDDADD"),
    ("POST", "/buildings/import", "LDDDDADD"),
    ("GET", "/catalogue", "LAAAAAAD"),  # everyone sells from it; only the sales head changes it
    ("POST", "/catalogue", "LDDDDADD"),
    ("POST", "/catalogue/tv/archive", "LDDDDADD"),
    ("GET", "/contracts", "LAAAAAAD"),
    ("GET", "/contracts/{c1}", "LADADAAD"),
    ("POST", "/contracts/{c1}/events", "LDDDDAAD"),
    ("GET", "/contracts/new", "LAAAAADD"),
    ("POST", "/contracts/new", "LAAAAADD"),
    ("GET", "/dashboard", "LAAAAAAD"),
    ("GET", "/dashboard/me", "LAADDDDD"),
    ("GET", "/dashboard/records?figure=contracts&period=2026-11", "LAAAAAAD"),
    ("GET", "/dashboard/team", "LDDAAAAD"),
    ("GET", "/field", "LAADDDDD"),
    ("GET", "/finance", "LDDAAAAD"),
    ("GET", "/finance/adjustments", "LDDAAAAD"),
    ("POST", "/finance/adjustments", "LDDAAAAD"),
    ("POST", "/finance/adjustments/{a1}/approve", "LDDDDDAD"),
    ("GET", "/finance/disputes", "LAAAAAAD"),
    ("POST", "/finance/disputes", "LAADDDDD"),
    ("GET", "/finance/disputes/{d1}", "LADADAAD"),
    ("POST", "/finance/disputes/{d1}", "LADADAAD"),
    ("POST", "/finance/disputes/{d1}/reject", "LDDADAAD"),
    ("GET", "/finance/periods/2026-11", "LDDAAAAD"),
    ("POST", "/finance/periods/2026-12/close", "LDDDDDAD"),
    ("GET", "/finance/periods/2026-11/export.csv", "LDDAAAAD"),
    ("POST", "/finance/periods/2026-11/payout", "LDDDDDAD"),
    ("GET", "/home", SIGNED_IN),
    ("GET", "/inbox", SIGNED_IN),
    ("POST", "/inbox", SIGNED_IN),
    ("GET", "/login", ALL),
    ("POST", "/login", ALL),
    ("POST", "/logout", "LLLLLLLL"),  # signing out ends on the login page (checked below)
    ("GET", "/manifest.webmanifest", ALL),
    ("GET", "/map", "LAAAAAAD"),
    ("GET", "/me/history", "LAAAADDD"),
    ("GET", "/money", "LAAAAAAD"),
    ("GET", "/plans", "LDDDDADD"),
    ("POST", "/plans", "LDDDDADD"),
    ("GET", "/rates", "LDDAAAAD"),
    ("POST", "/rates", "LDDDDADD"),
    ("GET", "/statement", "LAAAAAAD"),
    ("GET", "/static/css/app.css", ALL),
    ("GET", "/sw.js", ALL),
    ("GET", "/team", "LDDAAADD"),
    ("GET", "/team/flags", "LDDAAADD"),
    ("GET", "/team/locks", "LDDAAADD"),
    ("POST", "/team/locks/{b1}/1/unlock", "LDDADADD"),
    ("GET", "/territories", "LDDAAAAD"),
    ("GET", "/territories/{t1}", "LDDADAAD"),
    ("POST", "/territories/{t1}", "LDDDDADD"),  # the hand-over form is the sales head's
    ("GET", "/users", "LAAAAAAA"),  # an agent is taken to their own profile
    ("GET", "/users/{agent1}", "LADADAAA"),
    ("POST", "/users/{agent1}/deactivate", "LDDADADA"),
    ("POST", "/users/{agent1}/edit", "LDDADAAA"),
    ("POST", "/users/{agent1}/move", "LDDADADA"),
    ("POST", "/users/{agent1}/reactivate", "LDDADADA"),
    ("POST", "/users/{agent1}/role", "LDDDDAAA"),  # finance and the sales head propose privileged roles
    ("POST", "/users/{agent1}/temporary-password", "LDDADADA"),
    ("GET", "/users/grants", "LDDDDAAA"),
    ("POST", "/users/grants/{grant}/confirm", "LDDDDDAD"),
    ("POST", "/users/grants/{grant}/reject", "LDDDDDAD"),
    ("GET", "/users/new", "LDDAAAAA"),  # finance proposes finance and sales head users
    ("POST", "/users/new", "LDDAAAAA"),
    ("GET", "/vendor/leaflet/leaflet.js", ALL),
    ("POST", "/zones/{z1}/assign", "LDDADADD"),
    ("POST", "/zones/{z1}/release", "LDDADADD"),
]
#: requests that change the session or a shared object go last, in this order
LAST = ("/users/grants/{grant}/confirm", "/api/v1/map/zones/{z1}/retire", "/users/{agent1}/deactivate", "/users/{agent1}/role", "/users/{agent1}/move",
        "/logout")


def _world(app, clock):
    """The objects the paths name, all belonging to agent1 and sup1."""
    from crm.apikeys import services as keys
    from crm.finance import services as finance
    from crm.users.services import create_user, find_by_login
    from territories.models import Building

    build_world(app, clock, buildings=2)
    with operator(app) as session:
        head = find_by_login("head")
        t1, z1 = territory_with_zone(session, clock, supervisor="sup1", name="T1", zone="Z1", buildings=["b1"],
                                     agent="agent1")
        b1 = session.scalars(select(Building).where(Building.external_id == "b1")).one()
        key, _plain = keys.create_key(None, "billing", ["contracts:events"])
        _user, grant = create_user(head, login="fin3", name="Третий финансист", role="finance",
                                   password="Str0ng-enough-pass")
        ids = {"t1": t1.id, "z1": z1.id, "b1": b1.id, "key": key.id, "grant": grant.id}
    c1 = sign(app, clock, agent="agent1", building="b1", flat=1)
    sign(app, clock, agent="agent5", building="b2", flat=1)
    clock.advance(hours=1)
    event(app, c1, "activated", clock.now())
    with operator(app):
        agent1, sup1 = find_by_login("agent1"), find_by_login("sup1")
        a1 = finance.propose_adjustment(sup1, beneficiary=agent1, amount=1000, reason="matrix")
        d1 = finance.open_dispute(agent1, text="flat 57 is missing")
        ids.update(a1=a1.id, d1=d1.id, agent1=agent1.id, c1=c1)
    clock.set(datetime(2026, 12, 2, 5, tzinfo=timezone.utc))
    with operator(app):
        finance.close_period(None, "2026-11")
    clock.set(datetime(2027, 1, 3, 5, tzinfo=timezone.utc))  # December is over too (its close is in the table)
    return ids


def _outcome(response) -> str:
    status = response.status_code
    location = response.headers.get("Location", "")
    if status == 401 or (status in (301, 302, 303) and "/login" in location):
        return "L"
    if status in (403, 404):
        return "D"
    if status < 400 or status in (400, 422):
        return "A"
    return f"?{status}"


def test_every_route_is_in_the_table(app):
    table = {(m, p.split("?")[0]) for m, p, _ in TABLE}
    missing = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            template = rule.rule
            if not any(m == method and _matches(template, p) for m, p in table):
                missing.append(f"{method} {template}")
    assert missing == [], "routes with no expected outcome in the security matrix"


def _matches(rule: str, path: str) -> bool:
    import re

    pattern = re.sub(r"<path:[a-z_]+>", ".+", rule)
    pattern = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "[^/]+", pattern)
    return re.fullmatch(pattern, path) is not None


@pytest.mark.parametrize("role", ROLES)
def test_security_matrix(demo_app, clock, role):
    ids = _world(demo_app, clock)
    client = demo_app.test_client()
    if role != "anon":
        assert login(client, role).status_code == 302
    token = csrf_token(client, "/login" if role == "anon" else "/home")
    column = ROLES.index(role)
    ordered = sorted(TABLE, key=lambda row: LAST.index(row[1]) if row[1] in LAST else -1)
    got, want = {}, {}
    for method, template, expected in ordered:
        path = template.format(**ids)
        headers = {"X-CSRFToken": token} if path.startswith("/api/") else {}
        kwargs = {"headers": headers}
        if method in ("POST", "PUT"):
            kwargs["data" if not path.startswith("/api/") else "json"] = (
                {"csrf_token": token} if not path.startswith("/api/") else {})
        response = client.open(path, method=method, **kwargs)
        response.get_data()
        response.close()  # a streamed file keeps its context until closed, as a server would
        got[f"{method} {template}"] = _outcome(response)
        want[f"{method} {template}"] = expected[column]
    mismatches = [f"{k}: got {got[k]}, expected {want[k]}" for k in want if got[k] != want[k]]
    if role != "anon":  # the last request signed out: the session is gone
        assert _outcome(client.get("/home")) == "L"
    assert not mismatches, f"{role}:\n" + "\n".join(mismatches)


def test_csrf_is_refused_on_every_state_changing_form(demo_app, clock):
    """Every POST page, as a user allowed to use it, without its token: refused, nothing changed."""
    ids = _world(demo_app, clock)
    from crm.audit.models import AuditEvent
    from crm.extensions import db

    with demo_app.app_context():
        before = db.session.scalar(select(AuditEvent.position).order_by(AuditEvent.position.desc()).limit(1))
    refused = 0
    for method, template, expected in TABLE:
        if method != "POST" or template.startswith("/api/") or template in ("/login", "/account/language"):
            continue
        role = next((r for r, e in zip(ROLES, expected) if e == "A" and r != "anon"), None)
        if role is None:
            continue
        client = demo_app.test_client()
        login(client, role)
        response = client.post(template.format(**ids), data={})
        assert response.status_code == 400, (template, role, response.status_code)
        refused += 1
    with demo_app.app_context():
        after = db.session.scalar(select(AuditEvent.position).order_by(AuditEvent.position.desc()).limit(1))
        from crm.audit.models import AuditEvent as A

        actions = set(db.session.scalars(select(A.action).where(A.position > before)))
    assert refused >= 30
    assert actions <= {"login"}, actions  # only the logins of the test itself
    assert after is not None

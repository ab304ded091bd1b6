"""Scope, recruiting, moving and deactivating agents, and the four-eyes rule for privileged roles."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from crm import signals
from crm.audit.models import AuditEvent
from crm.users.models import RoleGrant, User
from tests.helpers import csrf_token, login, operator, post, user_id

TEAMS = {"sup1": ["agent1", "agent2", "agent3", "agent4"], "sup2": ["agent5", "agent6", "agent7", "agent8"],
         "sup3": ["agent9", "agent10", "agent11", "agent12"]}
EVERYONE = {"head", "sup1", "sup2", "sup3", "fin1", "fin2", "admin"} | {a for team in TEAMS.values() for a in team}


def _listed_logins(client) -> set[str]:
    html = client.get("/users?state=all").get_data(as_text=True)
    return set(re.findall(r'<span class="muted">([a-z0-9._-]+) · ', html))


@pytest.mark.parametrize("who, expected", [
    ("head", EVERYONE - {"fin1", "fin2", "admin"}),
    ("sup1", {"sup1"} | set(TEAMS["sup1"])),
    ("sup2", {"sup2"} | set(TEAMS["sup2"])),
    ("fin1", EVERYONE),
    ("admin", EVERYONE),
])
def test_people_list_shows_exactly_the_users_scope(demo_client, who, expected):
    login(demo_client, who)
    assert _listed_logins(demo_client) == expected


def test_an_agent_sees_only_their_own_profile(demo_app, demo_client):
    login(demo_client, "agent1")
    own = user_id(demo_app, "agent1")
    assert demo_client.get("/users").headers["Location"].endswith(f"/users/{own}")
    assert demo_client.get(f"/users/{own}").status_code == 200
    for other in ("agent2", "agent5", "sup1", "head", "fin1", "admin"):
        assert demo_client.get(f"/users/{user_id(demo_app, other)}").status_code == 404, other
    assert demo_client.get("/users/99999").status_code == 404
    assert demo_client.get("/users/new").status_code == 403
    assert demo_client.get("/audit").status_code == 403
    assert demo_client.get("/api-keys").status_code == 403
    assert demo_client.get("/users/grants").status_code == 403


def test_a_supervisor_cannot_open_or_touch_another_team(demo_app, demo_client):
    login(demo_client, "sup1")
    stranger = user_id(demo_app, "agent5")
    assert demo_client.get(f"/users/{stranger}").status_code == 404
    for action in ("deactivate", "reactivate", "temporary-password", "move", "edit", "role"):
        response = post(demo_client, f"/users/{stranger}/{action}", {"supervisor_id": user_id(demo_app, "sup1"),
                                                                     "name": "X", "role": "agent"})
        assert response.status_code == 404, action
    with demo_app.app_context():
        from crm.users.services import find_by_login

        agent5 = find_by_login("agent5")
        assert agent5.active and agent5.name == "Сергей Фёдоров" and agent5.manager.login == "sup2"


def test_supervisor_recruits_an_agent_under_themselves_with_a_one_time_password(demo_app, demo_client):
    login(demo_client, "sup1")
    token = csrf_token(demo_client, "/users/new")
    response = demo_client.post("/users/new", data={
        "login": "Agent13", "name": "Пётр Новиков", "role": "agent", "manager_id": user_id(demo_app, "sup1"),
        "personnel_number": "D-0100", "csrf_token": token})
    assert response.status_code == 200
    password = re.search(r'id="temporary-password">([^<]+)<', response.get_data(as_text=True)).group(1)
    with demo_app.app_context():
        from crm.users.services import find_by_login

        new = find_by_login("agent13")
        assert new.manager.login == "sup1" and new.role == "agent" and new.must_change_password
        assert password not in new.password_hash
    fresh = demo_app.test_client()
    assert login(fresh, "agent13", password).headers["Location"].endswith("/account/password")


def test_supervisor_cannot_recruit_for_someone_else_or_other_roles(demo_app, demo_client):
    login(demo_client, "sup1")
    token = csrf_token(demo_client, "/users/new")
    for role, manager in (("agent", "sup2"), ("supervisor", "head"), ("finance", None)):
        response = demo_client.post("/users/new", data={
            "login": f"x{role}", "name": "X", "role": role,
            "manager_id": user_id(demo_app, manager) if manager else 0, "csrf_token": token})
        assert response.status_code in (403, 422), role
    with demo_app.app_context():
        from crm.extensions import db

        assert db.session.scalar(select(User).where(User.login.like("x%"))) is None


def test_form_errors_are_shown_next_to_fields(demo_client):
    login(demo_client, "admin")
    token = csrf_token(demo_client, "/users/new")
    response = demo_client.post("/users/new", data={"login": "head", "name": "Dup", "role": "agent",
                                                    "manager_id": 0, "csrf_token": token})
    assert response.status_code == 422
    assert 'class="field has-error"' in response.get_data(as_text=True)


def test_supervisor_deactivates_own_agent_and_the_world_is_told(demo_app, demo_client):
    seen = []

    def receiver(sender, **kw):
        seen.append((sender.login, kw["supervisor_id"]))

    signals.user_deactivated.connect(receiver)
    try:
        login(demo_client, "sup1")
        agent = user_id(demo_app, "agent4")
        assert post(demo_client, f"/users/{agent}/deactivate").status_code == 302
    finally:
        signals.user_deactivated.disconnect(receiver)
    assert seen == [("agent4", user_id(demo_app, "sup1"))]
    with demo_app.app_context():
        from crm.extensions import db

        event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position.desc())).first()
        assert event.action == "user.deactivate" and event.actor_label == "sup1"
        assert '"active":true' in event.before and '"active":false' in event.after
        assert db.session.get(User, agent) is not None  # nobody is ever deleted


def test_supervisor_moves_own_agent_to_a_colleague_but_not_further(demo_app, demo_client):
    with operator(demo_app):
        from crm.users import services

        outsider_head, _ = services.create_user(None, login="head2", name="Other head", role="sales_head")
        services.create_user(None, login="sup9", name="Other sup", role="supervisor", manager=outsider_head)
    login(demo_client, "sup1")
    agent = user_id(demo_app, "agent1")
    assert post(demo_client, f"/users/{agent}/move", {"supervisor_id": user_id(demo_app, "sup9")}).status_code == 302
    with demo_app.app_context():
        from crm.users.services import find_by_login

        assert find_by_login("agent1").manager.login == "sup1"  # refused: other region
    assert post(demo_client, f"/users/{agent}/move", {"supervisor_id": user_id(demo_app, "sup2")}).status_code == 302
    with demo_app.app_context():
        from crm.users.services import find_by_login

        assert find_by_login("agent1").manager.login == "sup2"
    assert demo_client.get(f"/users/{agent}").status_code == 404  # no longer sup1's


def _half(response) -> str:
    return re.search(r'id="password-half">([^<]+)<', response.get_data(as_text=True)).group(1)


def test_one_person_alone_cannot_create_a_finance_user(demo_app, demo_client):
    with operator(demo_app):
        from crm.users import services

        services.create_user(None, login="admin2", name="Second admin", role="admin")
    login(demo_client, "admin")
    token = csrf_token(demo_client, "/users/new")
    response = demo_client.post("/users/new", data={"login": "fin3", "name": "Новый финансист", "role": "finance",
                                                    "manager_id": 0, "csrf_token": token})
    assert response.status_code == 200
    first_half = _half(response)
    assert "temporary-password" not in response.get_data(as_text=True)  # no usable password for the proposer
    with demo_app.app_context():
        from crm.extensions import db
        from crm.users.services import find_by_login

        fin3 = find_by_login("fin3")
        assert not fin3.active and fin3.role != "finance"
        grant_id = db.session.scalar(select(RoleGrant.id).where(RoleGrant.user_id == fin3.id))
    fin3_id = user_id(demo_app, "fin3")
    # the proposer cannot confirm, reactivate or reset; nor can another admin, nor the grantee
    assert post(demo_client, f"/users/grants/{grant_id}/confirm", token_from="/users/grants").status_code == 403
    assert post(demo_client, f"/users/{fin3_id}/temporary-password").status_code == 403
    post(demo_client, f"/users/{fin3_id}/reactivate")
    with demo_app.app_context():
        from crm.users import services

        assert not services.find_by_login("fin3").active
        for login_name in ("admin", "admin2", "fin3"):
            assert not services.may_decide(services.find_by_login(login_name), services.pending_grants()[0])
    assert login(demo_app.test_client(), "fin3", first_half).status_code == 401
    # a different finance user confirms and gets the second half
    fin = demo_app.test_client()
    login(fin, "fin1")
    confirmed = post(fin, f"/users/grants/{grant_id}/confirm", token_from="/users/grants")
    assert confirmed.status_code == 200
    second_half = _half(confirmed)
    with demo_app.app_context():
        from crm.extensions import db
        from crm.users.services import find_by_login

        fin3 = find_by_login("fin3")
        assert fin3.active and fin3.role == "finance" and fin3.must_change_password
        assert db.session.get(RoleGrant, grant_id).handover_part is None  # the half is not kept
    newcomer = demo_app.test_client()
    assert login(newcomer, "fin3", first_half).status_code == 401
    assert login(newcomer, "fin3", second_half).status_code == 401
    assert login(newcomer, "fin3", first_half + second_half).headers["Location"].endswith("/account/password")


def test_a_manager_who_knew_the_old_password_does_not_keep_the_new_finance_account(demo_app):
    from crm.users import services

    with operator(demo_app):
        admin = services.find_by_login("admin")
        known = services.issue_temporary_password(admin, services.find_by_login("agent5"))
        grant = services.change_role(admin, services.find_by_login("agent5"), "finance")
        grant_id, first = grant.id, grant.handover_part
    with operator(demo_app) as session:
        second = services.decide_grant(services.find_by_login("fin1"), session.get(RoleGrant, grant_id), confirm=True)
    client = demo_app.test_client()
    assert login(client, "agent5", known).status_code == 401
    assert login(client, "agent5", first + second).status_code == 302


def test_a_finance_user_cannot_confirm_their_own_proposal_and_rejection_needs_a_reason(demo_app):
    from crm.users import services

    with operator(demo_app):
        agent = services.find_by_login("agent9")
        grant = services.change_role(services.find_by_login("fin1"), agent, "sales_head")
        grant_id = grant.id
    with demo_app.app_context():
        from crm.errors import DomainError, Forbidden
        from crm.extensions import db

        grant = db.session.get(RoleGrant, grant_id)
        with pytest.raises(Forbidden):
            services.decide_grant(services.find_by_login("fin1"), grant, confirm=True)
        with pytest.raises(DomainError):
            services.decide_grant(services.find_by_login("fin2"), grant, confirm=False, reason=" ")
        db.session.rollback()
    head = services  # noqa: F841
    client = demo_app.test_client()
    login(client, "fin2")
    response = post(client, f"/users/grants/{grant_id}/reject", {"reason": "агент, не руководитель"},
                    token_from="/users/grants")
    assert response.status_code == 302
    with demo_app.app_context():
        from crm.extensions import db

        grant = db.session.get(RoleGrant, grant_id)
        assert grant.status == "rejected" and grant.reason == "агент, не руководитель"
        assert services.find_by_login("agent9").role == "agent"


def test_admin_cannot_give_themselves_a_privileged_role(demo_app):
    from crm.errors import Forbidden
    from crm.users import services

    with demo_app.app_context():
        admin = services.find_by_login("admin")
        with pytest.raises(Forbidden):
            services.change_role(admin, admin, "finance")


def test_audit_viewer_filters_and_scopes(demo_app, demo_client):
    from crm.users import services

    with operator(demo_app):
        services.deactivate(None, services.find_by_login("agent6"))
        outsider, _ = services.create_user(None, login="solo", name="Solo", role="agent")
        services.deactivate(None, outsider)
    login(demo_client, "admin")
    html = demo_client.get("/audit?action=user.deactivate").get_data(as_text=True)
    assert html.count("<code>user.deactivate</code>") == 2
    html = demo_client.get("/audit?action=user.deactivate&subject=agent6").get_data(as_text=True)
    assert html.count("<code>user.deactivate</code>") == 1
    head = demo_app.test_client()
    login(head, "head")
    html = head.get("/audit?action=user.deactivate").get_data(as_text=True)
    assert html.count("<code>user.deactivate</code>") == 1 and "agent6" in html and "solo" not in html
    sup = demo_app.test_client()
    login(sup, "sup1")
    assert sup.get("/audit").status_code == 403


def test_nobody_in_the_app_can_reset_a_finance_or_sales_head_password(demo_app, demo_client):
    login(demo_client, "admin")
    fin1 = user_id(demo_app, "fin1")
    assert "temporary-password" not in demo_client.get(f"/users/{fin1}").get_data(as_text=True)
    assert post(demo_client, f"/users/{fin1}/temporary-password").status_code == 403
    agent = user_id(demo_app, "agent1")
    assert post(demo_client, f"/users/{agent}/temporary-password").status_code == 200  # agents: yes
    other = demo_app.test_client()
    login(other, "fin2")
    for target in ("fin1", "head"):  # not even another finance user: they could then sign in as them
        assert post(other, f"/users/{user_id(demo_app, target)}/temporary-password").status_code == 403


def test_reactivating_a_finance_user_takes_a_privileged_person_not_an_admin(demo_app, demo_client):
    from crm.users import services

    with operator(demo_app):
        services.deactivate(None, services.find_by_login("fin2"))
    login(demo_client, "admin")
    assert post(demo_client, f"/users/{user_id(demo_app, 'fin2')}/reactivate").status_code == 403
    with demo_app.app_context():
        assert not services.find_by_login("fin2").active


def test_only_finance_changes_a_personnel_number(demo_app, demo_client):
    agent = user_id(demo_app, "agent1")
    login(demo_client, "sup1")
    assert post(demo_client, f"/users/{agent}/edit", {"name": "Дмитрий Козлов", "personnel_number": "MINE-1"}
                ).status_code == 403
    assert post(demo_client, f"/users/{agent}/edit", {"name": "Дмитрий Козлов-Иванов",
                                                      "personnel_number": "D-0005"}).status_code == 302
    fin = demo_app.test_client()
    login(fin, "fin1")
    assert post(fin, f"/users/{agent}/edit", {"name": "Дмитрий Козлов-Иванов", "personnel_number": "P-77"}
                ).status_code == 302
    assert post(fin, f"/users/{agent}/edit", {"name": "Someone else", "personnel_number": "P-77"}).status_code == 403
    with demo_app.app_context():
        from crm.users.services import find_by_login

        user = find_by_login("agent1")
        assert (user.name, user.personnel_number) == ("Дмитрий Козлов-Иванов", "P-77")


def test_a_sales_head_neither_sees_nor_decides_grants_outside_the_region(demo_app):
    from crm.users import services

    with operator(demo_app):
        head2, _ = services.create_user(None, login="head2", name="Other head", role="sales_head")
        sup4, _ = services.create_user(None, login="sup4", name="Other sup", role="supervisor", manager=head2)
        outsider, _ = services.create_user(None, login="agentx", name="Outsider", role="agent", manager=sup4)
        grant = services.change_role(services.find_by_login("admin"), outsider, "sales_head")
        grant_id = grant.id
    client = demo_app.test_client()
    login(client, "head")
    assert "agentx" not in client.get("/users/grants").get_data(as_text=True)
    assert post(client, f"/users/grants/{grant_id}/confirm", token_from="/users/grants").status_code == 404
    with demo_app.app_context():
        assert services.find_by_login("agentx").role == "agent"


def test_logging_out_invalidates_a_copied_session_cookie(demo_app, demo_client):
    login(demo_client, "fin1")
    stolen = demo_client.get_cookie("session").value
    post(demo_client, "/logout")
    thief = demo_app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/api/v1/me").status_code == 401


def test_agent_released_is_sent_on_deactivation_move_and_role_change(demo_app):
    from crm.users import services

    seen = []

    def receiver(sender, **kw):
        seen.append((sender.login, kw["reason"]))

    signals.agent_released.connect(receiver)
    try:
        with operator(demo_app):
            services.deactivate(None, services.find_by_login("agent1"))
            services.move_agent(None, services.find_by_login("agent2"), services.find_by_login("sup2"))
            services.change_role(None, services.find_by_login("agent3"), "supervisor", services.find_by_login("head"))
    finally:
        signals.agent_released.disconnect(receiver)
    assert seen == [("agent1", "deactivated"), ("agent2", "moved"), ("agent3", "role_changed")]

"""Signing in and out, throttling, temporary passwords, CSRF, cookies and languages."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEvent
from crm.auth.models import LoginAttempt
from tests.helpers import csrf_token, login, operator, post, user_id


def _audit_actions(app):
    with app.app_context():
        from crm.extensions import db

        return [a for a in db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.position))]


def test_head_logs_in_and_sees_home(demo_client, demo_app):
    response = login(demo_client, "head")
    assert response.status_code == 302 and response.headers["Location"].endswith("/home")
    home = demo_client.get("/home")
    assert home.status_code == 200
    assert "Ирина Соколова" in home.get_data(as_text=True)
    assert _audit_actions(demo_app)[-1] == "login"


def test_wrong_password_is_refused_and_audited(demo_client, demo_app):
    response = login(demo_client, "head", "nope")
    assert response.status_code == 401
    assert demo_client.get("/home").status_code == 302  # still anonymous
    assert _audit_actions(demo_app)[-1] == "login.failed"
    with demo_app.app_context():
        from crm.extensions import db

        event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position.desc())).first()
        assert event.client_addr == "127.0.0.1" and '"login":"head"' in event.after


def test_login_is_case_insensitive_and_unknown_login_is_a_plain_failure(demo_client):
    assert login(demo_client, "HEAD").status_code == 302
    demo_client.post("/logout", data={"csrf_token": csrf_token(demo_client, "/home")})
    assert login(demo_client, "nobody").status_code == 401


def test_inactive_user_cannot_log_in(demo_app, demo_client):
    from crm.users import services

    with operator(demo_app):
        services.deactivate(None, services.find_by_login("agent3"))
    assert login(demo_client, "agent3").status_code == 401


def test_pages_need_a_login(client):
    for path in ("/home", "/users", "/audit", "/api-keys", "/account/password"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_open_redirect_through_next_is_ignored(demo_client):
    token = csrf_token(demo_client)
    response = demo_client.post("/login?next=https://evil.example/", data={
        "login": "head", "password": "demo", "csrf_token": token})
    assert response.headers["Location"].endswith("/home")


def test_throttling_holds_across_two_app_instances_sharing_the_database(demo_app, demo_db_url, make_app, clock):
    other = make_app(demo_db_url)
    first, second = demo_app.test_client(), other.test_client()
    limit = demo_app.config["LOGIN_MAX_FAILURES"]
    for i in range(limit):
        client = first if i % 2 == 0 else second
        assert login(client, "sup1", "wrong").status_code == 401
    # the right password is refused now, on either process
    for client in (first, second):
        response = login(client, "sup1", "demo")
        assert response.status_code == 429
        assert client.get("/home").status_code == 302
    # another login from the same address is not locked by sup1's failures
    assert login(second, "sup2", "demo").status_code == 302
    clock.advance(minutes=demo_app.config["LOGIN_WINDOW_MINUTES"] + 1)
    assert login(first, "sup1", "demo").status_code == 302
    with demo_app.app_context():
        from crm.extensions import db

        def attempts(throttled):
            return db.session.scalar(select(func.count()).select_from(LoginAttempt).where(
                LoginAttempt.login == "sup1", LoginAttempt.succeeded.is_(False), LoginAttempt.throttled.is_(throttled)))

        assert attempts(False) == limit and attempts(True) == 2
        # one audit event for the lock, not one per hammered request
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "login.throttled")) == 1


def test_temporary_password_must_be_changed_before_anything_else(demo_app, demo_client):
    from crm.users import services

    with operator(demo_app):
        temp = services.issue_temporary_password(None, services.find_by_login("agent2"))
    response = login(demo_client, "agent2", temp)
    assert response.headers["Location"].endswith("/account/password")
    assert demo_client.get("/home").headers["Location"].endswith("/account/password")
    assert demo_client.get("/api/v1/me").status_code == 403
    token = csrf_token(demo_client, "/account/password")
    weak = demo_client.post("/account/password", data={"current_password": temp, "new_password": "short",
                                                       "confirm": "short", "csrf_token": token})
    assert weak.status_code == 422
    done = demo_client.post("/account/password", data={"current_password": temp, "new_password": "a-long-one-1",
                                                       "confirm": "a-long-one-1", "csrf_token": token})
    assert done.status_code == 302
    assert demo_client.get("/home").status_code == 200  # still signed in, with the new session id
    demo_client.post("/logout", data={"csrf_token": csrf_token(demo_client, "/home")})
    assert login(demo_client, "agent2", temp).status_code == 401
    assert login(demo_client, "agent2", "a-long-one-1").status_code == 302


def test_deactivation_and_password_reset_end_existing_sessions(demo_app, demo_client):
    from crm.users import services

    login(demo_client, "agent5")
    assert demo_client.get("/home").status_code == 200
    with operator(demo_app):
        services.issue_temporary_password(None, services.find_by_login("agent5"))
    assert demo_client.get("/home").status_code == 302


@pytest.mark.parametrize("path", ["/login", "/logout", "/account/language", "/account/password"])
def test_posts_without_csrf_token_are_refused(demo_client, path):
    if path == "/account/password":
        login(demo_client, "head")
    response = demo_client.post(path, data={"login": "head", "password": "demo", "locale": "en"})
    assert response.status_code == 400


def test_csrf_token_still_valid_after_days_in_the_same_session(demo_client, clock):
    login(demo_client, "agent1")
    token = csrf_token(demo_client, "/home")
    clock.advance(days=5)
    response = demo_client.post("/account/language", data={"locale": "uk", "csrf_token": token})
    assert response.status_code == 302


def test_session_cookie_is_secure_behind_https_proxy_only(demo_db_url, make_app):
    proxied = make_app(demo_db_url, PROXY_HOPS=1)
    client = proxied.test_client()
    token = csrf_token(client)
    https = client.post("/login", data={"login": "head", "password": "demo", "csrf_token": token},
                        headers={"X-Forwarded-Proto": "https"})
    cookie = https.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Strict-Transport-Security" in https.headers
    plain = make_app(demo_db_url).test_client()
    token = csrf_token(plain)
    http = plain.post("/login", data={"login": "head", "password": "demo", "csrf_token": token})
    assert "Secure" not in http.headers["Set-Cookie"] and "HttpOnly" in http.headers["Set-Cookie"]


def test_language_defaults_to_russian_and_the_choice_is_remembered(demo_app, demo_client):
    assert 'lang="ru"' in demo_client.get("/login").get_data(as_text=True)
    login(demo_client, "sup1")
    token = csrf_token(demo_client, "/home")
    demo_client.post("/account/language", data={"locale": "en", "csrf_token": token})
    assert 'lang="en"' in demo_client.get("/home").get_data(as_text=True)
    with demo_app.app_context():
        from crm.users.services import find_by_login

        assert find_by_login("sup1").locale == "en"
    # a new browser signing in as sup1 gets English without choosing
    other = demo_app.test_client()
    login(other, "sup1")
    assert 'lang="en"' in other.get("/home").get_data(as_text=True)


def test_russian_and_ukrainian_catalogs_translate_the_login_page(demo_client):
    ru = demo_client.get("/login?lang=ru").get_data(as_text=True)
    uk = demo_client.get("/login?lang=uk").get_data(as_text=True)
    en = demo_client.get("/login?lang=en").get_data(as_text=True)
    assert "<h1>Sign in</h1>" in en
    assert "<h1>Вход</h1>" in ru
    assert "<h1>Вхід</h1>" in uk


def test_passwords_are_hashed_with_scrypt_by_default(demo_app):
    with demo_app.app_context():
        from crm.users.services import find_by_login

        assert find_by_login("head").password_hash.startswith("scrypt:")


def test_parallel_guesses_count_against_each_other(demo_app):
    """Twelve wrong passwords at once: only the first LOGIN_MAX_FAILURES are even checked."""
    import threading

    limit = demo_app.config["LOGIN_MAX_FAILURES"]
    statuses = []
    barrier = threading.Barrier(12)

    def guess():
        client = demo_app.test_client()
        token = csrf_token(client)
        barrier.wait()
        statuses.append(client.post("/login", data={"login": "fin1", "password": "guess",
                                                    "csrf_token": token}).status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [401] * limit + [429] * (12 - limit)
    with demo_app.app_context():
        from crm.extensions import db

        checked = db.session.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.login == "fin1", LoginAttempt.throttled.is_(False)))
        assert checked == limit


def _session_cookie(response):
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]


def test_the_session_slides_once_a_day_not_on_every_response(demo_client, clock):
    """The cookie is re-issued on the first request of a day with 30 more days; the other
    requests of that day send no Set-Cookie at all."""
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    login(demo_client, "agent1")
    first = demo_client.get("/home")
    later = demo_client.get("/home")
    assert first.status_code == later.status_code == 200
    assert _session_cookie(first) and not _session_cookie(later)
    clock.advance(days=3)
    next_day = demo_client.get("/home")
    cookies = _session_cookie(next_day)
    assert next_day.status_code == 200 and cookies
    expires = parsedate_to_datetime(cookies[0].split("Expires=")[1].split(";")[0])
    assert 29 <= (expires - datetime.now(timezone.utc)).days <= 30  # Flask dates the cookie by the wall clock
    assert not _session_cookie(demo_client.get("/home"))


def test_a_session_naming_no_storable_user_id_is_anonymous(client):
    """The user loader gets whatever id a (signed) session holds: one beyond any integer column
    is nobody, not a database error."""
    for session_id in ("99999999999999999999:x", "abc:x", ":x"):
        with client.session_transaction() as session:
            session["_user_id"] = session_id
        response = client.get("/api/v1/me/zones")
        assert response.status_code == 401, (session_id, response.status_code)

"""Small helpers the tests share: CSRF tokens, logging in, running a unit of work as the operator."""
from __future__ import annotations

import re
from contextlib import contextmanager

TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


def csrf_token(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = TOKEN_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def login(client, login_name, password="demo", follow=False):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"login": login_name, "password": password, "csrf_token": token},
                       follow_redirects=follow)


def post(client, path, data=None, token_from="/home", **kwargs):
    """POST a form with a valid CSRF token taken from a page the user can open."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, token_from))
    return client.post(path, data=data, **kwargs)


@contextmanager
def operator(app):
    """An app context acting as the CLI operator; commits at the end."""
    from crm.actors import CLI, set_actor
    from crm.extensions import db

    with app.app_context():
        set_actor(CLI)
        yield db.session
        db.session.commit()


def user_id(app, login_name) -> int:
    from crm.users.services import find_by_login

    with app.app_context():
        return find_by_login(login_name).id

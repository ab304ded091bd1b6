"""Who calls the API: an API key (Bearer) or the logged-in user's session plus X-CSRFToken."""
from __future__ import annotations

from functools import wraps

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from crm.actors import Actor, set_actor
from crm.apikeys import services as keys
from crm.errors import DomainError
from crm.extensions import csrf

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class ApiError(DomainError):
    def __init__(self, status: int, code: str, message, fields: dict | None = None):
        super().__init__(code, message, fields)
        self.status = status


def authenticate_request() -> None:
    """Runs before every API request: sets ``g.api_key`` or checks the session's CSRF token."""
    g.api_key = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", _("Use 'Authorization: Bearer <key>'."))
        key = keys.authenticate(token.strip())
        if key is None:
            raise ApiError(401, "invalid_key", _("The API key is unknown or revoked."))
        g.api_key = key
        set_actor(Actor(None, f"api-key:{key.name}", request.remote_addr, key.id))
        return  # a key caller is the key, never the browser session that may ride along
    if current_user.is_authenticated and request.method not in SAFE_METHODS:
        try:
            csrf.protect()
        except CSRFError:
            raise ApiError(400, "csrf", _("Send the X-CSRFToken header with the page's token."))


def require_scope(scope: str):
    """The endpoint needs an API key carrying ``scope``."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            key = g.get("api_key")
            if key is None:
                raise ApiError(401, "unauthorized", _("This endpoint needs an API key."))
            if scope not in key.scope_list:
                raise ApiError(403, "scope", _("The API key lacks the scope %(scope)s.", scope=scope))
            return view(*args, **kwargs)

        return wrapped

    return decorator


def require_user(*roles: str):
    """The endpoint needs a signed-in user (session cookie), optionally of given roles."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if g.get("api_key") is not None:
                raise ApiError(403, "forbidden", _("This endpoint is for signed-in users, not API keys."))
            if not current_user.is_authenticated:
                raise ApiError(401, "unauthorized", _("Sign in first."))
            if roles and current_user.role not in roles:
                raise ApiError(403, "forbidden", _("Not for your role."))
            return view(*args, **kwargs)

        return wrapped

    return decorator

"""Settings, read from the environment once at start-up.

| variable | default |
|---|---|
| DATABASE_URL | SQLite file ``instance/doorstep.db`` |
| SECRET_KEY | generated once into ``instance/secret_key`` |
| DOORSTEP_TIMEZONE | Asia/Yekaterinburg (the company time zone) |
| DOORSTEP_CURRENCY | RUB |
| DOORSTEP_PROXY_HOPS | 0; set 1 behind one TLS reverse proxy (trust X-Forwarded-*) |
| DOORSTEP_SECURE_COOKIES | 0; 1 forces Secure cookies even if the proxy does not say https |
| DOORSTEP_OFFLINE_GRACE_HOURS | 72 |
| DOORSTEP_TILE_URL | https://tile.openstreetmap.org/{z}/{x}/{y}.png (the only address a map page loads from outside the app) |
| DOORSTEP_TILE_ATTRIBUTION | © OpenStreetMap contributors |
"""
from __future__ import annotations

import os
from datetime import timedelta


def from_environment(instance_path: str) -> dict:
    env = os.environ
    timezone = env.get("DOORSTEP_TIMEZONE", "Asia/Yekaterinburg")
    return {
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or f"sqlite:///{os.path.join(instance_path, 'doorstep.db')}",
        "SECRET_KEY": env.get("SECRET_KEY"),
        "COMPANY_TIMEZONE": timezone,
        "CURRENCY": env.get("DOORSTEP_CURRENCY", "RUB"),
        "PROXY_HOPS": int(env.get("DOORSTEP_PROXY_HOPS", "0")),
        "SESSION_COOKIE_SECURE": env.get("DOORSTEP_SECURE_COOKIES", "0") == "1",
        "OFFLINE_GRACE": timedelta(hours=int(env.get("DOORSTEP_OFFLINE_GRACE_HOURS", "72"))),
        "TILE_URL": env.get("DOORSTEP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
        "TILE_ATTRIBUTION": env.get("DOORSTEP_TILE_ATTRIBUTION", "© OpenStreetMap contributors"),
        # fixed policy
        "BABEL_DEFAULT_LOCALE": "ru",
        "BABEL_DEFAULT_TIMEZONE": timezone,
        "LANGUAGES": {"ru": "Русский", "uk": "Українська", "en": "English"},
        "WTF_CSRF_TIME_LIMIT": None,  # tokens live as long as the session (offline queues wait days)
        "PERMANENT_SESSION_LIFETIME": timedelta(days=30),
        # the 30 days slide once a day (crm.auth.routes.slide_session), not by re-signing every response
        "SESSION_REFRESH_EACH_REQUEST": False,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": True,
        "PASSWORD_HASH_METHOD": "scrypt",
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_MAX_FAILURES_PER_ADDRESS": 30,
        "LOGIN_WINDOW_MINUTES": 15,
        # PostgreSQL: an idle pooled connection is pinged before use (crm.database.configure_engine)
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False},
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    }

"""Doorstep: ``create_app`` is the only place that knows every part."""
from __future__ import annotations

import os
import secrets

from flask import Flask, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from crm import chain
from crm.clock import Clock
from crm.config import from_environment
from crm.database import READS_FIRST, configure_engine, normalise_url, write_intent
from crm.extensions import babel, csrf, db, login_manager, migrate
from crm.inputs import BoundedIntConverter, JSONProvider

HERE = os.path.dirname(os.path.abspath(__file__))
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class SessionInterface(SecureCookieSessionInterface):
    """Secure session cookies whenever the request came over HTTPS (directly or via the proxy)."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure))


def create_app(config: dict | None = None, clock: Clock | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True,
                template_folder=os.path.join(HERE, "templates"), static_folder=os.path.join(HERE, "static"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(from_environment(app.instance_path))
    app.config.update(config or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    app.extensions["doorstep_clock"] = clock or Clock()
    app.session_interface = SessionInterface()
    app.json = JSONProvider(app)
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_errorhandlers(app)
    register_hooks(app)
    return app


def _instance_secret(instance_path: str) -> str:
    """Generated once and kept in the instance folder, so sessions survive restarts."""
    path = os.path.join(instance_path, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    with open(path) as fh:
        return fh.read().strip()


def register_extensions(app: Flask) -> None:
    from crm.i18n import select_locale, select_timezone

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(HERE, "migrations"), compare_type=True, render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone,
                   default_translation_directories=os.path.join(HERE, "translations"))
    login_manager.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    chain.install_orm_guard()
    import crm.models  # noqa: F401  every model is known to the metadata and Alembic


def register_blueprints(app: Flask) -> None:
    from crm.api.routes import bp as api_bp
    from crm.apikeys.routes import bp as apikeys_bp
    from crm.audit.routes import bp as audit_bp
    from crm.auth.routes import bp as auth_bp
    from crm.catalogue.routes import bp as catalogue_bp
    from crm.contracts.routes import bp as contracts_bp
    from crm.dashboards.routes import bp as dashboards_bp
    from crm.finance.routes import bp as finance_bp
    from crm.ledger.routes import bp as ledger_bp
    from crm.main.routes import bp as main_bp
    from crm.users.routes import bp as users_bp
    from crm.visits.routes import bp as field_bp
    from crm.visits.team import bp as team_bp
    from territories.assets import bp as assets_bp
    from territories.routes import bp as territories_bp

    for bp in (main_bp, auth_bp, users_bp, audit_bp, apikeys_bp, catalogue_bp, ledger_bp, contracts_bp,
               territories_bp, assets_bp, field_bp, team_bp, finance_bp, dashboards_bp):
        app.register_blueprint(bp)
    import crm.contracts.api  # noqa: F401  registers its endpoints on the API blueprint
    import territories.api  # noqa: F401
    import crm.visits.api  # noqa: F401

    csrf.exempt(api_bp)  # the API checks X-CSRFToken itself for session callers
    app.register_blueprint(api_bp)


def register_commands(app: Flask) -> None:
    from crm.cli import crm_cli, ledger_cli
    from crm.finance.cli import finance_cli
    from territories.cli import territories_cli

    app.cli.add_command(crm_cli)
    app.cli.add_command(ledger_cli)
    app.cli.add_command(finance_cli)
    app.cli.add_command(territories_cli)


def register_errorhandlers(app: Flask) -> None:
    from crm.main.errors import register

    register(app)


def connect_signals() -> None:
    """Features react to each other through ``crm.signals`` (blinker keeps one connection per receiver)."""
    from territories.hooks import connect

    connect()


def register_hooks(app: Flask) -> None:
    from crm.auth.routes import enforce_password_change, slide_session
    from crm.i18n import register_template_helpers

    @app.before_request
    def _write_intent():
        view = app.view_functions.get(request.endpoint)
        may_write = request.method not in SAFE_METHODS or getattr(view, "writes", False)
        if may_write and getattr(view, "reads_first", False):
            may_write = READS_FIRST  # the view calls crm.database.begin_writing before it writes
        g._write_intent_token = write_intent.set(may_write)

    @app.teardown_request
    def _reset_write_intent(exc):
        token = g.pop("_write_intent_token", None)
        if token is not None:
            try:
                write_intent.reset(token)
            except ValueError:  # a different context: nothing to undo
                pass

    from crm.inputs import check_request

    app.before_request(check_request)
    app.before_request(enforce_password_change)
    app.before_request(slide_session)
    connect_signals()

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    register_template_helpers(app)

"""Language and time-zone selection, and the template helpers that show dates and roles."""
from __future__ import annotations

from flask import current_app, has_request_context, session
from flask_babel import format_date, format_datetime, lazy_gettext as _l
from flask_login import current_user

ROLE_NAMES = {
    "agent": _l("agent"),
    "supervisor": _l("supervisor"),
    "sales_head": _l("sales head"),
    "finance": _l("finance"),
    "admin": _l("administrator"),
}


STATUS_NAMES = {
    "signed": _l("signed"),
    "paid": _l("paid"),
    "installation_scheduled": _l("installation scheduled"),
    "activated": _l("activated"),
    "cancelled": _l("cancelled"),
}

ENTRY_KINDS = {
    "accrual": _l("accrual"),
    "override": _l("supervisor override"),
    "release": _l("release"),
    "earned": _l("earned"),
    "void": _l("void"),
    "clawback": _l("clawback"),
    "bonus": _l("bonus"),
    "adjustment": _l("adjustment"),
    "payout": _l("payout"),
}

BUCKETS = {"pending": _l("pending"), "payable": _l("payable")}
OUTCOME_NAMES = {
    "not_home": _l("not home"), "refused": _l("refused"), "not_interested": _l("not interested"),
    "callback": _l("call back"), "lead": _l("lead"), "signed": _l("signed"),
    "already_subscriber": _l("already a subscriber"), "competitor": _l("competitor"),
    "no_access": _l("no access"), "do_not_knock": _l("do not knock"),
}
GPS_COLOURS = {"green": _l("green"), "amber": _l("amber"), "red": _l("red")}


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale in languages:
        return current_user.locale
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    return current_app.config["COMPANY_TIMEZONE"]


def register_template_helpers(app) -> None:
    @app.template_filter("localdt")
    def localdt(value, fmt="short"):
        """A UTC datetime shown in the company time zone and the user's language."""
        if value is None:
            return ""
        return format_datetime(value, fmt)

    @app.template_filter("localdate")
    def localdate(value, fmt="medium"):
        """A calendar date (already in the company's terms) in the user's language."""
        if value is None:
            return ""
        return format_date(value, fmt)

    @app.template_filter("role_name")
    def role_name(value):
        return ROLE_NAMES.get(value, value)

    @app.template_filter("status_name")
    def status_name(value):
        return STATUS_NAMES.get(value, value)

    @app.template_filter("entry_kind")
    def entry_kind(value):
        return ENTRY_KINDS.get(value, value)

    @app.template_filter("outcome_name")
    def outcome_name(value):
        return OUTCOME_NAMES.get(value, value)

    @app.template_filter("gps_colour_name")
    def gps_colour_name(value):
        return GPS_COLOURS.get(value, value)

    @app.template_filter("bucket_name")
    def bucket_name(value):
        return BUCKETS.get(value, value)

    @app.context_processor
    def _globals():
        return {"languages": app.config["LANGUAGES"], "current_locale": select_locale(),
                "company_timezone": app.config["COMPANY_TIMEZONE"]}

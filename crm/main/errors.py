"""Friendly error pages for people, the ``{"error": …}`` shape for the API."""
from __future__ import annotations

from flask import jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from crm.errors import DomainError
from crm.extensions import db


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _messages():
    return {
        400: _("The request could not be understood."),
        401: _("Sign in first."),
        403: _("You do not have access to this page."),
        404: _("Nothing here: the page does not exist or is not yours to see."),
        405: _("This action is not allowed here."),
        413: _("The upload is too large."),
        422: _("Some of what was sent cannot be accepted (a character or value nothing can store)."),
        429: _("Too many requests. Wait a little and try again."),
        500: _("Something went wrong on our side. Nothing you entered was saved half-way; try again."),
    }


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    if _wants_json():
        body = {"error": {"code": code, "message": str(message),
                          "fields": {k: str(v) for k, v in (fields or {}).items()}}}
        return jsonify(body), status
    return render_template("errors/error.html", status=status, message=message), status


def _out_of_range(exc: BaseException) -> bool:
    """Overflowing integers and dates, however the driver or SQLAlchemy wraps them."""
    from sqlalchemy.exc import DataError, StatementError

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (OverflowError, DataError)):
            return True
        if getattr(exc, "sqlstate", None) == "22003":  # numeric_value_out_of_range
            return True
        exc = getattr(exc, "orig", None) if isinstance(exc, StatementError) else exc.__cause__
        seen += 1
    return False


def register(app) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_response(400, "csrf", _("The form expired or was sent without its security token. "
                                             "Reload the page and try again."))

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        db.session.rollback()
        return error_response(exc.status, exc.code, exc.message, exc.fields)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        message = _messages().get(status, exc.description)
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if _out_of_range(exc):  # a number or date beyond what the database or calendar holds
            db.session.rollback()
            return error_response(422, "out_of_range", _("A value is out of range."))
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        return error_response(500, "internal", _messages()[500])

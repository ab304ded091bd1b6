"""Input every request must pass before any view sees it: no NUL characters (PostgreSQL text
cannot hold them), no lone surrogates (they cannot be stored as UTF-8), JSON nested only so
deep, and ids in URLs within what the database holds."""
from __future__ import annotations

from flask import abort, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

#: the largest id a URL may name (PostgreSQL integer columns)
MAX_ID = 2**31 - 1
MAX_DEPTH = 64


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` that refuses (404) numbers no row can have."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class JSONProvider(DefaultJSONProvider):
    """A body nested thousands deep is malformed JSON (a 4xx), not a RecursionError."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply")


def _bad_text(value: str) -> bool:
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


def _walk(value, depth: int = 0) -> bool:
    """True when a decoded JSON value holds bad text (keys included) or nests too deep."""
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, str):
        return _bad_text(value)
    if isinstance(value, dict):
        return any(_bad_text(k) or _walk(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_walk(v, depth + 1) for v in value)
    return False


def check_request() -> None:
    """Refuse the whole request, before any view, when it carries text nothing can store."""
    if _bad_text(request.path) or any(_bad_text(k) or _bad_text(v) for k, v in request.args.items(multi=True)):
        abort(400)
    if request.method in ("POST", "PUT", "PATCH"):
        if request.mimetype == "application/json" or request.is_json:
            body = request.get_json(silent=True)
            if body is not None and _walk(body):
                abort(422)
        elif any(_bad_text(k) or _bad_text(v) for k, v in request.form.items(multi=True)):
            abort(422)
    for name in ("X-Source",):
        if _bad_text(request.headers.get(name, "")):
            abort(400)

"""Domain errors: services raise them, routes and the API turn them into answers."""
from __future__ import annotations


class DomainError(Exception):
    """A refused request. ``message`` is a (lazily) translated string for the user.

    ``code`` is stable for machines; ``fields`` maps input names to messages.
    """

    status = 422

    def __init__(self, code: str, message, fields: dict | None = None):
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.fields = fields or {}


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409

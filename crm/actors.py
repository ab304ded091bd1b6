"""Who is acting in this unit of work: a user, an API key or the operator's CLI."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context, request
from flask_login import current_user


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str
    client_addr: str | None = None
    api_key_id: int | None = None

    @property
    def is_operator(self) -> bool:
        """The CLI acts as the operator, with full scope."""
        return self.label == "cli"


CLI = Actor(None, "cli")
SYSTEM = Actor(None, "system")


def set_actor(actor: Actor) -> None:
    g.doorstep_actor = actor


def current_actor() -> Actor:
    actor = g.get("doorstep_actor")
    if actor is not None:
        return actor
    addr = request.remote_addr if has_request_context() else None
    if has_request_context() and current_user and current_user.is_authenticated:
        return Actor(current_user.id, current_user.login, addr)
    if has_request_context():
        return Actor(None, "anonymous", addr)
    return SYSTEM

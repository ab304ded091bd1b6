"""Reactions to people changes: an agent who stops working for a supervisor hands the zones back."""
from __future__ import annotations

from crm import signals


def _agent_released(agent, supervisor_id=None, reason="released", **_kwargs) -> None:
    from territories import services

    services.release_agent(agent, supervisor_id, reason)


def connect() -> None:
    signals.agent_released.connect(_agent_released)

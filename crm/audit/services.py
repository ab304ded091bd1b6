"""Writing audit events. Callers flush; the request or command commits once."""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from crm import chain, clock
from crm.actors import Actor, current_actor
from crm.audit.models import AuditEvent
from crm.extensions import db


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record(action: str, object_type: str, object_id: Any = None, *, before: Any = None,
           after: Any = None, subject_id: int | None = None, at: datetime | None = None,
           actor: Actor | None = None, key: str | None = None) -> AuditEvent:
    """Append one audit event for a change to business data.

    ``before``/``after`` are plain dicts of the object's state; ``at`` defaults to
    now; ``key`` makes the event idempotent when it stems from a replayable source.
    """
    actor = actor or current_actor()
    recorded_at = clock.now()
    event = AuditEvent(
        idempotency_key=key or f"audit:{uuid.uuid4().hex}",
        at=clock.ensure_utc(at) if at else recorded_at,
        recorded_at=recorded_at,
        actor_id=actor.user_id,
        actor_label=actor.label[:120],
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        subject_id=subject_id,
        before=_json(before),
        after=_json(after),
        client_addr=actor.client_addr,
    )
    return chain.append(db.session, event, new_key=key is None)


def changed_fields(before: dict | None, after: dict | None) -> list[str]:
    """Names whose values differ between two snapshots, for the viewer."""
    before, after = before or {}, after or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

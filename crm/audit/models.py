from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.chain import ChainMixin, register
from crm.extensions import db
from crm.types import UTCDateTime


@register("audit")
class AuditEvent(ChainMixin, db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_actor_id", "actor_id"),
        Index("ix_audit_events_subject_id", "subject_id"),
    )
    __chain_fields__ = (
        "at", "recorded_at", "actor_id", "actor_label", "action", "object_type",
        "object_id", "subject_id", "before", "after", "client_addr",
    )

    #: Business time of the change (the sender's time for API events).
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Who acted, readable without a join: a login, ``api-key:NAME`` or ``cli``.
    actor_label: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    #: The user whose data or money this is ("who changed what about me").
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Canonical JSON of the object before and after the change.
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    client_addr: Mapped[str | None] = mapped_column(String(64))

    actor = relationship("User", foreign_keys=[actor_id])
    subject = relationship("User", foreign_keys=[subject_id])

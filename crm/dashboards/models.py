"""Monthly plans: how many contracts and activations a supervisor's team or an agent should
bring in a month. Set by the sales head; every change is audited."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.types import UTCDateTime


class Plan(db.Model):
    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("period", "user_id"),
        CheckConstraint("contracts >= 0 AND activations >= 0", name="not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the month, ``YYYY-MM`` in the company time zone
    period: Mapped[str] = mapped_column(String(7))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    contracts: Mapped[int]
    activations: Mapped[int]
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user = relationship("User", foreign_keys=[user_id])

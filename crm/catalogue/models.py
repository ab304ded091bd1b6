from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.types import UTCDateTime

TARIFF_KINDS = ("internet", "tv", "phone", "bundle")
ADDON_KINDS = ("tv", "phone", "video_surveillance", "router_rent")


class Tariff(db.Model):
    """A tariff or an add-on. ``code`` never changes; nothing is deleted, only archived."""

    __tablename__ = "tariffs"
    __table_args__ = (
        CheckConstraint("monthly_fee >= 0", name="fee_not_negative"),
        CheckConstraint("speed_mbit IS NULL OR speed_mbit > 0", name="speed_positive"),
        CheckConstraint("kind IN ('internet', 'tv', 'phone', 'bundle', 'video_surveillance', 'router_rent')",
                        name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_addon: Mapped[bool] = mapped_column(default=False)
    kind: Mapped[str] = mapped_column(String(24))
    speed_mbit: Mapped[int | None]
    #: minor units per month
    monthly_fee: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def active(self) -> bool:
        return self.archived_at is None

    def snapshot(self) -> dict:
        return {"code": self.code, "name": self.name, "is_addon": self.is_addon, "kind": self.kind,
                "speed_mbit": self.speed_mbit, "monthly_fee": self.monthly_fee, "archived": self.archived_at is not None}

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.types import UTCDateTime


class Building(db.Model):
    """A connected apartment building: the unit agents walk."""

    __tablename__ = "buildings"
    __table_args__ = (
        CheckConstraint("apartments >= 1", name="apartments_positive"),
        CheckConstraint("entrances >= 1", name="entrances_positive"),
        CheckConstraint("floors IS NULL OR floors >= 1", name="floors_positive"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="location_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    #: GeoJSON of the footprint polygon when the network system gave one.
    footprint: Mapped[str | None] = mapped_column(Text)
    apartments: Mapped[int]
    entrances: Mapped[int] = mapped_column(default=1)
    floors: Mapped[int | None]
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def has_flat(self, flat: int) -> bool:
        return 1 <= flat <= self.apartments

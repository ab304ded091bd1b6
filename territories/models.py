from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.types import UTCDateTime


class Building(db.Model):
    """A connected apartment building: the unit agents walk.

    ``territory_id`` and ``zone_id`` are the building's current membership,
    recomputed whenever a building arrives or a polygon changes (never by hand).
    """

    __tablename__ = "buildings"
    __table_args__ = (
        CheckConstraint("apartments >= 1", name="apartments_positive"),
        CheckConstraint("entrances >= 1", name="entrances_positive"),
        CheckConstraint("floors IS NULL OR floors >= 1", name="floors_positive"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="location_valid"),
        # covering the per-zone sums of flats (coverage, penetration) as well as the zone lookups
        Index("ix_buildings_zone_id", "zone_id", "apartments"),
        Index("ix_buildings_territory_id", "territory_id"),
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
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))

    territory: Mapped[Territory | None] = relationship(foreign_keys=[territory_id])
    zone: Mapped[Zone | None] = relationship(foreign_keys=[zone_id])

    def has_flat(self, flat: int) -> bool:
        return 1 <= flat <= self.apartments

    def snapshot(self) -> dict:
        return {"external_id": self.external_id, "address": self.address, "lat": self.lat, "lon": self.lon,
                "apartments": self.apartments, "entrances": self.entrances, "floors": self.floors,
                "connected_at": self.connected_at.isoformat() if self.connected_at else None,
                "footprint": bool(self.footprint)}


class Territory(db.Model):
    """A sales head's polygon handed to one supervisor. Retired, never deleted."""

    __tablename__ = "territories"
    __table_args__ = (
        Index("ix_territories_region_id", "region_id"),
        Index("ix_territories_supervisor_id", "supervisor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: the sales head whose region this is
    region_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: GeoJSON geometry (WGS84 lon/lat); the previous ones are in polygon_versions
    geometry: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    supervisor = relationship("User", foreign_keys=[supervisor_id])
    region = relationship("User", foreign_keys=[region_id])

    kind = "territory"

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def snapshot(self) -> dict:
        return {"name": self.name, "supervisor_id": self.supervisor_id, "region_id": self.region_id,
                "version": self.version, "retired": self.retired_at is not None}


class Zone(db.Model):
    """A supervisor's polygon inside one territory, walked by the agent assigned to it."""

    __tablename__ = "zones"
    __table_args__ = (Index("ix_zones_territory_id", "territory_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id"))
    geometry: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    territory: Mapped[Territory] = relationship()

    kind = "zone"

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def snapshot(self) -> dict:
        return {"name": self.name, "territory_id": self.territory_id, "version": self.version,
                "retired": self.retired_at is not None}


class PolygonVersion(db.Model):
    """Every geometry a territory or zone ever had (the current one included): nothing is lost on an edit."""

    __tablename__ = "polygon_versions"
    __table_args__ = (
        CheckConstraint("kind IN ('territory', 'zone')", name="kind_known"),
        Index("uq_polygon_versions_polygon", "kind", "polygon_id", "version", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    polygon_id: Mapped[int]
    version: Mapped[int]
    geometry: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ZoneAssignment(db.Model):
    """An agent walks a zone from ``valid_from`` up to and including ``valid_to`` (open when None).

    Ending early (agent deactivated, moved, reassigned) sets ``ended_at``/``end_reason``
    and pulls ``valid_to`` in; rows are never deleted.
    """

    __tablename__ = "zone_assignments"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from OR ended_at IS NOT NULL", name="dates_ordered"),
        Index("ix_zone_assignments_zone_id", "zone_id"),
        Index("ix_zone_assignments_agent_id", "agent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))

    zone: Mapped[Zone] = relationship()
    agent = relationship("User", foreign_keys=[agent_id])

    def current_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def snapshot(self) -> dict:
        return {"zone_id": self.zone_id, "agent_id": self.agent_id, "valid_from": self.valid_from.isoformat(),
                "valid_to": self.valid_to.isoformat() if self.valid_to else None, "end_reason": self.end_reason}


class Notification(db.Model):
    """One line in a user's inbox ("12 new buildings in Центр", "zone Z-3 assigned to you")."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(40))
    #: JSON parameters the inbox renders in the reader's language
    params: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

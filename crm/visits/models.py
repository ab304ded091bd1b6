from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.types import UTCDateTime
from crm.visits.rules import OUTCOMES


class Visit(db.Model):
    """One knock on one door. Append-only: the database refuses UPDATE and DELETE."""

    __tablename__ = "visits"
    __table_args__ = (
        CheckConstraint(f"outcome IN {OUTCOMES!r}", name="outcome_known"),
        CheckConstraint("flat >= 1", name="flat_positive"),
        CheckConstraint("gps_colour IN ('green', 'amber', 'red')", name="gps_colour_known"),
        Index("ix_visits_building_id_flat", "building_id", "flat"),
        Index("ix_visits_agent_id_at", "agent_id", "at"),
        Index("ix_visits_supervisor_id_at", "supervisor_id", "at"),
        # penetration reads only these doors among millions of visits
        Index("ix_visits_subscriber_doors", "building_id", "flat", "at",
              sqlite_where=text("outcome = 'already_subscriber'"),
              postgresql_where=text("outcome = 'already_subscriber'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the phone's UUID (up to 64 characters; a contract's signed visit adds "#signed"): a retried sync finds it
    client_id: Mapped[str] = mapped_column(String(80), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the agent's supervisor when the visit was recorded (the team's day)
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    flat: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    #: business time (the device's clock) and the server's
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    gps_colour: Mapped[str] = mapped_column(String(8))
    flagged: Mapped[bool] = mapped_column(default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(80))
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    competitor: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    #: the canonical JSON of what the phone sent: a replay with other data is refused
    request: Mapped[str] = mapped_column(Text)

    agent = relationship("User", foreign_keys=[agent_id])
    building = relationship("Building")


class DoorUnlock(db.Model):
    """A supervisor reopened a door locked by already_subscriber or do_not_knock. Append-only."""

    __tablename__ = "door_unlocks"
    __table_args__ = (Index("ix_door_unlocks_building_id_flat", "building_id", "flat"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    flat: Mapped[int]
    #: the locking visit this lifts
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.contracts.lifecycle import STATUSES
from crm.extensions import db
from crm.types import UTCDateTime


class Contract(db.Model):
    """A signed contract. Signed fields never change; only the status moves (see lifecycle)."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status_known"),
        CheckConstraint("flat >= 1", name="flat_positive"),
        CheckConstraint("adult_confirmed", name="adult_confirmed"),
        # one active contract per flat, enforced by the database too
        Index("uq_contracts_active_flat", "building_id", "flat", unique=True,
              sqlite_where=text("status <> 'cancelled'"), postgresql_where=text("status <> 'cancelled'")),
        Index("ix_contracts_agent_id", "agent_id"),
        Index("ix_contracts_supervisor_id", "supervisor_id"),
        Index("ix_contracts_status", "status"),
        # the dashboards count a month's signings and activations
        Index("ix_contracts_at", "at"),
        Index("ix_contracts_activated_at", "activated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    #: the phone's client-generated id (UUID): a retried sync finds the same contract
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the agent's supervisor at signing; kept when the agent moves
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    flat: Mapped[int]
    subscriber_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    #: monthly price at signing (tariff + add-ons), minor units
    monthly_fee: Mapped[int]
    adult_confirmed: Mapped[bool]
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the rate version in force at ``at``; NULL = "no rate" (an alert for the sales head)
    rate_version_id: Mapped[int | None] = mapped_column(ForeignKey("rate_versions.id"))
    status: Mapped[str] = mapped_column(String(24), default="signed")
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    agent = relationship("User", foreign_keys=[agent_id])
    supervisor = relationship("User", foreign_keys=[supervisor_id])
    building = relationship("Building")
    tariff = relationship("Tariff")
    rate_version = relationship("RateVersion")
    addons: Mapped[list[ContractAddon]] = relationship(order_by="ContractAddon.tariff_id")
    events: Mapped[list[ContractEvent]] = relationship(order_by="ContractEvent.id", back_populates="contract")

    @property
    def active(self) -> bool:
        return self.status != "cancelled"


class ContractAddon(db.Model):
    __tablename__ = "contract_addons"

    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"), primary_key=True)

    tariff = relationship("Tariff")


class ContractEvent(db.Model):
    """Every status change with who, when (business and server time), why and from which system."""

    __tablename__ = "contract_events"
    __table_args__ = (Index("ix_contract_events_contract_id", "contract_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    #: ``api:<event_id>`` for integrations, ``web:<uuid>`` from pages, ``sign:<contract>`` for signing
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    #: the request as received (canonical JSON) and the answer given, for idempotent replays
    request: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)

    contract: Mapped[Contract] = relationship(back_populates="events")

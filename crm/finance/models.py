"""Periods, their closes and payouts, adjustments and disputes.

A period is a calendar month (``YYYY-MM``) in the company time zone. It is open
until a ``PeriodClose`` row exists; closes, snapshots, payouts and dispute
messages are immutable (the database refuses UPDATE and DELETE on them), so a
closed period never reopens and its figures never move.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.types import UTCDateTime

ADJUSTMENT_STATUSES = ("proposed", "approved", "rejected")
DISPUTE_STATUSES = ("open", "resolved", "rejected")


class PeriodClose(db.Model):
    """A month that finance closed, with the ledger head published at that moment."""

    __tablename__ = "period_closes"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    #: the ledger head after the bonuses were written: ``head_position:head_hash``
    head_position: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    #: the rate version in force at the month's last instant (its tiers gave the bonuses)
    tiers_version_id: Mapped[int | None] = mapped_column(ForeignKey("rate_versions.id"))
    beneficiaries: Mapped[int]

    @property
    def head(self) -> str:
        return f"{self.head_position}:{self.head_hash}"


class PeriodSnapshot(db.Model):
    """One beneficiary's figures at a close (minor units). ``net`` is the payable balance
    of every entry of this period and the ones before it: what the payout pays."""

    __tablename__ = "period_snapshots"
    __table_args__ = (Index("ix_period_snapshots_beneficiary_id", "beneficiary_id"),)

    period: Mapped[str] = mapped_column(String(7), ForeignKey("period_closes.period"), primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # who they were at the close, as payroll will read it
    login: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    personnel_number: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(20))
    supervisor_login: Mapped[str | None] = mapped_column(String(64))
    #: payable balance carried in from earlier periods (the previous close's net)
    opening: Mapped[int] = mapped_column(BigInteger)
    accruals_earned: Mapped[int] = mapped_column(BigInteger)
    overrides_earned: Mapped[int] = mapped_column(BigInteger)
    bonuses: Mapped[int] = mapped_column(BigInteger)
    adjustments: Mapped[int] = mapped_column(BigInteger)
    clawbacks: Mapped[int] = mapped_column(BigInteger)
    #: payouts of earlier periods recorded during this one (negative)
    payouts: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    #: pending balance of this period and the ones before (the pipeline at the close)
    pending: Mapped[int] = mapped_column(BigInteger)

    beneficiary = relationship("User")


class Payout(db.Model):
    """The payout of a closed period, recorded once."""

    __tablename__ = "payouts"

    period: Mapped[str] = mapped_column(String(7), ForeignKey("period_closes.period"), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    entries: Mapped[int]
    #: sum of the payout entries (minor units, positive)
    total: Mapped[int] = mapped_column(BigInteger)
    #: beneficiaries whose net was negative: carried forward as a debt, no entry
    carried: Mapped[int]


class Adjustment(db.Model):
    """A manual correction: proposed by one person, approved by a finance user who is
    neither its author nor its beneficiary; only then does it become a ledger entry."""

    __tablename__ = "adjustments"
    __table_args__ = (
        CheckConstraint(f"status IN {ADJUSTMENT_STATUSES!r}", name="status_known"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_adjustments_status", "status"),
        Index("ix_adjustments_beneficiary_id", "beneficiary_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: signed, minor units
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    #: the ledger entry this corrects, if any
    corrects_position: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.position"))
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("disputes.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_label: Mapped[str] = mapped_column(String(120))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="proposed")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    #: the ledger entry written on approval
    entry_position: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.position"))

    beneficiary = relationship("User", foreign_keys=[beneficiary_id])
    author = relationship("User", foreign_keys=[author_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
    dispute = relationship("Dispute", foreign_keys=[dispute_id], back_populates="adjustments")


class Dispute(db.Model):
    """An agent's objection to an entry, a contract, or a contract that is missing."""

    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint(f"status IN {DISPUTE_STATUSES!r}", name="status_known"),
        Index("ix_disputes_agent_id", "agent_id"),
        Index("ix_disputes_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    entry_position: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.position"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    subject: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="open")
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)

    agent = relationship("User", foreign_keys=[agent_id])
    contract = relationship("Contract")
    entry = relationship("LedgerEntry", foreign_keys=[entry_position])
    messages: Mapped[list[DisputeMessage]] = relationship(order_by="DisputeMessage.id", back_populates="dispute")
    adjustments: Mapped[list[Adjustment]] = relationship(foreign_keys=[Adjustment.dispute_id],
                                                         back_populates="dispute", order_by="Adjustment.id")


class DisputeMessage(db.Model):
    """One message of a dispute's thread. Immutable."""

    __tablename__ = "dispute_messages"
    __table_args__ = (Index("ix_dispute_messages_dispute_id", "dispute_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_label: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text)

    dispute: Mapped[Dispute] = relationship(back_populates="messages")
    author = relationship("User")

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.chain import ChainMixin, register
from crm.extensions import db
from crm.types import UTCDateTime

KINDS = ("accrual", "override", "release", "earned", "void", "clawback", "bonus", "adjustment", "payout")
BUCKETS = ("pending", "payable")


class RateVersion(db.Model):
    """Commission rates from ``effective_from`` on. Immutable (the database refuses changes)."""

    __tablename__ = "rate_versions"
    __table_args__ = (
        CheckConstraint("override_bp BETWEEN 0 AND 10000", name="override_range"),
        CheckConstraint("clawback_days >= 0", name="clawback_not_negative"),
        Index("ix_rate_versions_effective", "effective_from", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: supervisor override in basis points of the agent amount (10 % = 1000)
    override_bp: Mapped[int]
    clawback_days: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the JSON the version was given as, kept verbatim for the record
    source: Mapped[str] = mapped_column(Text)

    amounts: Mapped[list[RateAmount]] = relationship(back_populates="version", order_by="RateAmount.tariff_id")
    tiers: Mapped[list[RateTier]] = relationship(back_populates="version", order_by="RateTier.activations")


class RateAmount(db.Model):
    """The agent amount (minor units) for one tariff or add-on in one version."""

    __tablename__ = "rate_amounts"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("rate_versions.id"), primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)

    version: Mapped[RateVersion] = relationship(back_populates="amounts")
    tariff = relationship("Tariff")


class RateTier(db.Model):
    """Monthly accelerator: from ``activations`` on, ``bonus_per_activation`` for each one."""

    __tablename__ = "rate_tiers"
    __table_args__ = (
        CheckConstraint("activations >= 1", name="activations_positive"),
        CheckConstraint("bonus_per_activation >= 0", name="bonus_not_negative"),
    )

    version_id: Mapped[int] = mapped_column(ForeignKey("rate_versions.id"), primary_key=True)
    activations: Mapped[int] = mapped_column(Integer, primary_key=True)
    bonus_per_activation: Mapped[int] = mapped_column(BigInteger)

    version: Mapped[RateVersion] = relationship(back_populates="tiers")


@register("ledger")
class LedgerEntry(ChainMixin, db.Model):
    """One movement of money for one beneficiary. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", name="kind_known"),
        CheckConstraint(f"bucket IN {BUCKETS!r}", name="bucket_known"),
        Index("ix_ledger_entries_beneficiary", "beneficiary_id", "bucket"),
        Index("ix_ledger_entries_contract_id", "contract_id"),
        Index("ix_ledger_entries_period", "period"),
    )
    __chain_fields__ = (
        "kind", "bucket", "beneficiary_id", "contract_id", "rate_version_id", "amount", "at", "recorded_at",
        "period", "corrects_period", "actor_id", "actor_label", "reason", "ref_position",
    )
    #: where a replay lands depends on which periods are closed by then, not on its data
    __replay_ignore__ = ("recorded_at", "period", "corrects_period")

    kind: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(8))
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    rate_version_id: Mapped[int | None] = mapped_column(ForeignKey("rate_versions.id"))
    #: signed, minor units
    amount: Mapped[int] = mapped_column(BigInteger)
    #: business time of the event that wrote the entry
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: accounting month ``YYYY-MM`` the entry belongs to
    period: Mapped[str] = mapped_column(String(7))
    #: the closed month a late entry corrects (it then sits in the earliest open one)
    corrects_period: Mapped[str | None] = mapped_column(String(7))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    #: the entry this one resolves (release/void of an accrual) or reverses (clawback of earned)
    ref_position: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.position"))

    beneficiary = relationship("User", foreign_keys=[beneficiary_id])
    contract = relationship("Contract", foreign_keys=[contract_id])
    rate_version = relationship("RateVersion")

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.types import UTCDateTime


class LoginAttempt(db.Model):
    """Every login attempt, so throttling holds across all server processes."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_client_addr_at", "client_addr", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    succeeded: Mapped[bool] = mapped_column(default=False)
    #: Refused unchecked because the login or address was locked; not counted as a failure.
    throttled: Mapped[bool] = mapped_column(default=False)

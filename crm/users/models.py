from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.types import UTCDateTime

AGENT, SUPERVISOR, SALES_HEAD, FINANCE, ADMIN = "agent", "supervisor", "sales_head", "finance", "admin"
ROLES = (AGENT, SUPERVISOR, SALES_HEAD, FINANCE, ADMIN)
#: Roles that take a second person's confirmation to grant.
PRIVILEGED_ROLES = frozenset({FINANCE, SALES_HEAD})
#: The role a user's manager must have, by the user's role.
MANAGER_ROLE = {AGENT: SUPERVISOR, SUPERVISOR: SALES_HEAD}

GRANT_PENDING, GRANT_CONFIRMED, GRANT_REJECTED = "pending", "confirmed", "rejected"


def new_session_token() -> str:
    return secrets.token_hex(8)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
        CheckConstraint("manager_id IS NULL OR manager_id <> id", name="not_own_manager"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    personnel_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    #: Part of the session id: changing it signs the user out everywhere.
    session_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    manager: Mapped[User | None] = relationship(remote_side=[id], back_populates="reports")
    reports: Mapped[list[User]] = relationship(back_populates="manager", order_by="User.login")

    # Flask-Login
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.active)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    def snapshot(self) -> dict:
        """What the audit log records about a user (never the password hash)."""
        return {
            "login": self.login,
            "name": self.name,
            "role": self.role,
            "manager": self.manager.login if self.manager else None,
            "personnel_number": self.personnel_number,
            "active": bool(self.active),
            "must_change_password": bool(self.must_change_password),
            "locale": self.locale,
        }

    def __repr__(self) -> str:
        return f"<User {self.login} ({self.role})>"


class RoleGrant(db.Model):
    """A proposal to give someone the finance or sales_head role; a second person decides."""

    __tablename__ = "role_grants"
    __table_args__ = (
        CheckConstraint(f"role IN {tuple(sorted(PRIVILEGED_ROLES))!r}", name="role_privileged"),
        CheckConstraint(f"status IN {(GRANT_PENDING, GRANT_CONFIRMED, GRANT_REJECTED)!r}", name="status_known"),
        Index("ix_role_grants_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    #: True when the user was created by this proposal and stays inactive until confirmed.
    activates_user: Mapped[bool] = mapped_column(default=False)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default=GRANT_PENDING)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    #: First half of the grantee's temporary password, shown to the proposer; wiped on decision.
    handover_part: Mapped[str | None] = mapped_column(String(16))

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    proposed_by: Mapped[User | None] = relationship(foreign_keys=[proposed_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

"""The one clock all code reads; tests and the demo seed inject their own.

Nothing reads the database's ``now()``: every timestamp comes from here, in UTC.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from flask import current_app, has_app_context

UTC = timezone.utc

#: Business times further in the future than this are refused.
FUTURE_TOLERANCE = timedelta(minutes=5)


class Clock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    """A clock that stands still until moved; for tests and seeding history."""

    def __init__(self, at: datetime):
        self.at = ensure_utc(at)

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = ensure_utc(at)

    def advance(self, **kwargs) -> datetime:
        self.at = self.at + timedelta(**kwargs)
        return self.at


class OffsetClock(Clock):
    """Real time shifted by a fixed offset (the demo seed writes history this way)."""

    def __init__(self, offset: timedelta):
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


_default = Clock()


def get_clock() -> Clock:
    if has_app_context():
        return current_app.extensions.get("doorstep_clock", _default)
    return _default


def now() -> datetime:
    """The current time in UTC, as the injected clock tells it."""
    return get_clock().now()


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: a zone is required")
    return value.astimezone(UTC)


class BusinessTimeError(ValueError):
    """An event's business time ``at`` is outside what the server accepts."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_business_time(at: datetime, recorded_at: datetime, *, grace: timedelta | None) -> None:
    """Refuse an ``at`` too far in the future, or (for phone events) older than the offline grace.

    ``grace`` is ``None`` for API events, which may report the past freely.
    """
    at = ensure_utc(at)
    recorded_at = ensure_utc(recorded_at)
    if at > recorded_at + FUTURE_TOLERANCE:
        raise BusinessTimeError("future", "time is in the future")
    if grace is not None and at < recorded_at - grace:
        raise BusinessTimeError("too_old", "time is older than the offline grace")


def company_zone():
    """The company time zone (a setting)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(current_app.config["COMPANY_TIMEZONE"])


def today() -> date:
    """Today's date in the company time zone (assignments and plans are dated there)."""
    return now().astimezone(company_zone()).date()

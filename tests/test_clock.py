"""Business time: the future is refused, the offline grace bounds the past for phone events."""
from datetime import datetime, timedelta, timezone

import pytest

from crm.clock import BusinessTimeError, FixedClock, check_business_time

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
GRACE = timedelta(hours=72)


@pytest.mark.parametrize("delta, grace, ok", [
    (timedelta(minutes=5), GRACE, True),
    (timedelta(minutes=5, seconds=1), GRACE, False),
    (-GRACE, GRACE, True),
    (-GRACE - timedelta(seconds=1), GRACE, False),
    (-timedelta(days=400), None, True),  # API events may report the past
])
def test_business_time_bounds(delta, grace, ok):
    if ok:
        check_business_time(NOW + delta, NOW, grace=grace)
    else:
        with pytest.raises(BusinessTimeError):
            check_business_time(NOW + delta, NOW, grace=grace)


def test_naive_times_are_refused_and_fixed_clock_moves_only_when_told():
    with pytest.raises(ValueError):
        check_business_time(datetime(2026, 1, 1), NOW, grace=GRACE)
    clock = FixedClock(NOW)
    assert clock.now() == NOW
    assert clock.advance(hours=1) == NOW + timedelta(hours=1) == clock.now()


def test_the_app_reads_the_injected_clock(app, clock):
    from crm import clock as clock_module

    with app.app_context():
        assert clock_module.now() == clock.now()
        clock.advance(days=3)
        assert clock_module.now() == clock.now()

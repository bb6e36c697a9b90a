"""The periods of metering: UTC calendar days and months (a quota's period, a meter's reset),
the hours of the rollups, and the counter an event adds to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tenantry.metering.meters import Meter
from tenantry.metering.repository import CounterKey
from tenantry.plans.catalog import Period

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_start(period: Period, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    if period is Period.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.MONTH:
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return EPOCH


def period_end(period: Period, start: datetime) -> datetime | None:
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.MONTH:
        return (start + timedelta(days=32)).replace(day=1)
    return None


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def counter_key(meter: Meter, at: datetime) -> CounterKey:
    """The counter an event of `meter` at `at` adds to: the meter's reset period."""
    return (meter.key, meter.reset.value, period_start(meter.reset, at))

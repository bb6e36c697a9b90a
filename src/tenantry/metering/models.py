"""Tables of metering. Every tenant-owned table leads with `org_id`.

Usage is written once as raw events (append-only) and kept current, in the same transaction, as
pre-aggregated rows: hourly rollups per (org, hour, meter, team, user, provider, model) for
summaries, and per-org counters per (meter, period) with `used` and `reserved` for quotas. No
request path reads raw events. In rollups "none" is the empty string, not NULL, so that one
unique key (and one upsert) covers every row on both databases.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime
from tenantry.metering.meters import QUANTITY_SCALE, from_micros, to_micros


class Quantity(TypeDecorator[Decimal]):
    """A decimal quantity stored as an integer of millionths: exact sums on SQLite too."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value * QUANTITY_SCALE
        return to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_micros(int(value))


def _org_fk() -> ForeignKey:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class UsageEvent(Base):
    """One thing that was used, as the product reported it; never updated."""

    __tablename__ = "usage_events"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    # The caller's id: replaying an event (or a whole batch) records nothing twice.
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Quantity())
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    # Plain ids, not foreign keys: usage stays history when a team or key is gone.
    team_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class UsageRollup(Base):
    """Usage of one hour for one (meter, team, user, provider, model); "" means none."""

    __tablename__ = "usage_rollups"
    __table_args__ = (Index("ix_usage_rollups_org_id_team_id_hour", "org_id", "team_id", "hour"),)

    # The whole key is the primary key: one upsert target, and org/time range reads use it.
    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    # What the events contributed (a count meter: 1 each; a unique count: 1 per new value).
    quantity: Mapped[Decimal] = mapped_column(Quantity())
    events: Mapped[int] = mapped_column(BigInteger)
    max_quantity: Mapped[Decimal] = mapped_column(Quantity())
    last_quantity: Mapped[Decimal] = mapped_column(Quantity())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Time-weighted meters: sum of (change x seconds from the change to the end of the hour),
    # which with the level at the hour's start gives the exact integral over the hour.
    weighted: Mapped[Decimal] = mapped_column(Quantity())


class UsageCounter(Base):
    """An org's total of one meter in one period, and what admissions hold against it."""

    __tablename__ = "usage_counters"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "day", "month" or "none" (a level that never resets, such as storage held).
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    used: Mapped[Decimal] = mapped_column(Quantity())
    reserved: Mapped[Decimal] = mapped_column(Quantity())


class UsageUniqueValue(Base):
    """A value already counted by a `unique_count` meter in one of its periods."""

    __tablename__ = "usage_unique_values"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), primary_key=True)


class ReservationStatus(StrEnum):
    HELD = "held"  # its holds count against the limits until settled or expired
    SETTLED = "settled"  # usage recorded, holds released
    EXPIRED = "expired"  # holds released unused; a late settle still records the usage


class Reservation(Base):
    """What an allowed admission holds on the org's counters until settled or expired."""

    __tablename__ = "usage_reservations"
    __table_args__ = (
        Index("ix_usage_reservations_org_id_status_expires_at", "org_id", "status", "expires_at"),
        Index("ix_usage_reservations_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # "held" -> "settled" | "expired" (an expired one may still be settled: usage is recorded,
    # nothing is released twice).
    status: Mapped[str] = mapped_column(String(16))
    estimate: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # [{meter, period, period_start, quantity}]: the amounts added to counters' `reserved`.
    holds: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class QuotaAlert(Base):
    """A metered quota crossed 80% or 100% in a period; raised once per threshold and period."""

    __tablename__ = "quota_alerts"
    __table_args__ = (UniqueConstraint("org_id", "quota_key", "period_start", "threshold"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    quota_key: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    threshold: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[Decimal] = mapped_column(Quantity())
    limit: Mapped[Decimal] = mapped_column(Quantity())
    enforcement: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuotaLock(Base):
    """The row a count-quota claim locks, so concurrent creations count one after another."""

    __tablename__ = "quota_locks"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    quota_key: Mapped[str] = mapped_column(String(64), primary_key=True)

"""Tables of throttling. Every tenant-owned table leads with `org_id`.

Rate-limit buckets and the daily API-calls counters are not here: they live in the rate-limit
store (this process, or Redis), which answers in microseconds. What must survive a restart is:
an org's own tighter limits, and the run leases it holds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, UTCDateTime
from tenantry.kit.stamps import track


class RateLimitOverride(Base):
    """An org's own rate limits, each at most its plan's; a null column keeps the plan's."""

    __tablename__ = "rate_limit_overrides"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    org_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    org_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunLeaseGate(Base):
    """One row per org that has held a lease: acquires lock it, so they queue per org (and only
    per org) while they count the slots in use."""

    __tablename__ = "run_lease_gates"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )


class RunLease(Base):
    """A slot of the org's `concurrent_runs`, held until released or until `expires_at` passes
    without a heartbeat."""

    __tablename__ = "run_leases"
    __table_args__ = (
        UniqueConstraint("org_id", "team_id", "run_id"),
        Index("ix_run_leases_org_id_expires_at", "org_id", "expires_at"),
        Index("ix_run_leases_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    # The caller's own name for the run (its id in their system): at most one lease per run.
    run_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    holder_type: Mapped[str] = mapped_column(String(16))
    holder_id: Mapped[str] = mapped_column(String(40))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


# An org's own rate limits decide its requests (see `kit.stamps`).
track(RateLimitOverride)

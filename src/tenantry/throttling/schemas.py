"""Bodies of the throttling endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from tenantry.kit.schemas import Input, Output

PerMinute = Annotated[int, Field(ge=1, le=10_000_000)]
Burst = Annotated[int, Field(ge=1, le=1_000_000)]
LeaseTtl = Annotated[int, Field(ge=5, le=24 * 3600)]
RunRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RateLimitsIn(Input):
    """The org's own limits; a field left out or null keeps the plan's. Each must be at most the
    plan's (a higher limit is a plan matter: a custom plan, see docs/rate-limits.md)."""

    org_per_minute: PerMinute | None = None
    org_burst: Burst | None = None
    key_per_minute: PerMinute | None = None
    key_burst: Burst | None = None


class RateLimitValues(Output):
    org_per_minute: int
    org_burst: int
    key_per_minute: int
    key_burst: int


class RateLimitOverrideOut(Output):
    org_per_minute: int | None
    org_burst: int | None
    key_per_minute: int | None
    key_burst: int | None
    updated_at: datetime


class ApiCallsQuotaOut(Output):
    limit: int | None  # None: unlimited
    enforcement: str
    period: str
    used_today: int | None  # None when the counter store cannot be reached
    resets_at: datetime


class RateLimitsOut(Output):
    org_id: str
    plan: str
    plan_limits: RateLimitValues
    override: RateLimitOverrideOut | None
    effective: RateLimitValues
    api_calls: ApiCallsQuotaOut
    store: str  # "memory" (this process only) or "redis" (shared)


class LeaseAcquireIn(Input):
    run_id: RunRef | None = None
    ttl_seconds: LeaseTtl = 300


class LeaseHeartbeatIn(Input):
    ttl_seconds: LeaseTtl | None = None


class LeaseOut(Output):
    id: str
    org_id: str
    team_id: str
    run_id: str | None
    holder_type: str
    holder_id: str
    ttl_seconds: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime


class SlotsOut(Output):
    limit: int | None  # None: unlimited
    in_use: int


class LeaseAcquiredOut(LeaseOut):
    concurrent_runs: SlotsOut

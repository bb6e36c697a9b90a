"""SDK calls of throttling (mixed into `tenantry.client.api.Api`); see that module's conventions.

Rate limits of an organization (`get_rate_limits`, `set_rate_limits`) and concurrent-run leases
of a team (`acquire_lease`, `heartbeat_lease`, `release_lease`, `list_leases`). Any call may
raise `RateLimited` (429; its `retry_after` says when to try again) or, when the plan's daily API
calls or concurrent runs are used up, `PaymentRequired` (402; its body names the next plan).
"""

from __future__ import annotations

from datetime import datetime

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    model,
    nothing,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import Page, Result

# ---- results ----


class RateLimitValues(Result):
    org_per_minute: int
    org_burst: int
    key_per_minute: int
    key_burst: int


class RateLimitOverride(Result):
    org_per_minute: int | None = None
    org_burst: int | None = None
    key_per_minute: int | None = None
    key_burst: int | None = None
    updated_at: datetime


class ApiCallsQuota(Result):
    limit: int | None = None
    enforcement: str
    period: str
    used_today: int | None = None
    resets_at: datetime


class RateLimits(Result):
    org_id: str
    plan: str
    plan_limits: RateLimitValues
    override: RateLimitOverride | None = None
    effective: RateLimitValues
    api_calls: ApiCallsQuota
    store: str


class Lease(Result):
    id: str
    org_id: str
    team_id: str
    run_id: str | None = None
    holder_type: str
    holder_id: str
    ttl_seconds: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime


class Slots(Result):
    limit: int | None = None
    in_use: int


class LeaseAcquired(Lease):
    concurrent_runs: Slots


# ---- calls ----


def _leases(team: str) -> str:
    return f"{API}/teams/{segment(team)}/runs/leases"


class ThrottlingCalls:
    """Routes of throttling, described once for both clients."""

    @endpoint
    def get_rate_limits(self, org: str) -> Call[RateLimits]:
        """The org's rate limits (its plan's, its own, the effective ones) and today's calls."""
        return Call("GET", f"{API}/orgs/{segment(org)}/rate-limits", model(RateLimits))

    @endpoint
    def set_rate_limits(
        self,
        org: str,
        *,
        org_per_minute: int | None = None,
        org_burst: int | None = None,
        key_per_minute: int | None = None,
        key_burst: int | None = None,
    ) -> Call[RateLimits]:
        """Set the org's own limits, each at most the plan's; those not given keep the plan's
        (so a call with none clears the override)."""
        body = fields(
            org_per_minute=org_per_minute,
            org_burst=org_burst,
            key_per_minute=key_per_minute,
            key_burst=key_burst,
        )
        return Call("PUT", f"{API}/orgs/{segment(org)}/rate-limits", model(RateLimits), body=body)

    @endpoint
    def acquire_lease(
        self,
        team: str,
        *,
        run_id: str | None = None,
        ttl_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> Call[LeaseAcquired]:
        """Hold one of the org's concurrent runs; heartbeat before `ttl_seconds` pass."""
        body = fields(run_id=run_id, ttl_seconds=ttl_seconds)
        return Call(
            "POST",
            _leases(team),
            model(LeaseAcquired),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def heartbeat_lease(
        self, team: str, lease_id: str, *, ttl_seconds: int | None = None
    ) -> Call[Lease]:
        """Extend the lease by its TTL (or a new `ttl_seconds`) from now."""
        return Call(
            "POST",
            f"{_leases(team)}/{segment(lease_id)}/heartbeat",
            model(Lease),
            body=fields(ttl_seconds=ttl_seconds),
        )

    @endpoint
    def release_lease(self, team: str, lease_id: str) -> Call[None]:
        return Call("DELETE", f"{_leases(team)}/{segment(lease_id)}", nothing)

    @endpoint
    def list_leases(
        self, team: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Lease]]:
        """The team's leases that have not expired."""
        return Call("GET", _leases(team), model(Page[Lease]), params=page_query(limit, cursor))

    iter_leases = paged(list_leases)

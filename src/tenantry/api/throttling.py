"""HTTP routes of throttling: an org's rate limits, and a team's concurrent-run leases.

Audited: changing rate limits, acquiring and releasing a lease (one event each: who held a slot
of the org's concurrent runs, and when). Not audited: heartbeats, which a run sends every few
seconds for its whole life; the lease's `heartbeat_at` is their record.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.kit.context import quota_exempt
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.plans.catalog import RateLimits
from tenantry.throttling import service
from tenantry.throttling.limiter import RequestLimiter
from tenantry.throttling.schemas import (
    ApiCallsQuotaOut,
    LeaseAcquiredOut,
    LeaseAcquireIn,
    LeaseHeartbeatIn,
    LeaseOut,
    RateLimitOverrideOut,
    RateLimitsIn,
    RateLimitsOut,
    RateLimitValues,
    SlotsOut,
)

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

LimitsRead = Annotated[OrgScope, Depends(org_scope(Permission.USAGE_READ))]
LimitsUpdate = Annotated[OrgScope, Depends(org_scope(Permission.ORG_UPDATE))]
LeasesRead = Annotated[TeamScope, Depends(team_scope(Permission.USAGE_READ))]
LeasesWrite = Annotated[TeamScope, Depends(team_scope(Permission.USAGE_WRITE))]


def _values(limits: RateLimits) -> RateLimitValues:
    return RateLimitValues(
        org_per_minute=limits.org_per_minute,
        org_burst=limits.org_burst,
        key_per_minute=limits.key_per_minute,
        key_burst=limits.key_burst,
    )


def _limits_out(request: Request, scope: OrgScope, view: service.RateLimitView) -> RateLimitsOut:
    limiter: RequestLimiter = app_state(request).throttle
    now = scope.ctx.clock.now()
    quota = view.plan.quota("api_calls")
    _, resets_at = service.day_window(now)
    return RateLimitsOut(
        org_id=scope.org.id,
        plan=view.plan.key,
        plan_limits=_values(view.plan_limits),
        override=RateLimitOverrideOut.model_validate(view.override) if view.override else None,
        effective=_values(view.effective),
        api_calls=ApiCallsQuotaOut(
            limit=int(quota.limit) if quota and quota.limit is not None else None,
            enforcement=quota.enforcement.value if quota else "none",
            period="day",
            used_today=limiter.used_today(scope.org.id, now=now),
            resets_at=resets_at,
        ),
        store=limiter.store_kind,
    )


@router.get("/orgs/{org}/rate-limits", response_model=RateLimitsOut, tags=["rate limits"])
@quota_exempt
def show_rate_limits(request: Request, scope: LimitsRead) -> RateLimitsOut:
    """The org's rate limits (plan, own override, effective) and today's API calls."""
    multiplier = scope.ctx.settings.rate_limit_multiplier
    view = service.rate_limit_view(scope.ctx.session, scope.org.id, multiplier=multiplier)
    return _limits_out(request, scope, view)


@router.put(
    "/orgs/{org}/rate-limits",
    name="rate_limits.updated",
    response_model=RateLimitsOut,
    tags=["rate limits"],
)
def set_rate_limits(body: RateLimitsIn, request: Request, scope: LimitsUpdate) -> Response:
    """Set the org's own limits, each at most the plan's; null (or left out) keeps the plan's."""
    view = service.set_rate_limits(scope.ctx, scope.principal, scope.org, body.model_dump())
    # The buckets keep their state: a tighter limit applies to the time already spent, so
    # setting one never hands out a fresh burst.
    return scope.ctx.done(_limits_out(request, scope, view))


def _lease_out(lease: object) -> LeaseOut:
    return LeaseOut.model_validate(lease)


@router.post(
    "/teams/{team}/runs/leases",
    name="run_lease.acquired",
    status_code=201,
    response_model=LeaseAcquiredOut,
    tags=["run leases"],
)
def acquire_lease(body: LeaseAcquireIn, scope: LeasesWrite) -> Response:
    """Hold one of the org's concurrent runs until released or until `ttl_seconds` pass without
    a heartbeat; 402 when every slot of the plan is held."""
    acquired = service.acquire_lease(
        scope.ctx, scope.principal, scope.team, run_id=body.run_id, ttl_seconds=body.ttl_seconds
    )
    out = LeaseAcquiredOut.model_validate(
        {
            **_lease_out(acquired.lease).model_dump(),
            "concurrent_runs": SlotsOut(limit=acquired.limit, in_use=acquired.in_use),
        }
    )
    return scope.ctx.done(out, status=201)


@router.get("/teams/{team}/runs/leases", response_model=PageOut[LeaseOut], tags=["run leases"])
def list_leases(scope: LeasesRead, page: PageDep) -> PageOut[LeaseOut]:
    """The team's leases that have not expired."""
    found = service.list_leases(scope.ctx.session, scope.team, now=scope.ctx.clock.now(), page=page)
    return PageOut(items=[_lease_out(x) for x in found.items], next_cursor=found.next_cursor)


@router.post(
    "/teams/{team}/runs/leases/{lease_id}/heartbeat",
    name="run_lease.heartbeat",
    response_model=LeaseOut,
    tags=["run leases"],
)
def heartbeat_lease(
    lease_id: str, scope: LeasesWrite, body: LeaseHeartbeatIn | None = None
) -> Response:
    """Extend the lease by its TTL (or `ttl_seconds`) from now; 410 once it has expired."""
    lease = service.heartbeat_lease(
        scope.ctx, scope.team, lease_id, ttl_seconds=body.ttl_seconds if body else None
    )
    return scope.ctx.done(_lease_out(lease))


@router.delete(
    "/teams/{team}/runs/leases/{lease_id}",
    name="run_lease.released",
    status_code=204,
    tags=["run leases"],
)
def release_lease(lease_id: str, scope: LeasesWrite) -> Response:
    """Give the slot back."""
    service.release_lease(scope.ctx, scope.principal, scope.team, lease_id)
    return scope.ctx.done(None, status=204)

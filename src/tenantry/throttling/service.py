"""Business rules of throttling: which rate limits an org has, and its concurrent-run leases.

Rate limits come from the org's effective plan (`metering.plans.effective_plan`: the catalog
plan with any custom plan applied). An org may set its own, tighter limits (to keep a runaway
script from spending its quota): each effective limit is the lower of the plan's and the org's.
Raising a limit above the plan is a plan matter (an upgrade or a custom plan), never a setting
the org can give itself.

A lease holds one of the org's `concurrent_runs` until it is released or its TTL passes without
a heartbeat. Acquires of one org queue behind a row lock (SQLite: the write lock), count the
leases whose TTL has not passed by the service's clock, and add one only while a slot is free:
N concurrent acquires for the last slot give exactly one lease.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Gone, NotFound, PaymentRequired
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.ratelimit import Rate
from tenantry.kit.stamps import stamped
from tenantry.metering.plans import effective_plan
from tenantry.plans.catalog import UPGRADE_PATH, Enforcement, Plan, Quota, RateLimits
from tenantry.tenancy.models import Organization, Team
from tenantry.throttling import repository
from tenantry.throttling.models import RateLimitOverride, RunLease

LIMIT_FIELDS = ("org_per_minute", "org_burst", "key_per_minute", "key_burst")


def plan_of(session: Session, org_id: str) -> Plan:
    """The org's effective plan: the one place throttling reads plans from."""
    return effective_plan(session, org_id)


def upgrade_hint(plan: Plan) -> dict[str, Any]:
    """What a 402 suggests: the next plan up, if there is one."""
    return {"plan": plan.key, "upgrade_to": UPGRADE_PATH.get(plan.key)}


# ---- rate limits ----


@dataclass(frozen=True)
class OrgRates:
    """The rates a request of the org is held to."""

    org: Rate
    key: Rate


@dataclass(frozen=True)
class RateLimitView:
    plan: Plan
    plan_limits: RateLimits  # the plan's, as this deployment applies them
    override: RateLimitOverride | None
    effective: RateLimits


def plan_limits(plan: Plan, *, multiplier: float) -> RateLimits:
    """The plan's rate limits times the deployment's `rate_limit_multiplier` (1 unless the
    operator, or a test suite, says otherwise), each at least 1."""
    if multiplier == 1:
        return plan.rate_limits
    scaled = {n: max(1, round(getattr(plan.rate_limits, n) * multiplier)) for n in LIMIT_FIELDS}
    return RateLimits(**scaled)


def apply_override(plan_limits: RateLimits, override: RateLimitOverride | None) -> RateLimits:
    """Each limit is the plan's, or the org's own where it set a lower one. A plan that went
    down after the override was set still caps it."""
    if override is None:
        return plan_limits
    values = {
        name: min(getattr(plan_limits, name), getattr(override, name) or getattr(plan_limits, name))
        for name in LIMIT_FIELDS
    }
    return RateLimits(**values)


def request_rates(session: Session, org_id: str, plan: Plan, *, multiplier: float) -> OrgRates:
    """The rates a request of the org is held to (the limiter's hot path). Its plan and its own
    limits both bump the org's version stamp when they change, so the process keeps the rates
    under it: no read while they stay as they are."""
    return stamped(
        session,
        org_id,
        f"rates*{multiplier}",
        lambda: _rates(plan, repository.own_limits(session, org_id=org_id), multiplier),
    )


def _rates(plan: Plan, own: repository.OwnLimits | None, multiplier: float) -> OrgRates:
    limits = plan_limits(plan, multiplier=multiplier)
    if own is not None:
        limits = RateLimits(*(min(p, o or p) for p, o in zip(astuple(limits), own, strict=True)))
    return rates_of(limits)


def rates_of(limits: RateLimits) -> OrgRates:
    return OrgRates(
        org=Rate(per_period=limits.org_per_minute, period=60.0, burst=limits.org_burst),
        key=Rate(per_period=limits.key_per_minute, period=60.0, burst=limits.key_burst),
    )


def rate_limit_view(session: Session, org_id: str, *, multiplier: float) -> RateLimitView:
    plan = plan_of(session, org_id)
    limits = plan_limits(plan, multiplier=multiplier)
    override = repository.override_of(session, org_id=org_id)
    return RateLimitView(plan, limits, override, apply_override(limits, override))


def set_rate_limits(
    ctx: Ctx, principal: Principal, org: Organization, values: dict[str, int | None]
) -> RateLimitView:
    """Replace the org's own limits (null: the plan's). All null removes the override."""
    plan = plan_of(ctx.session, org.id)
    limits = plan_limits(plan, multiplier=ctx.settings.rate_limit_multiplier)
    above = {
        name: value
        for name, value in values.items()
        if value is not None and value > getattr(limits, name)
    }
    if above:
        allowed = ", ".join(f"{n} = {getattr(limits, n)}" for n in sorted(above))
        raise PaymentRequired(
            f"The {plan.name} plan allows at most {allowed}; a higher limit needs another plan",
            code="above_plan_limit",
            extra={
                "limits": {n: getattr(limits, n) for n in above},
                **upgrade_hint(plan),
            },
        )
    override = repository.override_of(ctx.session, org_id=org.id)
    before = {n: getattr(override, n) for n in LIMIT_FIELDS} if override else None
    if all(values.get(n) is None for n in LIMIT_FIELDS):
        repository.delete_override(ctx.session, org_id=org.id)
        override = None
    else:
        if override is None:
            override = RateLimitOverride(org_id=org.id)
            ctx.session.add(override)
        for name in LIMIT_FIELDS:
            setattr(override, name, values.get(name))
        override.updated_at = ctx.clock.now()
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={"before": before, "after": {n: values.get(n) for n in LIMIT_FIELDS}},
    )
    return RateLimitView(plan, limits, override, apply_override(limits, override))


def day_window(now: datetime) -> tuple[str, datetime]:
    """The UTC day `now` falls in (its name) and the moment it ends."""
    day = now.astimezone(UTC).date()
    return day.isoformat(), datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


# ---- run leases ----


@dataclass(frozen=True)
class AcquiredLease:
    lease: RunLease
    limit: int | None
    in_use: int


def live_leases(session: Session, org_id: str, *, now: datetime) -> int:
    """How many of the org's `concurrent_runs` slots are held now: its unexpired leases (by the
    caller's clock), across its teams. Read-only: an expired lease is not counted, swept or not."""
    return repository.count_active_leases(session, org_id=org_id, now=now)


def _concurrent_runs(plan: Plan) -> Quota | None:
    return plan.quota("concurrent_runs")


def acquire_lease(
    ctx: Ctx, principal: Principal, team: Team, *, run_id: str | None, ttl_seconds: int
) -> AcquiredLease:
    session, now = ctx.session, ctx.clock.now()
    repository.lock_lease_gate(session, org_id=team.org_id)
    # An expired lease frees its slot now, whether or not the worker has swept it yet.
    repository.delete_expired_leases(session, org_id=team.org_id, now=now)
    if run_id is not None:
        held = repository.lease_of_run(session, org_id=team.org_id, team_id=team.id, run_id=run_id)
        if held is not None:
            raise Conflict(
                f"Run {run_id!r} already holds lease {held.id}",
                code="lease_held",
                extra={"lease_id": held.id},
            )
    quota = _concurrent_runs(plan_of(session, team.org_id))
    limit = None if quota is None or quota.limit is None else int(quota.limit)
    in_use = repository.count_active_leases(session, org_id=team.org_id, now=now)
    if limit is not None and in_use >= limit and quota and quota.enforcement is Enforcement.HARD:
        plan = plan_of(session, team.org_id)
        raise PaymentRequired(
            f"All {limit} concurrent runs of the {plan.name} plan are in use; release a lease, "
            "wait for one to expire, or upgrade",
            code="quota_exceeded",
            extra={"quota": "concurrent_runs", "limit": limit, "in_use": in_use}
            | upgrade_hint(plan),
        )
    lease = RunLease(
        id=new_id("lease"),
        org_id=team.org_id,
        team_id=team.id,
        run_id=run_id,
        holder_type=principal.actor_type,
        holder_id=principal.actor_id,
        ttl_seconds=ttl_seconds,
        acquired_at=now,
        heartbeat_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(lease)
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="run_lease",
        target_id=lease.id,
        summary={"run_id": run_id, "ttl_seconds": ttl_seconds, "in_use": in_use + 1},
    )
    return AcquiredLease(lease, limit, in_use + 1)


def _lease(session: Session, team: Team, lease_id: str) -> RunLease:
    lease = repository.lease_in_team(
        session, org_id=team.org_id, team_id=team.id, lease_id=lease_id
    )
    if lease is None:
        raise NotFound("Lease not found")
    return lease


def _live_lease(ctx: Ctx, team: Team, lease_id: str) -> RunLease:
    """The lease, unless it has expired by the clock: 410 `lease_expired` then (its slot may be
    taken already; the next acquire or the worker deletes it)."""
    lease = _lease(ctx.session, team, lease_id)
    if as_utc(lease.expires_at) <= ctx.clock.now():
        raise Gone(
            "The lease expired and its slot may be taken; acquire a new one",
            code="lease_expired",
        )
    return lease


def heartbeat_lease(ctx: Ctx, team: Team, lease_id: str, *, ttl_seconds: int | None) -> RunLease:
    """Extend the lease by its TTL (or a new one) from now. Not audited: a run heartbeats every
    few seconds, and the lease row's `heartbeat_at` is the record."""
    lease = _live_lease(ctx, team, lease_id)
    now = ctx.clock.now()
    if ttl_seconds is not None:
        lease.ttl_seconds = ttl_seconds
    lease.heartbeat_at = now
    lease.expires_at = now + timedelta(seconds=lease.ttl_seconds)
    ctx.session.flush()
    return lease


def release_lease(ctx: Ctx, principal: Principal, team: Team, lease_id: str) -> None:
    """Free the lease's slot. An expired lease answers 410 like a heartbeat and writes nothing:
    its slot was freed by the expiry, which is not an action of anyone's."""
    lease = _live_lease(ctx, team, lease_id)
    repository.delete_lease(ctx.session, org_id=team.org_id, lease_id=lease.id)
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="run_lease",
        target_id=lease.id,
        summary={"run_id": lease.run_id},
    )


def list_leases(
    session: Session, team: Team, *, now: datetime, page: PageRequest
) -> Page[RunLease]:
    return repository.active_leases_of_team(
        session, org_id=team.org_id, team_id=team.id, now=now, page=page
    )


def purge_expired_leases(session: Session, *, org_id: str, now: datetime) -> int:
    """Delete the org's expired leases under its gate, as an acquire would (the worker's job)."""
    repository.lock_lease_gate(session, org_id=org_id)
    return repository.delete_expired_leases(session, org_id=org_id, now=now)

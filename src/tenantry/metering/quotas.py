"""Quotas: the status of each of an org's plan quotas (used, reserved, the period), the sources
other domains register to count theirs, and claiming a slot of a count quota."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.errors import PaymentRequired
from tenantry.metering import repository
from tenantry.metering.periods import period_end, period_start
from tenantry.metering.plans import effective_plan
from tenantry.metering.repository import CounterKey, CounterState
from tenantry.plans.catalog import (
    PLANS,
    QUOTA_SHAPES,
    Enforcement,
    Period,
    Plan,
    Quota,
    QuotaKind,
    upgrade_hint,
)
from tenantry.tenancy import repository as tenancy_repository

# ---- quota status ----


@dataclass(frozen=True)
class QuotaStatus:
    quota: Quota
    used: Decimal | None  # None: not counted (a quota with no count source)
    reserved: Decimal
    period_start: datetime | None
    period_end: datetime | None
    team_used: Decimal | None = None
    overage_rate: Decimal | None = None

    @property
    def remaining(self) -> Decimal | None:
        if self.quota.limit is None or self.used is None:
            return None
        return max(Decimal(0), self.quota.limit - self.used - self.reserved)

    @property
    def overage(self) -> Decimal:
        if self.quota.limit is None or self.used is None:
            return Decimal(0)
        return max(Decimal(0), self.used - self.quota.limit)

    @property
    def overage_cost(self) -> Decimal | None:
        if self.overage_rate is None or self.quota.enforcement is not Enforcement.SOFT:
            return None
        return (self.overage * self.overage_rate).quantize(Decimal("0.000001"))


# Count sources: how many things of a count quota an org has (registered by their domains).
CountSource = Callable[[Session, str], int]
COUNT_SOURCES: dict[str, CountSource] = {
    "team_members": lambda session, org_id: tenancy_repository.count_org_members(
        session, org_id=org_id
    ),
}


def register_count_source(quota_key: str, source: CountSource) -> None:
    """Let `claim_count` and quota listings count `quota_key` (the model registry registers
    `models`, experiment tracking `experiments`)."""
    if quota_key not in QUOTA_SHAPES or QUOTA_SHAPES[quota_key][0] is not QuotaKind.COUNT:
        raise ValueError(f"{quota_key!r} is not a count quota")
    COUNT_SOURCES[quota_key] = source


# Live sources: how many slots of a concurrent quota an org holds now (registered by the domain
# that holds them: throttling registers `concurrent_runs`, its leases).
LiveSource = Callable[[Session, str, datetime], int]
LIVE_SOURCES: dict[str, LiveSource] = {}


def register_live_source(quota_key: str, source: LiveSource) -> None:
    if quota_key not in QUOTA_SHAPES or QUOTA_SHAPES[quota_key][0] is not QuotaKind.CONCURRENT:
        raise ValueError(f"{quota_key!r} is not a concurrent quota")
    LIVE_SOURCES[quota_key] = source


def quota_statuses(
    session: Session, org_id: str, *, now: datetime, team_id: str | None = None
) -> list[QuotaStatus]:
    plan = effective_plan(session, org_id)
    keys: dict[str, CounterKey] = {}
    for quota in plan.quotas.values():
        if quota.kind is QuotaKind.METERED and quota.meter is not None:
            keys[quota.key] = (quota.meter, quota.period.value, period_start(quota.period, now))
    states = repository.counters(session, org_id=org_id, keys=keys.values())
    out = []
    for quota in plan.quotas.values():
        if quota.kind is QuotaKind.CONCURRENT:
            out.append(_concurrent_status(session, org_id, quota, now=now))
            continue
        out.append(_status(session, org_id, plan, quota, keys.get(quota.key), states, team_id))
    return out


def _concurrent_status(
    session: Session, org_id: str, quota: Quota, *, now: datetime
) -> QuotaStatus:
    """Used = what the domain holding the quota's slots says is live now (concurrent runs:
    throttling's leases); unknown when no domain registered a source."""
    source = LIVE_SOURCES.get(quota.key)
    used = Decimal(source(session, org_id, now)) if source is not None else None
    return QuotaStatus(quota, used, Decimal(0), None, None)


def _status(
    session: Session,
    org_id: str,
    plan: Plan,
    quota: Quota,
    key: CounterKey | None,
    states: dict[CounterKey, CounterState],
    team_id: str | None,
) -> QuotaStatus:
    if key is None:
        source = COUNT_SOURCES.get(quota.key) if quota.kind is QuotaKind.COUNT else None
        used = Decimal(source(session, org_id)) if source is not None else None
        return QuotaStatus(quota, used, Decimal(0), None, None)
    state = states.get(key, CounterState(Decimal(0), Decimal(0)))
    start = key[2] if quota.period is not Period.NONE else None
    team_used = None
    if team_id is not None:
        team_used = repository.team_total(
            session, org_id=org_id, team_id=team_id, meter=key[0], since=start
        )
    return QuotaStatus(
        quota,
        state.used,
        state.reserved,
        start,
        period_end(quota.period, key[2]),
        team_used=team_used,
        overage_rate=plan.overage_rates.get(quota.meter or ""),
    )


# ---- count quotas ----


def quota_exceeded(
    plan: Plan, quota: Quota, *, used: Decimal | int, detail: str
) -> PaymentRequired:
    """A 402 naming the quota and the next plan up."""
    upgrade = upgrade_hint(plan.key)
    hint = f"; upgrade to {PLANS[upgrade].name} for more" if upgrade else ""
    return PaymentRequired(
        detail + hint,
        code="quota_exceeded",
        extra={
            "quota": quota.key,
            "limit": str(quota.limit),
            "used": str(used),
            "plan": plan.key,
            "upgrade_to": upgrade,
        },
    )


def claim_count(session: Session, org_id: str, quota_key: str, *, adding: int = 1) -> None:
    """Claim `adding` slots of a count quota before creating that many things, in the caller's
    transaction; 402 if the org's plan has no room.

    The claim locks the org's row for the quota, then counts what exists: concurrent creations
    wait for each other, and each counts the ones committed before it, so N creations racing
    for the last slot get one success. Counting (rather than keeping a tally) means anything
    removed, by any path (a cascade, an erasure), frees its slot with no release call.
    """
    plan = effective_plan(session, org_id)
    quota = plan.quota(quota_key)
    if quota is None or quota.limit is None:
        return
    source = COUNT_SOURCES.get(quota_key)
    if source is None:
        raise RuntimeError(f"no count source registered for the {quota_key} quota")
    repository.lock_quota(session, org_id=org_id, quota_key=quota_key)
    used = source(session, org_id)
    if used + adding > quota.limit:
        raise quota_exceeded(
            plan,
            quota,
            used=used,
            detail=f"The {plan.name} plan allows {quota.limit} {quota_key.replace('_', ' ')}",
        )


def authorize_usage_read(
    session: Session, principal: Principal, *, org_id: str, team_id: str | None
) -> None:
    authorize(session, principal, Permission.USAGE_READ, org_id=org_id, team_id=team_id)


# ---- level quotas (storage held) ----


def _level(
    session: Session, org_id: str, quota_key: str, now: datetime
) -> tuple[Plan, Quota, Decimal] | None:
    """The org's plan, its hard level quota `quota_key` and the level held now; None when the
    plan sets no hard limit on it (unlimited, or soft: over it is billed, not refused)."""
    plan = effective_plan(session, org_id)
    quota = plan.quota(quota_key)
    if quota is None or quota.limit is None or quota.meter is None:
        return None
    if quota.enforcement is not Enforcement.HARD:
        return None
    key = (quota.meter, quota.period.value, period_start(quota.period, now))
    state = repository.counters(session, org_id=org_id, keys=[key]).get(key)
    return plan, quota, state.used if state is not None else Decimal(0)


def level_room(session: Session, org_id: str, quota_key: str, *, now: datetime) -> Decimal | None:
    """How much more of a level quota (GB of `storage_gb`) the org may hold; None: no hard
    limit. For a check before a long transfer; `claim_level` decides under the lock."""
    found = _level(session, org_id, quota_key, now)
    if found is None:
        return None
    _, quota, used = found
    assert quota.limit is not None
    return max(Decimal(0), quota.limit - used)


def claim_level(
    session: Session, org_id: str, quota_key: str, *, adding: Decimal, now: datetime
) -> None:
    """Claim `adding` more of a level quota (storage) before recording it as usage in the
    caller's transaction; 402 if the plan's hard limit has no room. Claims lock the org's row
    for the quota, as `claim_count` does, so racing uploads for the last room get one."""
    if adding <= 0:
        return
    repository.lock_quota(session, org_id=org_id, quota_key=quota_key)
    found = _level(session, org_id, quota_key, now)
    if found is None:
        return
    plan, quota, used = found
    assert quota.limit is not None
    if used + adding > quota.limit:
        raise quota_exceeded(
            plan,
            quota,
            used=used,
            detail=f"The {plan.name} plan allows {quota.limit} GB of storage",
        )

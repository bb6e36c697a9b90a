"""Business rules of metering: effective plans, recording usage, quota alerts, count quotas.

Recording usage (`record_usage`, `record_usage_batch`) is the one write path for usage, used by
the ingestion endpoint, by admission's settle and by throttling (the API's own requests as
`api_calls`). In one transaction it inserts the new events (replays are skipped by id),
aggregates the batch in memory, and upserts the hourly rollups and the per-period counters the
batch touched: a batch of 1,000 events is a handful of statements, and no reader ever scans raw
events. Admission lives in `metering.admission`, summaries in `metering.summary`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import repository as identity_repository
from tenantry.kit.clock import SystemClock
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound, PaymentRequired, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.stamps import stamped
from tenantry.metering import repository
from tenantry.metering.meters import (
    MAX_EVENT_QUANTITY,
    QUANTITY_DECIMALS,
    Aggregation,
    Meter,
    meter_of,
    to_micros,
)
from tenantry.metering.models import QuotaAlert
from tenantry.metering.repository import CounterKey, CounterState
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import (
    DEFAULT_PLAN,
    PLANS,
    QUOTA_SHAPES,
    Enforcement,
    Period,
    Plan,
    Quota,
    QuotaKind,
    apply_overrides,
    upgrade_hint,
)
from tenantry.plans.models import PlanOverride
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy_scope
from tenantry.tenancy.models import Organization

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
ALERT_THRESHOLDS = (80, 100)
_MICRO = Decimal(1).scaleb(-QUANTITY_DECIMALS)


# ---- periods (UTC calendar days and months) ----


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


# ---- plans ----


# Built plans by what they are built from (the catalog's version, the catalog key and the
# override's stored JSON), so a plan is parsed once per distinct content. Bounded; cleared
# wholesale when full.
_BUILT_PLANS: dict[tuple[int, repository.PlanSource], Plan] = {}
_BUILT_PLANS_CAPACITY = 4096


def effective_plan(session: Session, org_id: str) -> Plan:
    """The org's plan from the catalog (`Organization.plan`) with its overrides applied. Read
    once per change: a change to either bumps the org's version stamp (`access.policy`), under
    which the process keeps the plan; so the limiter and admission get it without a read, and
    never stale."""
    return stamped(session, org_id, "plan", lambda: _load_plan(session, org_id))


def _load_plan(session: Session, org_id: str) -> Plan:
    source = repository.org_plan_source(session, org_id)
    if source is None:
        raise NotFound("Organization not found")
    # The catalog as operators edited it; read only here, when the org's plan is (re)built.
    catalog = live_catalog.current(session)
    plan = _BUILT_PLANS.get((catalog.version, source))
    if plan is None:
        plan = _build_plan(catalog, source)
        if len(_BUILT_PLANS) >= _BUILT_PLANS_CAPACITY:
            _BUILT_PLANS.clear()
        _BUILT_PLANS[(catalog.version, source)] = plan
    return plan


def _build_plan(catalog: live_catalog.Catalog, source: repository.PlanSource) -> Plan:
    key, name, quotas, rate_limits, overage_rates = source
    plan = catalog.get(key) or catalog.plans[DEFAULT_PLAN]
    if quotas is None:
        return plan
    overrides = {
        "name": name,
        "quotas": orjson.loads(quotas) or {},
        "rate_limits": orjson.loads(rate_limits or "{}") or {},
        "overage_rates": orjson.loads(overage_rates or "{}") or {},
    }
    return apply_overrides(plan, overrides)


def metered_quota(plan: Plan, meter_key: str) -> Quota | None:
    """The plan's metered quota on `meter_key`, if it has a limit."""
    for quota in plan.quotas.values():
        if quota.kind is QuotaKind.METERED and quota.meter == meter_key and quota.limit is not None:
            return quota
    return None


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse overrides the plan model cannot hold (422, naming the part)."""
    for key, change in (overrides.get("quotas") or {}).items():
        if key not in QUOTA_SHAPES:
            raise Unprocessable(f"Unknown quota {key!r}", code="unknown_quota")
        limit = change.get("limit")
        if limit is not None and Decimal(str(limit)) < 0:
            raise Unprocessable(f"The limit of {key} must not be negative", code="invalid_limit")
    for meter_key in overrides.get("overage_rates") or {}:
        if meter_of(meter_key) is None:
            raise Unprocessable(f"Unknown meter {meter_key!r}", code="unknown_meter")


def set_overrides(
    ctx: Ctx, principal: Principal, org: Organization, overrides: dict[str, Any]
) -> Plan:
    """Replace the org's overrides (its custom plan; none at all: back to the catalog plan),
    audited with what they were and what they are."""
    check_overrides(overrides)
    row = repository.plan_override(ctx.session, org.id)
    before = row.as_overrides() if row is not None else None
    if not any(overrides.values()):
        if row is not None:
            ctx.session.delete(row)
        after = None
    else:
        if row is None:
            row = PlanOverride(org_id=org.id)
            ctx.session.add(row)
        row.name = overrides.get("name")
        row.quotas = overrides.get("quotas") or {}
        row.rate_limits = overrides.get("rate_limits") or {}
        row.overage_rates = overrides.get("overage_rates") or {}
        row.updated_at = ctx.clock.now()
        after = row.as_overrides()
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={"before": before, "after": after},
    )
    return effective_plan(ctx.session, org.id)


def quota_alerts(session: Session, org_id: str) -> list[QuotaAlert]:
    return repository.alerts_of(session, org_id=org_id)


# ---- recording usage ----


NO_DIMENSIONS: Mapping[str, str] = MappingProxyType({})


class UsageEvent(NamedTuple):
    """One usage event to record (validated by the caller: a known meter, a quantity with at
    most six decimal places). A tuple: batches make a thousand at a time."""

    event_id: str
    meter: str
    quantity: Decimal
    timestamp: datetime
    team_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    dimensions: Mapping[str, str] = NO_DIMENSIONS


RollupKey = tuple[datetime, str, str, str, str, str]  # hour, meter, team, user, provider, model


@dataclass
class _Rollup:
    quantity: Decimal = Decimal(0)
    events: int = 0
    max_quantity: Decimal | None = None
    last_quantity: Decimal = Decimal(0)
    last_at: datetime = EPOCH
    weighted: Decimal = Decimal(0)

    def add(self, event: UsageEvent, contribution: Decimal, weighted: Decimal) -> None:
        self.quantity += contribution
        self.events += 1
        if self.max_quantity is None or event.quantity > self.max_quantity:
            self.max_quantity = event.quantity
        if event.timestamp >= self.last_at:
            self.last_quantity, self.last_at = event.quantity, event.timestamp
        self.weighted += weighted


def _weighted(event: UsageEvent, hour: datetime) -> Decimal:
    """change x seconds from the change to the end of its hour (to a millionth)."""
    seconds = Decimal((hour + timedelta(hours=1) - event.timestamp) / timedelta(microseconds=1))
    return (event.quantity * seconds / 1_000_000).quantize(_MICRO, rounding=ROUND_HALF_EVEN)


def _dimension(event: UsageEvent, name: str) -> str:
    return str(event.dimensions.get(name) or "")


def _fresh_unique(
    session: Session, org_id: str, events: Sequence[UsageEvent]
) -> set[tuple[str, datetime, str]]:
    """The (meter, period start, value) of unique-count events seen for the first time."""
    wanted: set[tuple[str, datetime, str]] = set()
    for event in events:
        meter = meter_of(event.meter)
        if meter is not None and meter.aggregation is Aggregation.UNIQUE_COUNT:
            wanted.add(_unique_value(meter, event))
    if not wanted:
        return set()
    return repository.new_unique_values(session, org_id=org_id, values=wanted)


def _unique_value(meter: Meter, event: UsageEvent) -> tuple[str, datetime, str]:
    value = _dimension(event, meter.unique_by or "") or f"event:{event.event_id}"
    return (meter.key, period_start(meter.reset, event.timestamp), value)


@dataclass
class _Tally:
    rollups: dict[RollupKey, _Rollup] = field(default_factory=dict)
    used: dict[CounterKey, Decimal] = field(default_factory=dict)


def _tally(session: Session, org_id: str, events: Sequence[UsageEvent]) -> _Tally:
    fresh = _fresh_unique(session, org_id, events)
    tally = _Tally()
    # Events of a batch mostly share a few hours: each hour's start and counter keys are worked
    # out once, keyed by the hour's number since the epoch (cheaper to find than to build).
    hours: dict[int, datetime] = {}
    counter_keys: dict[tuple[str, int], CounterKey] = {}
    zero, one = Decimal(0), Decimal(1)
    for event in events:
        meter = meter_of(event.meter)
        if meter is None:
            raise ValueError(f"unknown meter {event.meter!r}")
        if meter.aggregation is Aggregation.COUNT:
            contribution = one
        elif meter.aggregation is Aggregation.UNIQUE_COUNT:
            value = _unique_value(meter, event)
            contribution = one if value in fresh else zero
            fresh.discard(value)  # a value repeated within the batch counts once
        else:
            contribution = event.quantity
        number = (event.timestamp - EPOCH) // _HOUR
        hour = hours.get(number)
        if hour is None:
            hour = hours[number] = EPOCH + number * _HOUR
        dims = event.dimensions
        key: RollupKey = (
            hour,
            meter.key,
            event.team_id or "",
            event.user_id or "",
            str(dims.get("provider") or ""),
            str(dims.get("model") or ""),
        )
        weighted = (
            _weighted(event, hour) if meter.aggregation is Aggregation.TIME_WEIGHTED_SUM else zero
        )
        rollup = tally.rollups.get(key)
        if rollup is None:
            rollup = tally.rollups[key] = _Rollup()
        rollup.add(event, contribution, weighted)
        ckey = counter_keys.get((meter.key, number))
        if ckey is None:
            ckey = counter_keys[(meter.key, number)] = counter_key(meter, hour)
        tally.used[ckey] = tally.used.get(ckey, zero) + contribution
    return tally


def _event_values(org_id: str, event: UsageEvent) -> repository.EventValues:
    dims = event.dimensions
    return (
        org_id, event.event_id, event.meter, event.quantity, event.timestamp, event.team_id,
        event.user_id, event.api_key_id, dims.get("provider"), dims.get("model"),
        dims if type(dims) is dict else dict(dims),
    )  # fmt: skip


def _event_row(org_id: str, event: UsageEvent) -> dict[str, Any]:
    """The same values as a row dict (what a plain insert takes)."""
    return dict(zip(repository.EVENT_COLUMNS, _event_values(org_id, event), strict=True))


def _rollup_rows(org_id: str, rollups: dict[RollupKey, _Rollup]) -> list[dict[str, Any]]:
    rows = []
    for (hour, meter, team, user, provider, model), r in sorted(rollups.items()):
        rows.append(
            {
                "org_id": org_id,
                "hour": hour,
                "meter": meter,
                "team_id": team,
                "user_id": user,
                "provider": provider,
                "model": model,
                "quantity": r.quantity,
                "events": r.events,
                "max_quantity": r.max_quantity or Decimal(0),
                "last_quantity": r.last_quantity,
                "last_at": r.last_at,
                "weighted": r.weighted,
            }
        )
    return rows


@dataclass(frozen=True)
class Recorded:
    inserted: set[str]  # ids of the events recorded now (the others were replays)
    over_limit: list[str]  # metered quotas past their limit after this batch


def record_events(
    session: Session,
    org_id: str,
    events: Sequence[UsageEvent],
    *,
    now: datetime | None = None,
    release: Mapping[CounterKey, Decimal] | None = None,
) -> Recorded:
    """Record events idempotently in the caller's transaction.

    `release` lowers counters' `reserved` in the same statements that raise `used` (settle), so
    every counter row is locked once, in key order, and concurrent writers cannot deadlock.
    """
    first: dict[str, UsageEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    inserted = repository.insert_new_events(
        session, [_event_values(org_id, e) for e in first.values()]
    )
    new = [e for e in first.values() if e.event_id in inserted]
    tally = _tally(session, org_id, new)
    repository.upsert_rollups(session, _rollup_rows(org_id, tally.rollups))
    repository.change_counters(
        session, org_id=org_id, used=tally.used, reserved_release=release or {}
    )
    over_limit: list[str] = []
    if tally.used:
        over_limit = raise_alerts(
            session, org_id, tally.used.keys(), now=now or SystemClock().now()
        )
    return Recorded(inserted, over_limit)


def record_usage_batch(session: Session, org_id: str, events: Sequence[UsageEvent]) -> int:
    """Record events idempotently in the caller's transaction; how many were new."""
    return len(record_events(session, org_id, events).inserted)


def record_usage(
    session: Session,
    *,
    org_id: str,
    meter: str,
    quantity: Decimal,
    timestamp: datetime,
    event_id: str,
    team_id: str | None = None,
    user_id: str | None = None,
    api_key_id: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> bool:
    """Record one usage event idempotently; False if `event_id` was already recorded."""
    event = UsageEvent(
        event_id=event_id,
        meter=meter,
        quantity=quantity,
        timestamp=timestamp,
        team_id=team_id,
        user_id=user_id,
        api_key_id=api_key_id,
        dimensions=dict(dimensions or {}),
    )
    return record_usage_batch(session, org_id, [event]) == 1


# ---- quota alerts ----


def raise_alerts(
    session: Session, org_id: str, touched: Iterable[CounterKey], *, now: datetime
) -> list[str]:
    """Raise the 80% and 100% alerts of metered quotas whose counters the caller just moved,
    once per quota, period and threshold (an alert row and an audit event each); returns the
    quotas now past their limit."""
    plan = effective_plan(session, org_id)
    watched: dict[CounterKey, Quota] = {}
    for key in touched:
        quota = metered_quota(plan, key[0])
        if quota is not None and quota.period.value == key[1]:
            watched[key] = quota
    if not watched:
        return []
    states = repository.counters(session, org_id=org_id, keys=watched)
    rows = []
    over: list[str] = []
    for key, quota in sorted(watched.items()):
        state = states.get(key)
        assert quota.limit is not None
        if state is not None and state.used > quota.limit:
            over.append(quota.key)
        for threshold in ALERT_THRESHOLDS:
            if state is not None and state.used * 100 >= quota.limit * threshold:
                rows.append(
                    {
                        "id": new_id("qal"),
                        "org_id": org_id,
                        "quota_key": quota.key,
                        "period_start": key[2],
                        "threshold": threshold,
                        "used": state.used,
                        "limit": quota.limit,
                        "enforcement": quota.enforcement.value,
                        "created_at": now,
                    }
                )
    raised = set(repository.insert_alerts(session, rows))
    for row in rows:
        if row["id"] in raised:
            _audit_alert(session, row, now=now)
    return over


def _audit_alert(session: Session, row: dict[str, Any], *, now: datetime) -> None:
    audit.append(
        session,
        now=now,
        org_id=row["org_id"],
        actor_type="system",
        actor_id=None,
        action="quota.alert_raised",
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="quota",
        target_id=row["quota_key"],
        summary={
            "alert_id": row["id"],
            "threshold": row["threshold"],
            "used": str(row["used"]),
            "limit": str(row["limit"]),
            "enforcement": row["enforcement"],
            "period_start": row["period_start"].isoformat(),
        },
    )


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


# ---- ingestion (the HTTP batch endpoint) ----

MAX_EVENT_AGE = timedelta(days=35)
MAX_EVENT_LEAD = timedelta(minutes=5)


class IncomingEvent(NamedTuple):
    """An event as a caller sent it (ids not yet checked against the org)."""

    event_id: str
    meter: str
    quantity: Decimal
    timestamp: datetime
    team: str | None
    user: str | None
    api_key: str | None
    dimensions: Mapping[str, str]


class EventResult(NamedTuple):
    event_id: str
    status: str  # "accepted" | "duplicate" | "rejected"
    code: str | None = None
    detail: str | None = None


_PENDING = EventResult("", "accepted")


@dataclass(frozen=True)
class Ingested:
    org_id: str
    results: list[EventResult]
    over_limit: list[str]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def _ingest_org(
    session: Session, principal: Principal, org_ref: str | None, events: Sequence[IncomingEvent]
) -> str:
    """Whose usage this is: an API key's org; else the `org` named; else the org of the teams
    the events name (one org). Anything outside the principal's tenants answers 404."""
    if org_ref is not None:
        return tenancy_scope.resolve_org(session, principal, org_ref).id
    if principal.kind == "api_key" and principal.key_org_id is not None:
        return principal.key_org_id
    orgs = {
        tenancy_scope.resolve_team_ref(session, principal, t).org_id
        for t in {e.team for e in events}
        if t
    }
    if len(orgs) != 1:
        raise Unprocessable(
            "Say whose usage this is: send `org`, or name teams of one organization",
            code="org_required",
        )
    return orgs.pop()


def _accepted(
    event: IncomingEvent, *, oldest: datetime, latest: datetime, key_id: str | None
) -> UsageEvent | tuple[str, str]:
    """The event to record (its time in UTC, the calling key's id by default), or why not."""
    meter = meter_of(event.meter)
    if meter is None:
        return "unknown_meter", f"No meter is called {event.meter!r}"
    quantity = event.quantity
    if not quantity.is_finite() or abs(quantity) > MAX_EVENT_QUANTITY:
        return "invalid_quantity", f"quantity must be a number of at most {MAX_EVENT_QUANTITY}"
    if quantity < 0 and not meter.signed:
        return "invalid_quantity", f"{meter.key} quantities must not be negative"
    try:
        to_micros(quantity)
    except ValueError:
        return "invalid_quantity", f"quantity has more than {QUANTITY_DECIMALS} decimal places"
    at = event.timestamp
    if at.tzinfo is None:
        return "invalid_timestamp", "timestamp needs a timezone (e.g. Z)"
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)  # once: comparing times of two zones costs more than this
    if at < oldest:
        return "too_old", "Events older than 35 days are not accepted"
    if at > latest:
        return "in_future", "Events more than 5 minutes ahead are not accepted"
    if meter.unique_by and not event.dimensions.get(meter.unique_by):
        return "missing_dimension", f"{meter.key} events need the {meter.unique_by} dimension"
    return UsageEvent(
        event.event_id, event.meter, quantity, at, event.team, event.user,
        event.api_key or key_id, event.dimensions,
    )  # fmt: skip


def _unknown_refs(
    session: Session, principal: Principal, org_id: str, events: Sequence[IncomingEvent]
) -> tuple[set[str], set[str], set[str]]:
    """The teams, users and API keys named that are not the org's (each looked up once)."""
    teams: set[str] = set()
    users: set[str] = set()
    keys: set[str] = set()
    for event in events:  # one pass: a batch has a thousand events and names a few ids
        if event.team:
            teams.add(event.team)
        if event.user:
            users.add(event.user)
        if event.api_key:
            keys.add(event.api_key)
    known_teams = tenancy_repository.teams_in_org(session, org_id=org_id, team_ids=teams)
    if principal.kind == "api_key" and principal.key_team_id is not None:
        known_teams &= {principal.key_team_id}  # a team-bound key speaks for its team only
    known_users = tenancy_repository.members_in_org(session, org_id=org_id, user_ids=users)
    known_keys = identity_repository.api_keys_in_org(session, org_id=org_id, key_ids=keys)
    return teams - known_teams, users - known_users, keys - known_keys


def ingest(
    ctx: Ctx, principal: Principal, *, org_ref: str | None, events: Sequence[IncomingEvent]
) -> Ingested:
    """Record a batch: each event is accepted, a duplicate (its id was recorded before), or
    rejected with a reason; the rest of the batch goes in regardless."""
    session, now = ctx.session, ctx.clock.now()
    org_id = _ingest_org(session, principal, org_ref, events)
    key_team = principal.key_team_id if principal.kind == "api_key" else None
    events = [e if e.team or key_team is None else e._replace(team=key_team) for e in events]
    bad_teams, bad_users, bad_keys = _unknown_refs(session, principal, org_id, events)
    # One check per team named (and one at org level for events naming none): a 403 refuses
    # the whole batch, as for any request the principal may not make.
    for team_id in sorted({e.team for e in events if e.team and e.team not in bad_teams}):
        authorize(session, principal, Permission.USAGE_WRITE, org_id=org_id, team_id=team_id)
    if any(not e.team for e in events):
        authorize(session, principal, Permission.USAGE_WRITE, org_id=org_id)
    results: list[EventResult] = []
    accepted: list[tuple[int, UsageEvent]] = []  # (index in the batch, the event)
    seen: set[str] = set()
    oldest, latest = now - MAX_EVENT_AGE, now + MAX_EVENT_LEAD
    key_id = principal.api_key_id if principal.kind == "api_key" else None
    any_bad = bool(bad_teams or bad_users or bad_keys)
    for i, event in enumerate(events):
        verdict = _accepted(event, oldest=oldest, latest=latest, key_id=key_id)
        if not isinstance(verdict, UsageEvent):
            results.append(EventResult(event.event_id, "rejected", *verdict))
        elif any_bad and (problem := _ref_problem(event, bad_teams, bad_users, bad_keys)):
            results.append(EventResult(event.event_id, "rejected", *problem))
        elif event.event_id in seen:
            results.append(EventResult(event.event_id, "duplicate"))
        else:
            seen.add(event.event_id)
            accepted.append((i, verdict))
            results.append(_PENDING)  # the insert tells whether it was recorded before
    recorded = record_events(session, org_id, [e for _, e in accepted], now=now)
    inserted = recorded.inserted
    for i, usage_event in accepted:
        event_id = usage_event.event_id
        results[i] = EventResult(event_id, "accepted" if event_id in inserted else "duplicate")
    return Ingested(org_id, results, recorded.over_limit)


def _ref_problem(
    event: IncomingEvent, bad_teams: set[str], bad_users: set[str], bad_keys: set[str]
) -> tuple[str, str] | None:
    # Another org's team answers exactly like a team that does not exist.
    if event.team in bad_teams:
        return "unknown_team", "No such team in this organization"
    if event.user in bad_users:
        return "unknown_user", "No such member in this organization"
    if event.api_key in bad_keys:
        return "unknown_api_key", "No such API key in this organization"
    return None

"""Subscriptions: the org's plan and cycle, their changes with proration, cancellation, and the
close of each period.

- Subscribing starts a period at the current hour (so periods and the hourly usage rollups
  line up) and issues its first invoice: the base fee, in advance. A period's invoice at its end
  carries the usage beyond the plan in that period, the pending lines (prorations, credits) and
  the next period's base fee. `(org, period_key)` is unique: a period is invoiced once.
- A plan change takes effect at once (quotas and rate limits read `Organization.plan`) and
  leaves proration lines pending for the next invoice; a change of cycle starts a new period
  and invoices it now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import rating, repository
from tenantry.billing.accounts import account_of, customer_of
from tenantry.billing.invoices import as_line, issue, pending_line
from tenantry.billing.models import Invoice, InvoiceLine, Subscription, SubscriptionStatus
from tenantry.billing.payment_methods import default_method
from tenantry.billing.providers import PaymentProvider, SubscriptionMirror
from tenantry.billing.rating import BillingPeriod, Cycle, Line
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.metering.periods import hour_of
from tenantry.metering.plans import effective_plan
from tenantry.metering.summary import summarize
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import DEFAULT_PLAN, Plan
from tenantry.tenancy.models import Organization

LIVE = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)

MAX_TRIAL_DAYS = 90

# ---- plans ----


def catalog_plan(session: Session, key: str) -> Plan:
    """A plan of the catalog as the deployment's operators edited it (422 `invalid_plan`)."""
    return live_catalog.current(session).check(key)


def set_org_plan(session: Session, org: Organization, plan_key: str, *, now: datetime) -> None:
    """The one place billing moves an org's plan: quotas and rate limits follow it at once."""
    org.plan = plan_key
    org.updated_at = now
    session.flush()


def has_live_subscription(session: Session, org_id: str) -> bool:
    found = repository.subscription(session, org_id=org_id)
    return found is not None and found.status in LIVE


# ---- subscriptions ----


@dataclass(frozen=True)
class SubscriptionChange:
    subscription: Subscription
    invoice: Invoice | None = None
    prorations: list[InvoiceLine] = field(default_factory=list)
    change: str = "created"  # created | changed | resumed | unchanged


def subscription_of(session: Session, org_id: str) -> Subscription | None:
    return repository.subscription(session, org_id=org_id)


def period_of(sub: Subscription) -> BillingPeriod:
    return BillingPeriod(
        as_utc(sub.current_period_start), as_utc(sub.current_period_end), Cycle(sub.cycle).months
    )


def _mirror(sub: Subscription, customer_id: str) -> SubscriptionMirror:
    return SubscriptionMirror(
        org_id=sub.org_id,
        customer_id=customer_id,
        plan=sub.plan,
        cycle=sub.cycle,
        cancel_at_period_end=sub.cancel_at_period_end,
        provider_subscription_id=sub.provider_subscription_id,
    )


def subscribe(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    plan_key: str,
    cycle: Cycle,
    trial_days: int | None,
    provider: PaymentProvider,
) -> SubscriptionChange:
    """Put the org on `plan_key` and `cycle`: a new subscription, a plan or cycle change, or
    taking back a cancellation at period end."""
    plan = catalog_plan(ctx.session, plan_key)
    if plan.key == DEFAULT_PLAN:
        raise Unprocessable(
            "The Free plan needs no subscription: cancel the subscription to go back to Free",
            code="invalid_plan",
        )
    if trial_days is not None and not 1 <= trial_days <= MAX_TRIAL_DAYS:
        raise Unprocessable(f"trial_days is 1 to {MAX_TRIAL_DAYS}", code="invalid_trial")
    session, now = ctx.session, ctx.clock.now()
    sub = repository.subscription(session, org_id=org.id, lock=True)
    customer = customer_of(ctx, org, provider)
    if sub is not None and sub.status in LIVE:
        if trial_days is not None:
            raise Conflict("A trial can only start a new subscription", code="invalid_trial")
        result = _change(ctx, org, sub, plan=plan, cycle=cycle, now=now)
    else:
        result = _start(
            ctx, org, sub, plan=plan, cycle=cycle, trial_days=trial_days, now=now, via=provider.name
        )
    sub = result.subscription
    sub.provider = provider.name
    if result.change != "unchanged":
        key = f"{org.id}:subscription:{sub.plan}-{sub.cycle}-{as_utc(sub.updated_at).isoformat()}"
        sub.provider_subscription_id = (
            provider.sync_subscription(_mirror(sub, customer), idempotency_key=key)
            or sub.provider_subscription_id
        )
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="subscription",
        target_id=sub.id,
        summary={
            "change": result.change,
            "plan": sub.plan,
            "cycle": sub.cycle,
            "status": sub.status,
            "invoice": result.invoice.id if result.invoice else None,
        },
    )
    return result


def start_trial(ctx: Ctx, org: Organization, plan_key: str, *, via: str) -> Subscription:
    """A paid plan asked for when the org was made (onboarding, a new org): a monthly trial of
    it for `billing_trial_days`. It becomes a paying subscription at its end if the org has a
    payment method by then, and falls back to Free if not (`close_period`). Its audit record is
    the org's creation, which names the trial."""
    plan = catalog_plan(ctx.session, plan_key)
    if plan.key == DEFAULT_PLAN:
        raise Unprocessable("The Free plan has no trial", code="invalid_plan")
    days = ctx.settings.billing_trial_days
    started = _start(
        ctx,
        org,
        None,
        plan=plan,
        cycle=Cycle.MONTHLY,
        trial_days=days,
        now=ctx.clock.now(),
        via=via,
    )
    return started.subscription


def _start(
    ctx: Ctx,
    org: Organization,
    sub: Subscription | None,
    *,
    plan: Plan,
    cycle: Cycle,
    trial_days: int | None,
    now: datetime,
    via: str,
) -> SubscriptionChange:
    start = hour_of(now)
    if trial_days is not None:
        anchor = start + timedelta(days=trial_days)
        period = BillingPeriod(start, anchor, cycle.months)
    else:
        anchor = start
        period = BillingPeriod.starting(start, cycle)
    if sub is None:
        sub = Subscription(id=new_id("sub"), org_id=org.id, created_at=now, provider=via)
        ctx.session.add(sub)
    sub.plan, sub.cycle = plan.key, cycle.value
    sub.status = (
        SubscriptionStatus.TRIALING if trial_days is not None else SubscriptionStatus.ACTIVE
    )
    sub.anchor = anchor
    sub.current_period_start, sub.current_period_end = period.start, period.end
    sub.cancel_at_period_end = False
    sub.canceled_at = None
    sub.trial_end = anchor if trial_days is not None else None
    sub.updated_at = now
    ctx.session.flush()
    set_org_plan(ctx.session, org, plan.key, now=now)
    invoice = None
    if trial_days is None:
        base = rating.base_fee(plan, cycle, period)
        invoice = issue(
            ctx.session,
            org_id=org.id,
            kind="subscription",
            lines=[base] if base else [],
            now=now,
            due_days=ctx.settings.billing_due_days,
            period=(period.start, period.end),
            period_key=f"{sub.id}:open:{now.isoformat()}",
        )
    return SubscriptionChange(sub, invoice, change="created")


def _change(
    ctx: Ctx, org: Organization, sub: Subscription, *, plan: Plan, cycle: Cycle, now: datetime
) -> SubscriptionChange:
    old_plan, old_cycle = catalog_plan(ctx.session, sub.plan), Cycle(sub.cycle)
    if plan.key == old_plan.key and cycle is old_cycle:
        if sub.cancel_at_period_end:
            sub.cancel_at_period_end = False
            sub.updated_at = now
            return SubscriptionChange(sub, change="resumed")
        return SubscriptionChange(sub, change="unchanged")
    period = period_of(sub)
    sub.cancel_at_period_end = False
    sub.updated_at = now
    if sub.status == SubscriptionStatus.TRIALING:
        # Nothing was paid for the trial: the new plan (and cycle) simply apply from its end.
        sub.plan, sub.cycle = plan.key, cycle.value
        set_org_plan(ctx.session, org, plan.key, now=now)
        return SubscriptionChange(sub, change="changed")
    if cycle is old_cycle:
        lines = rating.proration(
            old=old_plan, old_cycle=old_cycle, new=plan, new_cycle=cycle, period=period, at=now
        )
        pending = [pending_line(ctx.session, org.id, x, now=now) for x in lines]
        sub.plan = plan.key
        set_org_plan(ctx.session, org, plan.key, now=now)
        return SubscriptionChange(sub, prorations=pending, change="changed")
    # A new cycle is a new period from this hour: credit the unused rest of the old one, bill
    # the old period's usage so far, and invoice the new period now.
    at = hour_of(now)
    credit = rating.proration(
        old=old_plan, old_cycle=old_cycle, new=plan, new_cycle=cycle, period=period, at=at
    )
    for x in credit:
        pending_line(ctx.session, org.id, x, now=now)
    used = BillingPeriod(period.start, at, period.months) if at > period.start else None
    lines = (
        rating.overage(old_plan, period_usage(ctx.session, org.id, used, now=now), used)
        if used
        else []
    )
    new_period = BillingPeriod.starting(at, cycle)
    base = rating.base_fee(plan, cycle, new_period)
    invoice = issue(
        ctx.session,
        org_id=org.id,
        kind="subscription",
        lines=lines + ([base] if base else []),
        now=now,
        due_days=ctx.settings.billing_due_days,
        period=(period.start, at),
        period_key=f"{sub.id}:{period.start.isoformat()}",
        with_pending=True,
    )
    sub.plan, sub.cycle = plan.key, cycle.value
    sub.anchor = at
    sub.current_period_start, sub.current_period_end = new_period.start, new_period.end
    set_org_plan(ctx.session, org, plan.key, now=now)
    return SubscriptionChange(sub, invoice, change="changed")


def cancel(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    immediately: bool,
    provider: PaymentProvider,
) -> SubscriptionChange:
    """Cancel at the period's end (the default: the plan stays until then), or now: the org
    drops to Free at once and the usage of the period so far is invoiced; the unused rest of
    a base fee paid in advance is not refunded."""
    sub = repository.subscription(ctx.session, org_id=org.id, lock=True)
    if sub is None or sub.status not in LIVE:
        raise NotFound("The organization has no subscription to cancel", code="no_subscription")
    customer = customer_of(ctx, org, provider)
    invoice = None
    if immediately:
        invoice = end_subscription(
            ctx.session, org, sub, now=ctx.clock.now(), due_days=ctx.settings.billing_due_days
        )
        provider.cancel_subscription(
            _mirror(sub, customer), idempotency_key=f"{org.id}:subscription:cancel-{sub.id}"
        )
    else:
        sub.cancel_at_period_end = True
        sub.updated_at = ctx.clock.now()
        ends = as_utc(sub.current_period_end).isoformat()
        key = f"{org.id}:subscription:cancel-at-period-end-{ends}"
        provider.sync_subscription(_mirror(sub, customer), idempotency_key=key)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="subscription",
        target_id=sub.id,
        summary={
            "immediately": immediately,
            "status": sub.status,
            "ends_at": as_utc(sub.current_period_end).isoformat(),
            "invoice": invoice.id if invoice else None,
        },
    )
    return SubscriptionChange(sub, invoice, change="canceled")


def end_subscription(
    session: Session, org: Organization, sub: Subscription, *, now: datetime, due_days: int
) -> Invoice | None:
    """Cancel now: Free from this moment, and a last invoice for the period's usage so far
    (with any pending lines). Used by `cancel` and by the provider's deletion webhook."""
    period = period_of(sub)
    at = min(hour_of(now), period.end)
    invoice = None
    if sub.status != SubscriptionStatus.TRIALING and at > period.start:
        used = BillingPeriod(period.start, at, period.months)
        plan = effective_plan(session, org.id)
        lines = rating.overage(plan, period_usage(session, org.id, used, now=now), used)
        invoice = issue(
            session,
            org_id=org.id,
            kind="subscription",
            lines=lines,
            now=now,
            due_days=due_days,
            period=(period.start, at),
            period_key=f"{sub.id}:{period.start.isoformat()}",
            with_pending=True,
        )
    sub.status = SubscriptionStatus.CANCELED
    sub.canceled_at = now
    sub.cancel_at_period_end = False
    sub.current_period_end = max(at, period.start)
    sub.updated_at = now
    set_org_plan(session, org, DEFAULT_PLAN, now=now)
    return invoice


def close_period(
    session: Session, org: Organization, *, now: datetime, delay: timedelta, due_days: int
) -> tuple[Subscription, Invoice | None] | None:
    """The worker's step for one subscription whose period ended by `now - delay`: invoice the
    period's usage, the pending lines and the next period's base fee, then move to the next
    period (or end a subscription canceled at period end). None when nothing was due (another
    worker did it, or the period has not ended)."""
    sub = repository.subscription(session, org_id=org.id, lock=True)
    if sub is None or sub.status not in LIVE:
        return None
    period = period_of(sub)
    if period.end > now - delay:
        return None
    if sub.status == SubscriptionStatus.TRIALING and default_method(session, org.id) is None:
        # A trial that ends unpaid: nothing is owed (a trial's usage is free), the org is on
        # Free from the trial's end.
        sub.status = SubscriptionStatus.CANCELED
        sub.canceled_at, sub.cancel_at_period_end = period.end, False
        sub.updated_at = now
        set_org_plan(session, org, DEFAULT_PLAN, now=now)
        session.flush()
        return sub, None
    plan = effective_plan(session, org.id)
    cycle = Cycle(sub.cycle)
    lines: list[Line] = []
    if sub.status != SubscriptionStatus.TRIALING:  # a trial's usage is free
        lines = rating.overage(plan, period_usage(session, org.id, period, now=now), period)
    ending = sub.cancel_at_period_end
    next_period = BillingPeriod.starting(period.end, cycle, anchor=as_utc(sub.anchor))
    if not ending:
        base = rating.base_fee(catalog_plan(session, sub.plan), cycle, next_period)
        if base is not None:
            lines.append(base)
    key = f"{sub.id}:{period.start.isoformat()}"
    invoice = None
    if repository.invoice_by_period(session, org_id=org.id, period_key=key) is None:
        invoice = issue(
            session,
            org_id=org.id,
            kind="subscription",
            lines=lines,
            now=now,
            due_days=due_days,
            period=(period.start, period.end),
            period_key=key,
            with_pending=True,
        )
    if ending:
        sub.status = SubscriptionStatus.CANCELED
        sub.canceled_at = period.end
        sub.cancel_at_period_end = False
        set_org_plan(session, org, DEFAULT_PLAN, now=now)
    else:
        if sub.status == SubscriptionStatus.TRIALING:
            sub.status = SubscriptionStatus.ACTIVE
        sub.current_period_start, sub.current_period_end = next_period.start, next_period.end
    sub.updated_at = now
    session.flush()
    return sub, invoice


def period_usage(
    session: Session, org_id: str, period: BillingPeriod, *, now: datetime
) -> dict[str, Decimal]:
    """The org's usage in `period`, from the hourly rollups (never raw events)."""
    found = summarize(
        session,
        org_id=org_id,
        team_id=None,
        since=period.start,
        until=period.end,
        group_by="meter",
        granularity=None,
        now=now,
    )
    return found.totals()


# ---- the next invoice, previewed ----


@dataclass(frozen=True)
class Preview:
    org_id: str
    period: BillingPeriod | None
    lines: list[Line]
    totals: rating.Totals
    currency: str
    tax_rate: Decimal


def preview(session: Session, org_id: str, *, now: datetime) -> Preview:
    """What the next period invoice would say if the period ended now: the usage beyond the plan
    so far, the pending lines, and the next period's base fee. Nothing is written."""
    account = account_of(session, org_id)
    sub = repository.subscription(session, org_id=org_id)
    lines: list[Line] = []
    period = None
    if sub is not None and sub.status in LIVE:
        period = period_of(sub)
        plan = effective_plan(session, org_id)
        if sub.status != SubscriptionStatus.TRIALING:
            lines += rating.overage(plan, period_usage(session, org_id, period, now=now), period)
        if not sub.cancel_at_period_end:
            cycle = Cycle(sub.cycle)
            nxt = BillingPeriod.starting(period.end, cycle, anchor=as_utc(sub.anchor))
            base = rating.base_fee(catalog_plan(session, sub.plan), cycle, nxt)
            if base:
                lines.append(base)
    lines += [
        as_line(p, account.currency) for p in repository.pending_lines(session, org_id=org_id)
    ]
    found = rating.totals(lines, tax_rate=account.tax_rate, currency=account.currency)
    return Preview(org_id, period, lines, found, account.currency, account.tax_rate)


# ---- changes the payment provider reports (billing/webhooks.py) ----


def change_plan_from_provider(
    ctx: Ctx, org: Organization, sub: Subscription, *, plan_key: str, cycle: Cycle
) -> SubscriptionChange:
    """A plan or cycle change made at the provider (its customer portal), applied by the same
    rules as one made here: prorations pending, a new cycle invoiced now. A webhook has no
    principal: the caller writes its system audit event."""
    plan = catalog_plan(ctx.session, plan_key)
    return _change(ctx, org, sub, plan=plan, cycle=cycle, now=ctx.clock.now())

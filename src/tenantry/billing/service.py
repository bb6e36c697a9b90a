"""Business rules of billing: subscriptions, plan changes with proration, invoices and their
states, credit notes, payment methods and payments.

The money model is in docs/billing.md; the arithmetic is in `rating` (pure). Here:

- Subscribing starts a period at the current hour (so periods and the hourly usage rollups
  line up) and issues its first invoice: the base fee, in advance. A period's invoice at its end
  carries the usage beyond the plan in that period, the pending lines (prorations, credits) and
  the next period's base fee. `(org, period_key)` is unique: a period is invoiced once.
- A plan change takes effect at once (quotas and rate limits read `Organization.plan`) and
  leaves proration lines pending for the next invoice; a change of cycle starts a new period
  and invoices it now.
- An invoice is a draft until finalized; finalizing gives it its number and freezes it. After
  that only its status moves: open -> paid | void | uncollectible (uncollectible -> paid).
  Corrections are credit notes.
- A payment is two steps around the provider call: the attempt is committed as `pending` with
  its idempotency key before the call, and its outcome after. An attempt whose outcome is
  unknown is asked again under the same key, never charged anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import rating, repository
from tenantry.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
    PaymentMethod,
    Subscription,
)
from tenantry.billing.providers import (
    CardDetails,
    Charge,
    ChargeResult,
    ChargeStatus,
    PaymentProvider,
    SubscriptionMirror,
)
from tenantry.billing.rating import BillingPeriod, Cycle, Line, LineKind
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.money import from_minor, to_minor
from tenantry.kit.pagination import Page, PageRequest
from tenantry.metering.periods import hour_of
from tenantry.metering.plans import effective_plan
from tenantry.metering.summary import summarize
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import DEFAULT_PLAN, Plan
from tenantry.tenancy.models import Organization

LIVE = ("trialing", "active", "past_due")
FINAL_STATUSES = ("paid", "void", "uncollectible")
MAX_TRIAL_DAYS = 90


# ---- accounts ----


def account_of(session: Session, org_id: str) -> BillingAccount:
    """The org's billing account; an org that never had one reads as the defaults."""
    found = repository.account(session, org_id=org_id)
    if found is not None:
        return found
    return BillingAccount(org_id=org_id, tax_rate=Decimal(0), currency="usd", provider="local")


def _account_for_write(ctx: Ctx, org_id: str, provider: PaymentProvider) -> BillingAccount:
    found = repository.account(ctx.session, org_id=org_id)
    if found is None:
        found = BillingAccount(
            org_id=org_id,
            tax_rate=Decimal(0),
            currency="usd",
            provider=provider.name,
            updated_at=ctx.clock.now(),
        )
        ctx.session.add(found)
        ctx.session.flush()
    return found


def set_tax_rate(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    tax_rate: Decimal,
    provider: PaymentProvider,
) -> BillingAccount:
    if not Decimal(0) <= tax_rate < Decimal(1):
        raise Unprocessable(
            "tax_rate is a fraction from 0 up to 1 (0.2 for 20%)", code="invalid_tax_rate"
        )
    account = _account_for_write(ctx, org.id, provider)
    before = format(account.tax_rate, "f")
    account.tax_rate = tax_rate
    account.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="billing_account",
        target_id=org.id,
        summary={"tax_rate": {"before": before, "after": format(tax_rate, "f")}},
    )
    return account


def _customer(ctx: Ctx, org: Organization, provider: PaymentProvider) -> str:
    account = _account_for_write(ctx, org.id, provider)
    if account.provider_customer_id is None or account.provider != provider.name:
        account.provider_customer_id = provider.ensure_customer(
            org_id=org.id, name=org.name, email=org.billing_email
        )
        account.provider = provider.name
    return account.provider_customer_id


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
    customer = _customer(ctx, org, provider)
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
    sub.status = "trialing" if trial_days is not None else "active"
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
    if sub.status == "trialing":
        # Nothing was paid for the trial: the new plan (and cycle) simply apply from its end.
        sub.plan, sub.cycle = plan.key, cycle.value
        set_org_plan(ctx.session, org, plan.key, now=now)
        return SubscriptionChange(sub, change="changed")
    if cycle is old_cycle:
        lines = rating.proration(
            old=old_plan, old_cycle=old_cycle, new=plan, new_cycle=cycle, period=period, at=now
        )
        pending = [_pending_line(ctx.session, org.id, x, now=now) for x in lines]
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
        _pending_line(ctx.session, org.id, x, now=now)
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
    customer = _customer(ctx, org, provider)
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
    if sub.status != "trialing" and at > period.start:
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
    sub.status = "canceled"
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
    if sub.status == "trialing" and default_method(session, org.id) is None:
        # A trial that ends unpaid: nothing is owed (a trial's usage is free), the org is on
        # Free from the trial's end.
        sub.status, sub.canceled_at, sub.cancel_at_period_end = "canceled", period.end, False
        sub.updated_at = now
        set_org_plan(session, org, DEFAULT_PLAN, now=now)
        session.flush()
        return sub, None
    plan = effective_plan(session, org.id)
    cycle = Cycle(sub.cycle)
    lines: list[Line] = []
    if sub.status != "trialing":  # a trial's usage is free
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
        sub.status = "canceled"
        sub.canceled_at = period.end
        sub.cancel_at_period_end = False
        set_org_plan(session, org, DEFAULT_PLAN, now=now)
    else:
        if sub.status == "trialing":
            sub.status = "active"
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


# ---- invoices ----


def _pending_line(session: Session, org_id: str, x: Line, *, now: datetime) -> InvoiceLine:
    row = _line_row(org_id, None, 0, x, now=now)
    session.add(row)
    session.flush()
    return row


def _line_row(
    org_id: str, invoice_id: str | None, position: int, x: Line, *, now: datetime
) -> InvoiceLine:
    return InvoiceLine(
        id=new_id("il"),
        org_id=org_id,
        invoice_id=invoice_id,
        position=position,
        kind=x.kind.value,
        description=x.description,
        meter=x.meter,
        quantity=x.quantity,
        unit_price=x.unit_price,
        exact=x.exact,
        amount=to_minor(x.amount),
        period_start=x.period_start,
        period_end=x.period_end,
        created_at=now,
    )


def as_line(row: InvoiceLine, currency: str = "usd") -> Line:
    return Line(
        LineKind(row.kind),
        row.description,
        row.quantity,
        row.unit_price,
        row.exact,
        from_minor(row.amount, currency),
        row.meter,
        as_utc(row.period_start) if row.period_start else None,
        as_utc(row.period_end) if row.period_end else None,
    )


def issue(
    session: Session,
    *,
    org_id: str,
    kind: str,
    lines: Sequence[Line],
    now: datetime,
    due_days: int,
    period: tuple[datetime, datetime] | None = None,
    period_key: str | None = None,
    with_pending: bool = False,
    finalize_now: bool = True,
    memo: str | None = None,
    corrects_id: str | None = None,
) -> Invoice | None:
    """Write an invoice of `lines` (and the org's pending lines, if asked), finalized unless a
    draft is asked for. No invoice when there is nothing on it."""
    account = account_of(session, org_id)
    pending = repository.pending_lines(session, org_id=org_id) if with_pending else []
    all_lines = list(lines) + [as_line(p, account.currency) for p in pending]
    if not all_lines and finalize_now:
        return None
    invoice = Invoice(
        id=new_id("in"),
        org_id=org_id,
        kind=kind,
        status="draft",
        period_key=period_key,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        currency=account.currency,
        tax_rate=account.tax_rate if kind != "credit_note" else Decimal(0),
        subtotal=0,
        tax=0,
        total=0,
        amount_paid=0,
        memo=memo,
        corrects_id=corrects_id,
        created_at=now,
        attempt_count=0,
    )
    session.add(invoice)
    session.flush()
    for position, x in enumerate(lines, start=1):
        session.add(_line_row(org_id, invoice.id, position, x, now=now))
    for position, row in enumerate(pending, start=len(lines) + 1):
        row.position = position
    repository.attach_lines(
        session, org_id=org_id, line_ids=[p.id for p in pending], invoice_id=invoice.id
    )
    session.flush()
    if kind != "credit_note":
        _carry_credit(session, invoice, all_lines, now=now)
    _set_totals(session, invoice)
    if finalize_now:
        finalize(session, invoice, now=now, due_days=due_days)
    return invoice


def _carry_credit(session: Session, invoice: Invoice, lines: list[Line], *, now: datetime) -> None:
    """An invoice whose lines come to less than nothing (credits beyond charges) is brought to
    zero by one line, and the credit waits, as a pending line, for the next invoice."""
    exact = sum((x.exact for x in lines), rating.ZERO)
    amount = sum((x.amount for x in lines), rating.ZERO)
    if amount >= 0:
        return
    position = len(lines) + 1
    carried = Line(
        LineKind.CREDIT, "Credit carried to the next invoice", Decimal(1), -exact, -exact, -amount
    )
    session.add(_line_row(invoice.org_id, invoice.id, position, carried, now=now))
    balance = Line(LineKind.CREDIT, "Credit brought forward", Decimal(1), exact, exact, amount)
    session.add(_line_row(invoice.org_id, None, 0, balance, now=now))
    session.flush()


def _set_totals(session: Session, invoice: Invoice) -> None:
    lines = [
        as_line(x, invoice.currency)
        for x in repository.lines_of(session, org_id=invoice.org_id, invoice_id=invoice.id)
    ]
    found = rating.totals(lines, tax_rate=invoice.tax_rate, currency=invoice.currency)
    invoice.subtotal = to_minor(found.subtotal, invoice.currency)
    invoice.tax = to_minor(found.tax, invoice.currency)
    invoice.total = to_minor(found.total, invoice.currency)


def finalize(session: Session, invoice: Invoice, *, now: datetime, due_days: int) -> Invoice:
    """Give the draft its number and freeze it: open with something to collect, else paid."""
    if invoice.status != "draft":
        raise Conflict(
            f"Invoice {invoice.number or invoice.id} is {invoice.status}, not a draft",
            code="invoice_not_draft",
        )
    prefix = "CN" if invoice.kind == "credit_note" else "INV"
    year = now.year
    number = repository.next_number(session, org_id=invoice.org_id, prefix=prefix, year=year)
    invoice.number = f"{prefix}-{year}-{number:04d}"
    invoice.finalized_at = now
    if invoice.kind == "credit_note":
        invoice.status = "issued"
    elif invoice.total <= 0:
        invoice.status, invoice.paid_at = "paid", now
    else:
        invoice.status = "open"
        invoice.due_at = now + timedelta(days=due_days)
        # Collected automatically when the org has a default payment method.
        if default_method(session, invoice.org_id) is not None:
            invoice.next_attempt_at = now
    session.flush()
    return invoice


def amount_due(session: Session, invoice: Invoice) -> int:
    if invoice.status not in ("open", "uncollectible"):
        return 0
    credited = repository.credited(session, org_id=invoice.org_id, invoice_id=invoice.id)
    return max(0, invoice.total - invoice.amount_paid - credited)


@dataclass(frozen=True)
class ManualLine:
    description: str
    quantity: Decimal
    unit_price: Decimal


def raise_invoice(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    lines: Sequence[ManualLine],
    memo: str | None,
    finalize_now: bool,
) -> Invoice:
    """A manual invoice, as a draft (or finalized at once)."""
    rows = [
        rating.line(LineKind.MANUAL, x.description, quantity=x.quantity, unit_price=x.unit_price)
        for x in lines
    ]
    invoice = issue(
        ctx.session,
        org_id=org.id,
        kind="manual",
        lines=rows,
        now=ctx.clock.now(),
        due_days=ctx.settings.billing_due_days,
        finalize_now=False,
        memo=memo,
    )
    assert invoice is not None  # a draft is written even when empty
    if finalize_now:
        finalize(ctx.session, invoice, now=ctx.clock.now(), due_days=ctx.settings.billing_due_days)
    _record(
        ctx,
        principal,
        invoice,
        {"number": invoice.number, "total": invoice.total, "status": invoice.status},
    )
    return invoice


def _record(ctx: Ctx, principal: Principal, invoice: Invoice, summary: dict[str, Any]) -> None:
    audit.record(
        ctx,
        principal,
        org_id=invoice.org_id,
        target_type="invoice",
        target_id=invoice.id,
        summary=summary,
    )


def finalize_draft(ctx: Ctx, principal: Principal, invoice: Invoice) -> Invoice:
    finalize(ctx.session, invoice, now=ctx.clock.now(), due_days=ctx.settings.billing_due_days)
    _record(
        ctx,
        principal,
        invoice,
        {"number": invoice.number, "total": invoice.total, "status": invoice.status},
    )
    return invoice


def void(ctx: Ctx, principal: Principal, invoice: Invoice) -> Invoice:
    """Void an open invoice (nothing more will be collected); a draft is voided too, so no draft
    is ever deleted without trace."""
    if invoice.status not in ("draft", "open"):
        raise Conflict(f"A {invoice.status} invoice cannot be voided", code="invoice_not_voidable")
    if invoice.amount_paid:
        raise Conflict(
            "Part of this invoice is paid: issue a credit note instead", code="invoice_not_voidable"
        )
    invoice.status, invoice.voided_at, invoice.next_attempt_at = "void", ctx.clock.now(), None
    _record(ctx, principal, invoice, {"number": invoice.number, "status": "void"})
    return invoice


def mark_uncollectible(ctx: Ctx, principal: Principal, invoice: Invoice) -> Invoice:
    if invoice.status != "open":
        raise Conflict(
            f"A {invoice.status} invoice cannot be marked uncollectible", code="invoice_not_open"
        )
    invoice.status, invoice.next_attempt_at = "uncollectible", None
    _record(ctx, principal, invoice, {"number": invoice.number, "status": "uncollectible"})
    return invoice


def credit_note(
    ctx: Ctx, principal: Principal, invoice: Invoice, *, amount: Decimal | None, reason: str
) -> Invoice:
    """A credit note taking back `amount` (all that is left, by default) of a finalized invoice.
    On an open invoice it lowers what is due; on a paid one the credit waits, as a pending line,
    for the org's next invoice."""
    if invoice.kind == "credit_note" or invoice.status not in ("open", "paid", "uncollectible"):
        raise Conflict(
            "Only an open, paid or uncollectible invoice can be credited",
            code="invoice_not_creditable",
        )
    left = invoice.total - repository.credited(
        ctx.session, org_id=invoice.org_id, invoice_id=invoice.id
    )
    wanted = left if amount is None else to_minor_checked(amount, invoice.currency)
    if wanted <= 0 or wanted > left:
        raise Unprocessable(
            f"A credit note takes back 0.01 to {from_minor(left, invoice.currency)} "
            "of this invoice",
            code="invalid_credit",
        )
    value = from_minor(wanted, invoice.currency)
    now = ctx.clock.now()
    credit = Line(
        LineKind.CREDIT,
        f"Credit for {invoice.number}: {reason}",
        Decimal(-1),
        value,
        -value,
        -value,
    )
    note = issue(
        ctx.session,
        org_id=invoice.org_id,
        kind="credit_note",
        lines=[credit],
        now=now,
        due_days=0,
        memo=reason,
        corrects_id=invoice.id,
    )
    assert note is not None
    if invoice.status == "paid":
        _pending_line(
            ctx.session,
            invoice.org_id,
            Line(LineKind.CREDIT, f"Credit note {note.number}", Decimal(1), -value, -value, -value),
            now=now,
        )
    elif amount_due(ctx.session, invoice) == 0:
        invoice.status, invoice.paid_at, invoice.next_attempt_at = "paid", now, None
    _record(
        ctx, principal, invoice, {"credit_note": note.id, "number": note.number, "amount": wanted}
    )
    return note


def to_minor_checked(amount: Decimal, currency: str) -> int:
    try:
        return to_minor(amount, currency)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_amount") from None


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
        if sub.status != "trialing":
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


@dataclass(frozen=True)
class InvoiceView:
    invoice: Invoice
    lines: list[InvoiceLine]
    attempts: list[PaymentAttempt]
    amount_due: int
    org_name: str


def view(session: Session, invoice: Invoice, *, org_name: str) -> InvoiceView:
    return InvoiceView(
        invoice,
        repository.lines_of(session, org_id=invoice.org_id, invoice_id=invoice.id),
        repository.attempts_of(session, org_id=invoice.org_id, invoice_id=invoice.id),
        amount_due(session, invoice),
        org_name,
    )


def find_any_invoice(session: Session, invoice_id: str, *, lock: bool = False) -> Invoice | None:
    """An invoice by id alone; the caller checks that the principal stands in its org."""
    found = repository.unscoped_invoice(session, invoice_id)
    if found is not None and lock:
        found = repository.invoice(session, org_id=found.org_id, invoice_id=invoice_id, lock=True)
    return found


def find_invoice(session: Session, org_id: str, invoice_id: str, *, lock: bool = False) -> Invoice:
    found = repository.invoice(session, org_id=org_id, invoice_id=invoice_id, lock=lock)
    if found is None:
        raise NotFound("Invoice not found")
    return found


def list_invoices(
    session: Session, org_id: str, *, status: str | None, page: PageRequest
) -> Page[Invoice]:
    return repository.invoices(session, org_id=org_id, status=status, page=page)


# ---- payment methods ----


def default_method(session: Session, org_id: str) -> PaymentMethod | None:
    methods = repository.payment_methods(session, org_id=org_id)
    return next((m for m in methods if m.is_default), None)


def add_payment_method(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    token: str,
    offered: CardDetails,
    make_default: bool,
    provider: PaymentProvider,
) -> PaymentMethod:
    customer = _customer(ctx, org, provider)
    details = provider.describe_payment_method(customer_id=customer, token=token, offered=offered)
    existing = repository.payment_methods(ctx.session, org_id=org.id)
    make_default = make_default or not any(m.is_default for m in existing)
    if make_default:
        for m in existing:
            m.is_default = False
    method = PaymentMethod(
        id=new_id("pm"),
        org_id=org.id,
        kind=details.kind,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        bank_name=details.bank_name,
        provider=provider.name,
        provider_token=token,
        is_default=make_default,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(method)
    ctx.session.flush()
    if make_default:
        # Open invoices issued while the org had no way to pay are collected from now on.
        repository.schedule_uncollected(ctx.session, org_id=org.id, now=ctx.clock.now())
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="payment_method",
        target_id=method.id,
        summary={
            "kind": method.kind,
            "brand": method.brand,
            "last4": method.last4,
            "default": make_default,
        },
    )
    return method


def payment_methods_of(session: Session, org_id: str) -> list[PaymentMethod]:
    return repository.payment_methods(session, org_id=org_id)


def remove_payment_method(
    ctx: Ctx, principal: Principal, org: Organization, method_id: str
) -> None:
    method = repository.payment_method(ctx.session, org_id=org.id, method_id=method_id)
    if method is None:
        raise NotFound("Payment method not found")
    method.removed_at, method.is_default = ctx.clock.now(), False
    audit.record(ctx, principal, org_id=org.id, target_type="payment_method", target_id=method.id)


# ---- payments ----


@dataclass(frozen=True)
class PaymentStart:
    attempt: PaymentAttempt
    charge: Charge


def begin_payment(
    session: Session,
    invoice: Invoice,
    *,
    method: PaymentMethod | None,
    provider: PaymentProvider,
    customer_id: str,
    now: datetime,
) -> PaymentStart:
    """Step one: the attempt, written as `pending` under its idempotency key; the caller commits
    it before calling the provider. An attempt still pending or unknown is taken up again with
    its own key, so whatever the provider did the first time is what it answers now."""
    if invoice.status not in ("open", "uncollectible"):
        raise Conflict(
            f"Invoice {invoice.number or invoice.id} is {invoice.status}: nothing to pay",
            code="invoice_not_payable",
        )
    attempts = repository.attempts_of(session, org_id=invoice.org_id, invoice_id=invoice.id)
    unsettled = next((a for a in attempts if a.status in ("pending", "unknown")), None)
    if unsettled is not None:
        chosen = repository.payment_method(
            session, org_id=invoice.org_id, method_id=unsettled.payment_method_id or ""
        )
        if chosen is None:
            raise Conflict(
                "The payment method of an unsettled attempt is gone", code="payment_method_removed"
            )
        attempt = unsettled
    else:
        if method is None:
            raise Unprocessable(
                "The organization has no payment method: add one first", code="no_payment_method"
            )
        due = amount_due(session, invoice)
        number = len(attempts) + 1
        attempt = PaymentAttempt(
            id=new_id("pay"),
            org_id=invoice.org_id,
            invoice_id=invoice.id,
            attempt=number,
            payment_method_id=method.id,
            amount=due,
            currency=invoice.currency,
            status="pending",
            idempotency_key=f"{invoice.org_id}:{invoice.id}:pay-{number}",
            provider=provider.name,
            created_at=now,
        )
        session.add(attempt)
        session.flush()
        chosen = method
    charge = Charge(
        org_id=invoice.org_id,
        customer_id=customer_id,
        payment_method_token=chosen.provider_token,
        amount=attempt.amount,
        currency=attempt.currency,
        idempotency_key=attempt.idempotency_key,
        description=f"Invoice {invoice.number}",
        invoice_id=invoice.id,
    )
    return PaymentStart(attempt, charge)


def end_payment(
    session: Session,
    *,
    org_id: str,
    attempt_id: str,
    result: ChargeResult,
    now: datetime,
    retry_days: Sequence[int],
    automatic: bool,
) -> tuple[PaymentAttempt, Invoice]:
    """Step two: the provider's answer. Paid: the invoice is paid and a past-due subscription is
    active again. Declined: the invoice stays open and, when collected automatically, is tried
    again after the next of `retry_days`. Unknown: asked again within the hour."""
    attempt = repository.attempt(session, org_id=org_id, attempt_id=attempt_id)
    if attempt is None:
        raise NotFound("Payment attempt not found")
    invoice = find_invoice(session, org_id, attempt.invoice_id, lock=True)
    if attempt.status in ("succeeded", "failed"):
        return attempt, invoice  # settled already (a concurrent request asked the same)
    attempt.status = result.status.value
    attempt.provider_payment_id = result.provider_payment_id or attempt.provider_payment_id
    attempt.failure_code, attempt.failure_message = result.failure_code, result.failure_message
    sub = repository.subscription(session, org_id=org_id)
    if result.status is ChargeStatus.SUCCEEDED:
        attempt.completed_at = now
        invoice.amount_paid += attempt.amount
        if amount_due(session, invoice) == 0:
            invoice.status, invoice.paid_at, invoice.next_attempt_at = "paid", now, None
        if sub is not None and sub.status == "past_due" and invoice.kind == "subscription":
            sub.status, sub.updated_at = "active", now
    elif result.status is ChargeStatus.FAILED:
        attempt.completed_at = now
        invoice.attempt_count += 1
        failures = invoice.attempt_count
        if automatic and failures <= len(retry_days):
            invoice.next_attempt_at = now + timedelta(days=retry_days[failures - 1])
        else:
            invoice.next_attempt_at = None
        if sub is not None and sub.status == "active" and invoice.kind == "subscription":
            sub.status, sub.updated_at = "past_due", now
    else:
        invoice.next_attempt_at = now + timedelta(hours=1)
    session.flush()
    return attempt, invoice


def customer_of(ctx: Ctx, org: Organization, provider: PaymentProvider) -> str:
    return _customer(ctx, org, provider)


def resolve_method(session: Session, org_id: str, method_id: str | None) -> PaymentMethod | None:
    if method_id is None:
        return default_method(session, org_id)
    found = repository.payment_method(session, org_id=org_id, method_id=method_id)
    if found is None:
        raise NotFound("Payment method not found")
    return found


def payments(session: Session, org_id: str, *, page: PageRequest) -> Page[PaymentAttempt]:
    return repository.payments(session, org_id=org_id, page=page)


def record_payment(
    ctx: Ctx, principal: Principal, attempt: PaymentAttempt, invoice: Invoice
) -> None:
    """The one audit event of a payment request: which attempt, and how it ended."""
    _record(
        ctx,
        principal,
        invoice,
        {
            "payment": attempt.id,
            "attempt": attempt.attempt,
            "amount": attempt.amount,
            "outcome": attempt.status,
            "invoice_status": invoice.status,
        },
    )


# ---- changes the payment provider reports (billing/webhooks.py) ----


def change_plan_from_provider(
    ctx: Ctx, org: Organization, sub: Subscription, *, plan_key: str, cycle: Cycle
) -> SubscriptionChange:
    """A plan or cycle change made at the provider (its customer portal), applied by the same
    rules as one made here: prorations pending, a new cycle invoiced now. A webhook has no
    principal: the caller writes its system audit event."""
    plan = catalog_plan(ctx.session, plan_key)
    return _change(ctx, org, sub, plan=plan, cycle=cycle, now=ctx.clock.now())


def settle_from_provider(
    session: Session,
    invoice: Invoice,
    *,
    result: ChargeResult,
    amount: int,
    idempotency_key: str,
    provider: str,
    now: datetime,
    retry_days: Sequence[int],
) -> tuple[PaymentAttempt, Invoice]:
    """A payment of `invoice` the provider reports by itself: it settles the attempt still
    waiting for an answer (pending or unknown), or is recorded as an attempt of its own under
    `idempotency_key`, then takes the same path as any answer (`end_payment`)."""
    attempts = repository.attempts_of(session, org_id=invoice.org_id, invoice_id=invoice.id)
    attempt = next((a for a in attempts if a.status in ("pending", "unknown")), None)
    if attempt is None:
        attempt = PaymentAttempt(
            id=new_id("pay"),
            org_id=invoice.org_id,
            invoice_id=invoice.id,
            attempt=len(attempts) + 1,
            payment_method_id=None,
            amount=amount,
            currency=invoice.currency,
            status="pending",
            idempotency_key=idempotency_key,
            provider=provider,
            created_at=now,
        )
        session.add(attempt)
        session.flush()
    return end_payment(
        session,
        org_id=invoice.org_id,
        attempt_id=attempt.id,
        result=result,
        now=now,
        retry_days=retry_days,
        automatic=True,
    )

"""HTTP routes of billing: the price list, an org's subscription, billing account, invoices,
payment methods and payments, and the payment provider's webhook.

Reading needs `billing:view`; changing anything needs `billing:manage`. An invoice is named by
its id alone; another org's invoice answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.billing import (
    accounts,
    invoices,
    payment_methods,
    payments,
    render,
    subscriptions,
    webhooks,
)
from tenantry.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
    Subscription,
)
from tenantry.billing.providers import CardDetails, PaymentProvider
from tenantry.billing.rating import Cycle, Line
from tenantry.billing.schemas import (
    BillingAccountIn,
    BillingAccountOut,
    CreditNoteIn,
    InvoiceOut,
    InvoiceSummaryOut,
    LineOut,
    ManualInvoiceIn,
    OrgSubscriptionOut,
    PayIn,
    PaymentMethodIn,
    PaymentMethodOut,
    PaymentOut,
    PaymentResultOut,
    PlanPriceOut,
    PlansOut,
    PreviewOut,
    SubscribeIn,
    SubscriptionChangeOut,
    SubscriptionOut,
    WebhookOut,
)
from tenantry.http.auth import OrgScope, PrincipalDep, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.http.work import CtxDep
from tenantry.kit.context import Ctx, quota_exempt
from tenantry.kit.errors import NotFound
from tenantry.kit.money import from_minor, plain, round_money, to_minor
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import OVERAGE_RATES
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy.models import Organization
from tenantry.throttling.limiter import throttle_request

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

BillingView = Annotated[OrgScope, Depends(org_scope(Permission.BILLING_VIEW))]
BillingManage = Annotated[OrgScope, Depends(org_scope(Permission.BILLING_MANAGE))]
InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible", "issued"]


def provider_of(request: Request) -> PaymentProvider:
    return app_state(request).payments


ProviderDep = Annotated[PaymentProvider, Depends(provider_of)]


# ---- shaping ----


def _money(minor: int, currency: str) -> str:
    return format(from_minor(minor, currency), "f")


def _line_out(row: InvoiceLine | Line, currency: str) -> LineOut:
    if isinstance(row, InvoiceLine):
        row = invoices.as_line(row, currency)
    return LineOut(
        kind=row.kind.value,
        description=row.description,
        meter=row.meter,
        quantity=plain(row.quantity),
        unit_price=plain(row.unit_price),
        amount=format(round_money(row.amount, currency), "f"),
        amount_minor=to_minor(row.amount, currency),
        period_start=row.period_start,
        period_end=row.period_end,
    )


def _payment_out(row: PaymentAttempt) -> PaymentOut:
    return PaymentOut.model_validate(
        {
            **{k: getattr(row, k) for k in PaymentOut.model_fields if hasattr(row, k)},
            "amount": _money(row.amount, row.currency),
            "amount_minor": row.amount,
        }
    )


def _invoice_out(session: Session, invoice: Invoice) -> InvoiceOut:
    c = invoice.currency
    view = invoices.view(session, invoice, org_name="")
    return InvoiceOut(
        id=invoice.id,
        org_id=invoice.org_id,
        number=invoice.number,
        kind=invoice.kind,
        status=invoice.status,
        currency=c,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        tax_rate=plain(invoice.tax_rate),
        subtotal=_money(invoice.subtotal, c),
        tax=_money(invoice.tax, c),
        total=_money(invoice.total, c),
        amount_paid=_money(invoice.amount_paid, c),
        amount_due=_money(view.amount_due, c),
        total_minor=invoice.total,
        memo=invoice.memo,
        corrects_id=invoice.corrects_id,
        created_at=invoice.created_at,
        finalized_at=invoice.finalized_at,
        due_at=invoice.due_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        next_attempt_at=invoice.next_attempt_at,
        lines=[_line_out(x, c) for x in view.lines],
        payments=[_payment_out(a) for a in view.attempts],
    )


def _summary_out(session: Session, invoice: Invoice) -> InvoiceSummaryOut:
    c = invoice.currency
    return InvoiceSummaryOut(
        id=invoice.id,
        number=invoice.number,
        kind=invoice.kind,
        status=invoice.status,
        currency=c,
        total=_money(invoice.total, c),
        amount_due=_money(invoices.amount_due(session, invoice), c),
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        created_at=invoice.created_at,
        due_at=invoice.due_at,
    )


def _change_out(scope: OrgScope, change: subscriptions.SubscriptionChange) -> SubscriptionChangeOut:
    session = scope.ctx.session
    currency = accounts.account_of(session, scope.org.id).currency
    return SubscriptionChangeOut(
        change=change.change,
        subscription=SubscriptionOut.model_validate(change.subscription),
        invoice=_invoice_out(session, change.invoice) if change.invoice else None,
        prorations=[_line_out(x, currency) for x in change.prorations],
    )


def _subscription_out(org: Organization, sub: Subscription | None) -> OrgSubscriptionOut:
    return OrgSubscriptionOut(
        org_id=org.id,
        plan=org.plan,
        subscription=SubscriptionOut.model_validate(sub) if sub is not None else None,
    )


# ---- the price list ----


@router.get("/billing/plans", response_model=PlansOut, tags=["billing"])
def list_plans(ctx: CtxDep) -> PlansOut:
    """The plans, their monthly and yearly prices, quotas and overage rates (public): the
    catalog as the deployment's operators edited it."""
    out = []
    for plan in live_catalog.current(ctx.session).plans.values():
        out.append(
            PlanPriceOut(
                key=plan.key,
                name=plan.name,
                currency=plan.currency,
                monthly_price=format(plan.monthly_price, ".2f"),
                yearly_price=format(plan.yearly_price, ".2f"),
                quotas={
                    k: None if q.limit is None else plain(q.limit) for k, q in plan.quotas.items()
                },
                overage_rates={k: plain(v) for k, v in plan.overage_rates.items()},
            )
        )
    return PlansOut(plans=out, overage_rates={k: plain(v) for k, v in OVERAGE_RATES.items()})


# ---- subscription ----


@router.get("/orgs/{org}/subscription", response_model=OrgSubscriptionOut, tags=["billing"])
@quota_exempt
def show_subscription(scope: BillingView) -> OrgSubscriptionOut:
    """The org's plan and subscription (none: the org is on Free)."""
    return _subscription_out(
        scope.org, subscriptions.subscription_of(scope.ctx.session, scope.org.id)
    )


@router.put(
    "/orgs/{org}/subscription",
    name="subscription.updated",
    response_model=SubscriptionChangeOut,
    tags=["billing"],
)
@quota_exempt
def subscribe(body: SubscribeIn, scope: BillingManage, provider: ProviderDep) -> Response:
    """Subscribe to a plan, or change plan or cycle (prorated), or take back a cancellation.
    Quotas and rate limits follow the new plan at once."""
    change = subscriptions.subscribe(
        scope.ctx,
        scope.principal,
        scope.org,
        plan_key=body.plan,
        cycle=Cycle(body.cycle),
        trial_days=body.trial_days,
        provider=provider,
    )
    return scope.ctx.done(_change_out(scope, change))


@router.delete(
    "/orgs/{org}/subscription",
    name="subscription.canceled",
    response_model=SubscriptionChangeOut,
    tags=["billing"],
)
@quota_exempt
def cancel_subscription(
    scope: BillingManage,
    provider: ProviderDep,
    immediately: Annotated[bool, Query(description="End now and drop to Free")] = False,
) -> Response:
    """Cancel at the end of the period (the plan stays until then), or `immediately`."""
    change = subscriptions.cancel(
        scope.ctx, scope.principal, scope.org, immediately=immediately, provider=provider
    )
    return scope.ctx.done(_change_out(scope, change))


# ---- billing account ----


def _account_out(org_id: str, account: BillingAccount) -> BillingAccountOut:
    return BillingAccountOut(
        org_id=org_id,
        tax_rate=plain(account.tax_rate),
        currency=account.currency,
        provider=account.provider,
        provider_customer_id=account.provider_customer_id,
    )


@router.get("/orgs/{org}/billing/account", response_model=BillingAccountOut, tags=["billing"])
def show_account(scope: BillingView) -> BillingAccountOut:
    """The org's tax rate, currency and customer at the payment provider."""
    return _account_out(scope.org.id, accounts.account_of(scope.ctx.session, scope.org.id))


@router.patch(
    "/orgs/{org}/billing/account",
    name="billing_account.updated",
    response_model=BillingAccountOut,
    tags=["billing"],
)
def update_account(body: BillingAccountIn, scope: BillingManage, provider: ProviderDep) -> Response:
    """Set the org's tax rate (a fraction: 0.2 is 20%), used by invoices finalized from now on."""
    account = accounts.set_tax_rate(
        scope.ctx, scope.principal, scope.org, tax_rate=body.tax_rate, provider=provider
    )
    return scope.ctx.done(_account_out(scope.org.id, account))


# ---- invoices of an org ----


@router.get("/orgs/{org}/invoices", response_model=PageOut[InvoiceSummaryOut], tags=["billing"])
def list_invoices(
    scope: BillingView, page: PageDep, status: InvoiceStatus | None = None
) -> PageOut[InvoiceSummaryOut]:
    """The org's invoices and credit notes, oldest first."""
    session = scope.ctx.session
    found = invoices.list_invoices(session, scope.org.id, status=status, page=page)
    return PageOut(
        items=[_summary_out(session, x) for x in found.items], next_cursor=found.next_cursor
    )


@router.get("/orgs/{org}/invoices/upcoming", response_model=PreviewOut, tags=["billing"])
def upcoming_invoice(scope: BillingView) -> PreviewOut:
    """What the current period's invoice would say if the period ended now (nothing is
    written): usage beyond the plan so far, pending prorations and credits, the next base fee."""
    found = subscriptions.preview(scope.ctx.session, scope.org.id, now=scope.ctx.clock.now())
    c = found.currency
    return PreviewOut(
        org_id=found.org_id,
        currency=c,
        period_start=found.period.start if found.period else None,
        period_end=found.period.end if found.period else None,
        lines=[_line_out(x, c) for x in found.lines],
        tax_rate=plain(found.tax_rate),
        subtotal=format(found.totals.subtotal, "f"),
        tax=format(found.totals.tax, "f"),
        total=format(found.totals.total, "f"),
    )


@router.post(
    "/orgs/{org}/invoices",
    name="invoice.created",
    status_code=201,
    response_model=InvoiceOut,
    tags=["billing"],
)
def raise_invoice(body: ManualInvoiceIn, scope: BillingManage) -> Response:
    """Raise a manual invoice: a draft (finalize it later) or, with `finalize`, at once."""
    invoice = invoices.raise_invoice(
        scope.ctx,
        scope.principal,
        scope.org,
        lines=[invoices.ManualLine(x.description, x.quantity, x.unit_price) for x in body.lines],
        memo=body.memo,
        finalize_now=body.finalize,
    )
    return scope.ctx.done(_invoice_out(scope.ctx.session, invoice), status=201)


# ---- one invoice, by id ----


@dataclass
class InvoiceScope:
    ctx: Ctx
    principal: Principal
    invoice: Invoice


def invoice_scope(permission: Permission) -> Callable[..., InvoiceScope]:
    def dependency(
        invoice_id: str, ctx: CtxDep, principal: PrincipalDep, request: Request
    ) -> InvoiceScope:
        found = invoices.find_any_invoice(ctx.session, invoice_id, lock=ctx.write)
        if found is None or not is_in_org(ctx.session, principal, found.org_id):
            raise NotFound("Invoice not found")
        request.state.audit_org_id = found.org_id
        throttle_request(request, ctx, principal, org_id=found.org_id)
        authorize(ctx.session, principal, permission, org_id=found.org_id)
        return InvoiceScope(ctx=ctx, principal=principal, invoice=found)

    return dependency


InvoiceView = Annotated[InvoiceScope, Depends(invoice_scope(Permission.BILLING_VIEW))]
InvoiceManage = Annotated[InvoiceScope, Depends(invoice_scope(Permission.BILLING_MANAGE))]


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, tags=["billing"])
def show_invoice(scope: InvoiceView) -> InvoiceOut:
    """An invoice with its lines and payment attempts."""
    return _invoice_out(scope.ctx.session, scope.invoice)


def _render_view(scope: InvoiceScope) -> invoices.InvoiceView:
    session = scope.ctx.session
    org = tenancy_repository.unscoped_org_by_ref(session, scope.invoice.org_id)
    return invoices.view(session, scope.invoice, org_name=org.name if org else "")


def _file_name(invoice: Invoice, suffix: str) -> str:
    return f"{invoice.number or 'draft-' + invoice.id}.{suffix}"


@router.get("/invoices/{invoice_id}/pdf", tags=["billing"], response_class=Response)
def invoice_pdf(scope: InvoiceView) -> Response:
    """The invoice as a PDF."""
    pdf = render.invoice_pdf(_render_view(scope))
    name = _file_name(scope.invoice, "pdf")
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/invoices/{invoice_id}/html", tags=["billing"], response_class=Response)
def invoice_html(scope: InvoiceView) -> Response:
    """The invoice as a printable HTML page."""
    return Response(render.invoice_html(_render_view(scope)), media_type="text/html")


@router.post(
    "/invoices/{invoice_id}/finalize",
    name="invoice.finalized",
    response_model=InvoiceOut,
    tags=["billing"],
)
def finalize_invoice(scope: InvoiceManage) -> Response:
    """Give a draft its number and freeze it."""
    invoice = invoices.finalize_draft(scope.ctx, scope.principal, scope.invoice)
    return scope.ctx.done(_invoice_out(scope.ctx.session, invoice))


@router.post(
    "/invoices/{invoice_id}/void",
    name="invoice.voided",
    response_model=InvoiceOut,
    tags=["billing"],
)
def void_invoice(scope: InvoiceManage) -> Response:
    """Void a draft or an open invoice with nothing paid on it."""
    invoice = invoices.void(scope.ctx, scope.principal, scope.invoice)
    return scope.ctx.done(_invoice_out(scope.ctx.session, invoice))


@router.post(
    "/invoices/{invoice_id}/mark-uncollectible",
    name="invoice.marked_uncollectible",
    response_model=InvoiceOut,
    tags=["billing"],
)
def mark_uncollectible(scope: InvoiceManage) -> Response:
    """Stop collecting an open invoice (it can still be paid later)."""
    invoice = invoices.mark_uncollectible(scope.ctx, scope.principal, scope.invoice)
    return scope.ctx.done(_invoice_out(scope.ctx.session, invoice))


@router.post(
    "/invoices/{invoice_id}/credit-notes",
    name="invoice.credited",
    status_code=201,
    response_model=InvoiceOut,
    tags=["billing"],
)
def credit_invoice(body: CreditNoteIn, scope: InvoiceManage) -> Response:
    """Issue a credit note against a finalized invoice (all that is left, or `amount`)."""
    note = invoices.credit_note(
        scope.ctx, scope.principal, scope.invoice, amount=body.amount, reason=body.reason
    )
    return scope.ctx.done(_invoice_out(scope.ctx.session, note), status=201)


@router.post(
    "/invoices/{invoice_id}/pay",
    name="invoice.payment_attempted",
    response_model=PaymentResultOut,
    tags=["billing"],
)
def pay_invoice(scope: InvoiceManage, provider: ProviderDep, body: PayIn | None = None) -> Response:
    """Charge the invoice's amount due to a payment method (the default one unless named).
    The answer says whether the payment succeeded, failed or has an unknown outcome (asked
    again later under the same idempotency key, never charged twice)."""
    ctx, invoice = scope.ctx, scope.invoice
    org = tenancy_repository.unscoped_org_by_ref(ctx.session, invoice.org_id)
    assert org is not None  # the invoice's org exists: it was just resolved
    method = payment_methods.resolve_method(
        ctx.session, invoice.org_id, body.payment_method_id if body else None
    )
    customer = accounts.customer_of(ctx, org, provider)
    started = payments.begin_payment(
        ctx.session,
        invoice,
        method=method,
        provider=provider,
        customer_id=customer,
        now=ctx.clock.now(),
    )
    attempt_id, org_id = started.attempt.id, invoice.org_id
    # The attempt is on record before the provider is asked: whatever happens next, a retry
    # finds it and asks again under the same key instead of charging anew.
    ctx.session.commit()
    result = provider.charge(started.charge)
    attempt, paid = payments.end_payment(
        ctx.session,
        org_id=org_id,
        attempt_id=attempt_id,
        result=result,
        now=ctx.clock.now(),
        retry_days=ctx.settings.billing_retry_days,
        automatic=False,
    )
    payments.record_payment(ctx, scope.principal, attempt, paid)
    out = PaymentResultOut(payment=_payment_out(attempt), invoice=_invoice_out(ctx.session, paid))
    return ctx.done(out)


# ---- payment methods and payments ----


@router.get(
    "/orgs/{org}/payment-methods", response_model=PageOut[PaymentMethodOut], tags=["billing"]
)
def list_payment_methods(scope: BillingView) -> PageOut[PaymentMethodOut]:
    """The org's payment methods (brand and last four digits, or bank): never a card number."""
    methods = payment_methods.payment_methods_of(scope.ctx.session, scope.org.id)
    return PageOut(items=[PaymentMethodOut.model_validate(m) for m in methods])


@router.post(
    "/orgs/{org}/payment-methods",
    name="payment_method.added",
    status_code=201,
    response_model=PaymentMethodOut,
    tags=["billing"],
)
def add_payment_method(
    body: PaymentMethodIn, scope: BillingManage, provider: ProviderDep
) -> Response:
    """Add a payment method by the provider's token (the first one becomes the default)."""
    method = payment_methods.add_payment_method(
        scope.ctx,
        scope.principal,
        scope.org,
        token=body.token,
        offered=CardDetails(
            kind=body.kind,
            brand=body.brand,
            last4=body.last4,
            exp_month=body.exp_month,
            exp_year=body.exp_year,
            bank_name=body.bank_name,
        ),
        make_default=body.default,
        provider=provider,
    )
    return scope.ctx.done(PaymentMethodOut.model_validate(method), status=201)


@router.delete(
    "/orgs/{org}/payment-methods/{method_id}",
    name="payment_method.removed",
    status_code=204,
    tags=["billing"],
)
def remove_payment_method(method_id: str, scope: BillingManage) -> Response:
    payment_methods.remove_payment_method(scope.ctx, scope.principal, scope.org, method_id)
    return scope.ctx.done(None, status=204)


@router.get("/orgs/{org}/payments", response_model=PageOut[PaymentOut], tags=["billing"])
def list_payments(scope: BillingView, page: PageDep) -> PageOut[PaymentOut]:
    """Every payment attempt of the org, oldest first: the payment history."""
    found = payments.payments(scope.ctx.session, scope.org.id, page=page)
    return PageOut(items=[_payment_out(a) for a in found.items], next_cursor=found.next_cursor)


# ---- the payment provider's webhook (billing/webhooks.py) ----
# Outside /api/v1: Stripe is configured with this address once, and it is no part of the
# versioned API. Public: the signature, not a bearer credential, says who sent it.

webhook_router = APIRouter(route_class=JsonBodyRoute)


async def _raw_body(request: Request) -> bytes:
    # The signature covers the exact bytes sent; a parsed body could not be checked.
    return await request.body()


@webhook_router.post(
    "/webhooks/stripe",
    name="billing_webhook.received",
    response_model=WebhookOut,
    tags=["billing"],
)
def stripe_webhook(
    ctx: CtxDep,
    payload: Annotated[bytes, Depends(_raw_body)],
    stripe_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """Stripe's events, signed with the webhook secret: each is handled once (a replay answers
    `duplicate: true` and changes nothing). 503 until TENANTRY_STRIPE_WEBHOOK_SECRET is set."""
    result = webhooks.receive_stripe(
        ctx.session,
        payload=payload,
        signature=stripe_signature,
        settings=ctx.settings,
        clock=ctx.clock,
        request_id=ctx.origin.request_id,
    )
    return ctx.done(WebhookOut(received=True, duplicate=result.duplicate, outcome=result.outcome))

"""Billing: the plan and subscription (changing plan or cycle, cancelling, taking a
cancellation back), the upcoming invoice, invoices with their status, a PDF of each and paying
one, payment methods and the payment history.

Reading needs `billing:view` and changing anything `billing:manage`, as the API's routes; each
changing route's `name` is the API route's audit action. Cards are added by the payment
provider's token for them (`pm_…` on Stripe), never by a card number: the page sees no more of a
card than the API does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.api.billing import provider_of
from tenantry.authz.catalog import Permission
from tenantry.billing import accounts, invoices, payment_methods, payments, render, subscriptions
from tenantry.billing.models import Invoice, PaymentAttempt
from tenantry.billing.providers import CardDetails
from tenantry.billing.rating import Cycle
from tenantry.billing.schemas import PaymentMethodIn, SubscribeIn
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.kit.money import from_minor
from tenantry.metering import plans
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import DEFAULT_PLAN
from tenantry.web.forms import FormRefused, FormState, parse, refused
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render as render_page
from tenantry.web.visit import Visit, org_page

router = page_router()

BillingView = Annotated[Visit, Depends(org_page(Permission.BILLING_VIEW))]
BillingManage = Annotated[Visit, Depends(org_page(Permission.BILLING_MANAGE))]

CYCLES = [("monthly", "Monthly"), ("yearly", "Yearly")]
# Invoices that can still be paid.
PAYABLE = frozenset({"open", "uncollectible"})


def _minor(value: int, currency: str) -> Decimal:
    return from_minor(value, currency)


def _invoice_rows(visit: Visit) -> list[dict[str, Any]]:
    session, org = visit.ctx.session, visit.current_org
    found = every(lambda page: invoices.list_invoices(session, org.id, status=None, page=page))
    rows = []
    for invoice in reversed(found):  # newest first
        due = invoices.amount_due(session, invoice)
        rows.append(
            {
                "invoice": invoice,
                "total": _minor(invoice.total, invoice.currency),
                "due": _minor(due, invoice.currency),
                "payable": invoice.status in PAYABLE and due > 0,
            }
        )
    return rows


def _payment_rows(visit: Visit, numbers: dict[str, str]) -> list[dict[str, Any]]:
    session, org_id = visit.ctx.session, visit.current_org.id
    found: list[PaymentAttempt] = every(lambda page: payments.payments(session, org_id, page=page))
    return [
        {
            "payment": p,
            "amount": _minor(p.amount, p.currency),
            "invoice": numbers.get(p.invoice_id, p.invoice_id),
        }
        for p in reversed(found)  # newest first
    ]


def _page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    alert: str = "",
    problem: Problem | None = None,
    status: int = 200,
) -> Response:
    session, org = visit.ctx.session, visit.current_org
    now = visit.ctx.clock.now()
    forms = forms or {}
    failed = next((f.status for f in forms.values() if f.failed), None)
    catalog = live_catalog.current(session)
    sub = subscriptions.subscription_of(session, org.id)
    upcoming = subscriptions.preview(session, org.id, now=now)
    invoice_rows = _invoice_rows(visit)
    numbers = {r["invoice"].id: r["invoice"].number or "draft" for r in invoice_rows}
    context = {
        "visit": visit,
        "org": org,
        "plan": plans.effective_plan(session, org.id),
        "subscription": sub,
        "live": sub is not None and sub.status in subscriptions.LIVE,
        "account": accounts.account_of(session, org.id),
        "plans": [p for p in catalog.plans.values() if p.key != DEFAULT_PLAN],
        "plan_choices": [(p.key, p.name) for p in catalog.plans.values() if p.key != DEFAULT_PLAN],
        "default_plan": DEFAULT_PLAN,
        "cycles": CYCLES,
        "upcoming": upcoming,
        "invoices": invoice_rows,
        "methods": payment_methods.payment_methods_of(session, org.id),
        "payments": _payment_rows(visit, numbers),
        "manage": visit.can(Permission.BILLING_MANAGE),
        "subscribe": forms.get("subscribe", FormState()),
        "card": forms.get("card", FormState()),
        "notice": notice,
        "alert": alert,
        "problem": problem,
    }
    code = problem.status if problem else (failed or status)
    return render_page(request, "billing.html", context, status=code, block="page")


def _url(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/billing"


@router.get("/orgs/{org}/billing")
def billing_page(request: Request, visit: BillingView) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/billing/subscription", name="subscription.updated")
def subscribe(request: Request, visit: BillingManage) -> Response:
    ctx = visit.ctx
    try:
        body = parse(SubscribeIn, visit.form, optional_blank=frozenset({"trial_days"}))
        change = subscriptions.subscribe(
            ctx,
            visit.principal,
            visit.current_org,
            plan_key=body.plan,
            cycle=Cycle(body.cycle),
            trial_days=body.trial_days,
            provider=provider_of(request),
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"subscribe": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        fields = {"invalid_plan": "plan", "not_found": "plan", "invalid_trial": "plan"}
        return _page(
            request, visit, forms={"subscribe": refused(problem, visit.form, fields).state}
        )
    words = {
        "created": "Subscribed to",
        "changed": "Changed to",
        "resumed": "Cancellation taken back: staying on",
        "unchanged": "Already on",
    }
    notice = f"{words.get(change.change, 'Now on')} {change.subscription.plan} ({body.cycle})."
    ctx.done(None)
    return changed(request, _url(visit), lambda: _page(request, visit, notice=notice))


@router.post("/orgs/{org}/billing/subscription/cancel", name="subscription.canceled")
def cancel(request: Request, visit: BillingManage) -> Response:
    immediately = visit.form.get("immediately") in ("on", "true", "1")
    try:
        subscriptions.cancel(
            visit.ctx,
            visit.principal,
            visit.current_org,
            immediately=immediately,
            provider=provider_of(request),
        )
    except Forbidden:
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        return _page(request, visit, problem=problem)
    visit.ctx.done(None)
    notice = (
        "Subscription canceled: the organization is on Free now."
        if immediately
        else "Subscription canceled at the end of the period."
    )
    return changed(request, _url(visit), lambda: _page(request, visit, notice=notice))


@router.post("/orgs/{org}/billing/payment-methods", name="payment_method.added")
def add_payment_method(request: Request, visit: BillingManage) -> Response:
    ctx = visit.ctx
    try:
        body = parse(
            PaymentMethodIn,
            visit.form,
            optional_blank=frozenset({"brand", "last4", "exp_month", "exp_year", "bank_name"}),
            extra={"default": visit.form.get("default") in ("on", "true", "1")},
        )
        method = payment_methods.add_payment_method(
            ctx,
            visit.principal,
            visit.current_org,
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
            provider=provider_of(request),
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"card": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        state = refused(problem, visit.form, {"payment_method_refused": "token"}).state
        return _page(request, visit, forms={"card": state})
    what = f"{method.brand or method.kind} ending {method.last4}" if method.last4 else method.kind
    ctx.done(None, status=201)
    return changed(
        request, _url(visit), lambda: _page(request, visit, notice=f"Added {what}.", status=201)
    )


@router.post(
    "/orgs/{org}/billing/payment-methods/{method_id}/remove", name="payment_method.removed"
)
def remove_payment_method(request: Request, method_id: str, visit: BillingManage) -> Response:
    try:
        payment_methods.remove_payment_method(
            visit.ctx, visit.principal, visit.current_org, method_id
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        return _page(request, visit, problem=problem)
    visit.ctx.done(None)
    return changed(
        request, _url(visit), lambda: _page(request, visit, notice="Payment method removed.")
    )


def _invoice(visit: Visit, invoice_id: str, *, lock: bool = False) -> Invoice:
    """One of this org's invoices; another org's (or none) is the API's 404."""
    return invoices.find_invoice(visit.ctx.session, visit.current_org.id, invoice_id, lock=lock)


@router.post("/orgs/{org}/invoices/{invoice_id}/pay", name="invoice.payment_attempted")
def pay_invoice(request: Request, invoice_id: str, visit: BillingManage) -> Response:
    """Charge the invoice's amount due to a payment method, in the API's two steps: the attempt
    is on record before the provider is asked, so a retry asks again under the same key."""
    ctx, org = visit.ctx, visit.current_org
    provider = provider_of(request)
    invoice = _invoice(visit, invoice_id, lock=True)
    chosen = str(visit.form.get("payment_method_id") or "") or None
    try:
        method = payment_methods.resolve_method(ctx.session, org.id, chosen)
        customer = accounts.customer_of(ctx, org, provider)
        started = payments.begin_payment(
            ctx.session,
            invoice,
            method=method,
            provider=provider,
            customer_id=customer,
            now=ctx.clock.now(),
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, problem=problem)
    attempt_id = started.attempt.id
    ctx.session.commit()
    result = provider.charge(started.charge)
    attempt, paid = payments.end_payment(
        ctx.session,
        org_id=org.id,
        attempt_id=attempt_id,
        result=result,
        now=ctx.clock.now(),
        retry_days=ctx.settings.billing_retry_days,
        automatic=False,
    )
    payments.record_payment(ctx, visit.principal, attempt, paid)
    number = paid.number or paid.id
    notice = alert = ""
    if attempt.status == "succeeded":
        notice = f"Invoice {number} paid."
    elif attempt.status == "failed":
        why = attempt.failure_message or attempt.failure_code or "declined"
        alert = f"The payment of invoice {number} failed: {why}"
    else:
        notice = f"The payment of invoice {number} is {attempt.status}; it is asked again."
    ctx.done(None)
    return changed(request, _url(visit), lambda: _page(request, visit, notice=notice, alert=alert))


@router.get("/orgs/{org}/invoices/{invoice_id}/pdf")
def invoice_pdf(invoice_id: str, visit: BillingView) -> Response:
    """The invoice as the API's PDF."""
    invoice = _invoice(visit, invoice_id)
    view = invoices.view(visit.ctx.session, invoice, org_name=visit.current_org.name)
    name = f"{invoice.number or 'draft-' + invoice.id}.pdf"
    return Response(
        render.invoice_pdf(view),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

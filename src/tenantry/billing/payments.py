"""Payments of invoices, asked for here or reported by the payment provider.

A payment is two steps around the provider call: the attempt is committed as `pending` with its
idempotency key before the call, and its outcome after. An attempt whose outcome is unknown is
asked again under the same key, never charged anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tenantry.authz.principal import Principal
from tenantry.billing import events, repository
from tenantry.billing.invoices import amount_due, audit_invoice, emit_paid, find_invoice
from tenantry.billing.models import (
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    PaymentMethod,
    SubscriptionStatus,
)
from tenantry.billing.providers import Charge, ChargeResult, ChargeStatus, PaymentProvider
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest


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
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
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
            invoice.status, invoice.paid_at, invoice.next_attempt_at = InvoiceStatus.PAID, now, None
        if (
            sub is not None
            and sub.status == SubscriptionStatus.PAST_DUE
            and invoice.kind == "subscription"
        ):
            sub.status, sub.updated_at = SubscriptionStatus.ACTIVE, now
    elif result.status is ChargeStatus.FAILED:
        attempt.completed_at = now
        invoice.attempt_count += 1
        failures = invoice.attempt_count
        if automatic and failures <= len(retry_days):
            invoice.next_attempt_at = now + timedelta(days=retry_days[failures - 1])
        else:
            invoice.next_attempt_at = None
        if (
            sub is not None
            and sub.status == SubscriptionStatus.ACTIVE
            and invoice.kind == "subscription"
        ):
            sub.status, sub.updated_at = SubscriptionStatus.PAST_DUE, now
    else:
        invoice.next_attempt_at = now + timedelta(hours=1)
    session.flush()
    _announce(session, attempt, invoice, now=now)
    return attempt, invoice


def _announce(
    session: Session, attempt: PaymentAttempt, invoice: Invoice, *, now: datetime
) -> None:
    """The payment's event once it has an outcome, and the invoice's when this paid it."""
    if attempt.status not in ("succeeded", "failed"):
        return
    kind = events.PAYMENT_SUCCEEDED if attempt.status == "succeeded" else events.PAYMENT_FAILED
    data = {
        "payment_id": attempt.id,
        "attempt": attempt.attempt,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "failure_code": attempt.failure_code,
        "failure_message": attempt.failure_message,
        "invoice": events.invoice_data(invoice),
    }
    events.emit(session, events.BillingEvent(attempt.id, kind, invoice.org_id, now, data))
    if attempt.status == "succeeded" and invoice.status == InvoiceStatus.PAID:
        emit_paid(session, invoice, now=now)


def payments(session: Session, org_id: str, *, page: PageRequest) -> Page[PaymentAttempt]:
    return repository.payments(session, org_id=org_id, page=page)


def record_payment(
    ctx: Ctx, principal: Principal, attempt: PaymentAttempt, invoice: Invoice
) -> None:
    """The one audit event of a payment request: which attempt, and how it ended."""
    audit_invoice(
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

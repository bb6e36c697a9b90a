"""Every query of billing; each reads or writes one org's rows, named by `org_id`, except the
worker's sweeps (`unscoped_…`), which look across orgs for work that is due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantry.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceLine,
    InvoiceNumber,
    InvoiceStatus,
    PaymentAttempt,
    PaymentMethod,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from tenantry.kit.pagination import Page, PageRequest, paginate


def account(session: Session, *, org_id: str) -> BillingAccount | None:
    return session.get(BillingAccount, org_id)


def subscription(session: Session, *, org_id: str, lock: bool = False) -> Subscription | None:
    stmt = select(Subscription).where(Subscription.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def unscoped_subscription_by_provider_id(
    session: Session, provider_subscription_id: str
) -> Subscription | None:
    """A webhook names the provider's subscription, not the org: this finds the org."""
    stmt = select(Subscription).where(
        Subscription.provider_subscription_id == provider_subscription_id
    )
    return session.scalars(stmt).one_or_none()


def unscoped_due_subscriptions(session: Session, *, ended_by: datetime, limit: int) -> list[str]:
    """Orgs whose subscription period ended by `ended_by` and is not yet closed (the worker's
    sweep across orgs)."""
    stmt = (
        select(Subscription.org_id)
        .where(
            Subscription.status != SubscriptionStatus.CANCELED,
            Subscription.current_period_end <= ended_by,
        )
        .order_by(Subscription.current_period_end)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def invoice(
    session: Session, *, org_id: str, invoice_id: str, lock: bool = False
) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.org_id == org_id, Invoice.id == invoice_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def unscoped_invoice(session: Session, invoice_id: str) -> Invoice | None:
    """An invoice by id alone, to find its org; the caller checks the principal belongs there."""
    return session.get(Invoice, invoice_id)


def unscoped_invoice_by_provider_id(session: Session, provider_invoice_id: str) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.provider_invoice_id == provider_invoice_id)
    return session.scalars(stmt).one_or_none()


def invoice_by_period(session: Session, *, org_id: str, period_key: str) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.org_id == org_id, Invoice.period_key == period_key)
    return session.scalars(stmt).one_or_none()


def invoices(
    session: Session, *, org_id: str, status: str | None, page: PageRequest
) -> Page[Invoice]:
    stmt = select(Invoice).where(Invoice.org_id == org_id)
    if status is not None:
        stmt = stmt.where(Invoice.status == status)
    return paginate(session, stmt, Invoice.id, page)


def unscoped_collectable(session: Session, *, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(org_id, invoice_id) of open invoices whose next automatic payment is due."""
    stmt = (
        select(Invoice.org_id, Invoice.id)
        .where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at <= now)
        .order_by(Invoice.next_attempt_at)
        .limit(limit)
    )
    return [(o, i) for o, i in session.execute(stmt)]


def schedule_uncollected(session: Session, *, org_id: str, now: datetime) -> None:
    """Open invoices never tried (none had a payment method) become due for collection."""
    session.execute(
        update(Invoice)
        .where(
            Invoice.org_id == org_id,
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at.is_(None),
            Invoice.attempt_count == 0,
        )
        .values(next_attempt_at=now)
    )


def lines_of(session: Session, *, org_id: str, invoice_id: str) -> list[InvoiceLine]:
    stmt = (
        select(InvoiceLine)
        .where(InvoiceLine.org_id == org_id, InvoiceLine.invoice_id == invoice_id)
        .order_by(InvoiceLine.position)
    )
    return list(session.scalars(stmt))


def pending_lines(session: Session, *, org_id: str) -> list[InvoiceLine]:
    stmt = (
        select(InvoiceLine)
        .where(InvoiceLine.org_id == org_id, InvoiceLine.invoice_id.is_(None))
        .order_by(InvoiceLine.created_at, InvoiceLine.id)
    )
    return list(session.scalars(stmt))


def attach_lines(
    session: Session, *, org_id: str, line_ids: Sequence[str], invoice_id: str
) -> None:
    if line_ids:
        session.execute(
            update(InvoiceLine)
            .where(InvoiceLine.org_id == org_id, InvoiceLine.id.in_(line_ids))
            .values(invoice_id=invoice_id)
        )


def credited(session: Session, *, org_id: str, invoice_id: str) -> int:
    """What credit notes have taken back from an invoice, in minor units (a positive number)."""
    stmt = select(Invoice.total).where(
        Invoice.org_id == org_id, Invoice.corrects_id == invoice_id, Invoice.kind == "credit_note"
    )
    return -sum(session.scalars(stmt))


def next_number(session: Session, *, org_id: str, prefix: str, year: int) -> int:
    """The next number of `prefix` in this org and year, under the counter row's lock."""
    stmt = (
        select(InvoiceNumber)
        .where(
            InvoiceNumber.org_id == org_id,
            InvoiceNumber.prefix == prefix,
            InvoiceNumber.year == year,
        )
        .with_for_update()
    )
    row = session.scalars(stmt).one_or_none()
    if row is None:
        row = InvoiceNumber(org_id=org_id, prefix=prefix, year=year, last=0)
        session.add(row)
    row.last += 1
    session.flush()
    return row.last


def payment_methods(session: Session, *, org_id: str) -> list[PaymentMethod]:
    stmt = (
        select(PaymentMethod)
        .where(PaymentMethod.org_id == org_id, PaymentMethod.removed_at.is_(None))
        .order_by(PaymentMethod.created_at, PaymentMethod.id)
    )
    return list(session.scalars(stmt))


def payment_method(session: Session, *, org_id: str, method_id: str) -> PaymentMethod | None:
    stmt = select(PaymentMethod).where(
        PaymentMethod.org_id == org_id,
        PaymentMethod.id == method_id,
        PaymentMethod.removed_at.is_(None),
    )
    return session.scalars(stmt).one_or_none()


def attempts_of(session: Session, *, org_id: str, invoice_id: str) -> list[PaymentAttempt]:
    stmt = (
        select(PaymentAttempt)
        .where(PaymentAttempt.org_id == org_id, PaymentAttempt.invoice_id == invoice_id)
        .order_by(PaymentAttempt.attempt)
    )
    return list(session.scalars(stmt))


def payments(session: Session, *, org_id: str, page: PageRequest) -> Page[PaymentAttempt]:
    stmt = select(PaymentAttempt).where(PaymentAttempt.org_id == org_id)
    return paginate(session, stmt, PaymentAttempt.id, page)


def attempt(session: Session, *, org_id: str, attempt_id: str) -> PaymentAttempt | None:
    stmt = select(PaymentAttempt).where(
        PaymentAttempt.org_id == org_id, PaymentAttempt.id == attempt_id
    )
    return session.scalars(stmt).one_or_none()


def webhook_event(session: Session, *, provider: str, event_id: str) -> WebhookEvent | None:
    return session.get(WebhookEvent, (provider, event_id))


# ---- webhooks (billing/webhooks.py) ----


def record_webhook_event(session: Session, event: WebhookEvent) -> bool:
    """Insert the event's row first, in a savepoint: False when its id is recorded already.
    The primary key decides, so two deliveries of one event at once record it once (the second
    waits for the first's commit on PostgreSQL; SQLite takes writers one at a time)."""
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        return False
    return True


def attempt_by_key(session: Session, *, org_id: str, idempotency_key: str) -> PaymentAttempt | None:
    stmt = select(PaymentAttempt).where(
        PaymentAttempt.org_id == org_id, PaymentAttempt.idempotency_key == idempotency_key
    )
    return session.scalars(stmt).one_or_none()

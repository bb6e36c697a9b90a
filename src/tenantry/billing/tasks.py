"""Background work of billing: closing subscription periods and collecting invoices.

`close_periods`: every subscription whose period ended (plus the invoice delay) gets its period
invoice and moves on, one subscription per transaction under its row lock. The invoice's
`(org, period_key)` is unique and the period moves in the same transaction, so the job run twice,
or by two workers at once, invoices each period once. A worker that was down catches up one
period at a time.

`collect_due`: open invoices whose automatic payment is due are charged to the org's default
payment method, each attempt committed as pending before the provider is called (see
`payments.begin_payment`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.billing import payment_methods, payments, repository, subscriptions
from tenantry.billing.models import Invoice, InvoiceStatus
from tenantry.billing.providers import PaymentProvider
from tenantry.config import Settings
from tenantry.kit.db import Database
from tenantry.tenancy.models import Organization

log = logging.getLogger("tenantry.billing")

BATCH = 100
# Periods one pass closes at most (a worker that was down a long time catches up over passes).
MAX_PERIODS_PER_PASS = 10_000


@dataclass
class BillingReport:
    invoices: list[str] = field(default_factory=list)
    periods_closed: int = 0
    payments: dict[str, str] = field(default_factory=dict)  # attempt id -> outcome
    failed: list[str] = field(default_factory=list)


def _system_event(
    session: Session,
    *,
    org_id: str,
    action: str,
    target: tuple[str, str],
    summary: dict[str, object],
    now: datetime,
) -> None:
    audit.append(
        session,
        now=now,
        org_id=org_id,
        team_id=None,
        actor_type="system",
        actor_id=None,
        action=action,
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type=target[0],
        target_id=target[1],
        summary=summary,
    )


def close_periods(
    db: Database, settings: Settings, *, now: datetime, report: BillingReport | None = None
) -> BillingReport:
    report = report or BillingReport()
    delay = timedelta(seconds=settings.billing_invoice_delay_seconds)
    while report.periods_closed < MAX_PERIODS_PER_PASS:
        with db.session(write=True) as session:
            due = repository.unscoped_due_subscriptions(session, ended_by=now - delay, limit=BATCH)
        if not due:
            break
        progressed = False
        for org_id in due:
            try:
                progressed |= _close_one(
                    db, settings, org_id=org_id, now=now, delay=delay, report=report
                )
            except Exception:
                log.exception("could not close the billing period of org %s", org_id)
                report.failed.append(org_id)
        if not progressed:
            break
    return report


def _close_one(
    db: Database,
    settings: Settings,
    *,
    org_id: str,
    now: datetime,
    delay: timedelta,
    report: BillingReport,
) -> bool:
    with db.session(write=True) as session:
        org = session.get(Organization, org_id)
        if org is None:
            return False
        closed = subscriptions.close_period(
            session, org, now=now, delay=delay, due_days=settings.billing_due_days
        )
        if closed is None:
            session.rollback()
            return False  # another worker closed it
        sub, invoice = closed
        _system_event(
            session,
            org_id=org_id,
            action="subscription.period_closed",
            target=("subscription", sub.id),
            summary={
                "invoice": invoice.id if invoice else None,
                "number": invoice.number if invoice else None,
                "total": invoice.total if invoice else 0,
                "status": sub.status,
                "plan": org.plan,
            },
            now=now,
        )
        session.commit()
    report.periods_closed += 1
    if invoice is not None:
        report.invoices.append(invoice.id)
    return True


def collect_due(
    db: Database,
    settings: Settings,
    provider: PaymentProvider,
    *,
    now: datetime,
    report: BillingReport | None = None,
) -> BillingReport:
    report = report or BillingReport()
    with db.session(write=True) as session:
        due = repository.unscoped_collectable(session, now=now, limit=BATCH)
    for org_id, invoice_id in due:
        try:
            outcome = _collect_one(
                db, settings, provider, org_id=org_id, invoice_id=invoice_id, now=now
            )
        except Exception:
            log.exception("could not collect invoice %s", invoice_id)
            report.failed.append(invoice_id)
            continue
        if outcome is not None:
            report.payments[outcome[0]] = outcome[1]
    return report


def _collect_one(
    db: Database,
    settings: Settings,
    provider: PaymentProvider,
    *,
    org_id: str,
    invoice_id: str,
    now: datetime,
) -> tuple[str, str] | None:
    with db.session(write=True) as session:
        invoice: Invoice | None = repository.invoice(
            session, org_id=org_id, invoice_id=invoice_id, lock=True
        )
        if (
            invoice is None
            or invoice.status != InvoiceStatus.OPEN
            or invoice.next_attempt_at is None
            or invoice.next_attempt_at > now
        ):
            return None  # paid, voided or taken by another worker meanwhile
        method = payment_methods.default_method(session, org_id)
        account = repository.account(session, org_id=org_id)
        if method is None or account is None or account.provider_customer_id is None:
            invoice.next_attempt_at = None  # nothing to charge: collected by hand from now on
            session.commit()
            return None
        started = payments.begin_payment(
            session,
            invoice,
            method=method,
            provider=provider,
            customer_id=account.provider_customer_id,
            now=now,
        )
        # Off the due list while the provider is asked (the outcome sets the next try); if this
        # process dies meanwhile, the pending attempt is asked again, same key, in an hour.
        invoice.next_attempt_at = now + timedelta(hours=1)
        attempt_id = started.attempt.id
        session.commit()
    result = provider.charge(started.charge)
    with db.session(write=True) as session:
        attempt, paid = payments.end_payment(
            session,
            org_id=org_id,
            attempt_id=attempt_id,
            result=result,
            now=now,
            retry_days=settings.billing_retry_days,
            automatic=True,
        )
        _system_event(
            session,
            org_id=org_id,
            action="invoice.payment_attempted",
            target=("invoice", paid.id),
            summary={
                "payment": attempt.id,
                "attempt": attempt.attempt,
                "amount": attempt.amount,
                "outcome": attempt.status,
                "invoice_status": paid.status,
            },
            now=now,
        )
        session.commit()
        return attempt.id, attempt.status


def run(
    db: Database, settings: Settings, provider: PaymentProvider, *, now: datetime
) -> BillingReport:
    """One pass: close what ended, then collect what is due (including what was just issued)."""
    report = close_periods(db, settings, now=now)
    return collect_due(db, settings, provider, now=now, report=report)

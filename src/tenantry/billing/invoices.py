"""Invoices: issuing one (its lines, the org's pending lines, its totals), finalizing, voiding,
marking uncollectible, credit notes, and reading them.

The money model is in docs/billing.md; the arithmetic is in `rating` (pure). An invoice is a
draft until finalized; finalizing gives it its number and freezes it. After that only its status
moves: open -> paid | void | uncollectible (uncollectible -> paid). Corrections are credit
notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import events, rating, repository
from tenantry.billing.accounts import account_of
from tenantry.billing.models import Invoice, InvoiceLine, InvoiceStatus, PaymentAttempt
from tenantry.billing.payment_methods import default_method
from tenantry.billing.rating import Line, LineKind
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.money import from_minor, to_minor
from tenantry.kit.pagination import Page, PageRequest
from tenantry.tenancy.models import Organization

FINAL_STATUSES = (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)


def pending_line(session: Session, org_id: str, x: Line, *, now: datetime) -> InvoiceLine:
    """A line that waits for the org's next invoice (a proration, a credit)."""
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
        status=InvoiceStatus.DRAFT,
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
    if invoice.status != InvoiceStatus.DRAFT:
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
        invoice.status = InvoiceStatus.ISSUED
    elif invoice.total <= 0:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID, now
    else:
        invoice.status = InvoiceStatus.OPEN
        invoice.due_at = now + timedelta(days=due_days)
        # Collected automatically when the org has a default payment method.
        if default_method(session, invoice.org_id) is not None:
            invoice.next_attempt_at = now
    session.flush()
    data = events.invoice_data(invoice)
    events.emit(
        session,
        events.BillingEvent(invoice.id, events.INVOICE_FINALIZED, invoice.org_id, now, data),
    )
    if invoice.status == InvoiceStatus.PAID and invoice.kind != "credit_note":
        emit_paid(session, invoice, now=now)
    return invoice


def emit_paid(session: Session, invoice: Invoice, *, now: datetime) -> None:
    events.emit(
        session,
        events.BillingEvent(
            f"{invoice.id}_paid",
            events.INVOICE_PAID,
            invoice.org_id,
            now,
            events.invoice_data(invoice),
        ),
    )


def amount_due(session: Session, invoice: Invoice) -> int:
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
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
    audit_invoice(
        ctx,
        principal,
        invoice,
        {"number": invoice.number, "total": invoice.total, "status": invoice.status},
    )
    return invoice


def audit_invoice(
    ctx: Ctx, principal: Principal, invoice: Invoice, summary: dict[str, Any]
) -> None:
    """The one audit event of a request that changed `invoice` (or paid it)."""
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
    audit_invoice(
        ctx,
        principal,
        invoice,
        {"number": invoice.number, "total": invoice.total, "status": invoice.status},
    )
    return invoice


def void(ctx: Ctx, principal: Principal, invoice: Invoice) -> Invoice:
    """Void an open invoice (nothing more will be collected); a draft is voided too, so no draft
    is ever deleted without trace."""
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN):
        raise Conflict(f"A {invoice.status} invoice cannot be voided", code="invoice_not_voidable")
    if invoice.amount_paid:
        raise Conflict(
            "Part of this invoice is paid: issue a credit note instead", code="invoice_not_voidable"
        )
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at, invoice.next_attempt_at = ctx.clock.now(), None
    audit_invoice(ctx, principal, invoice, {"number": invoice.number, "status": InvoiceStatus.VOID})
    return invoice


def mark_uncollectible(ctx: Ctx, principal: Principal, invoice: Invoice) -> Invoice:
    if invoice.status != InvoiceStatus.OPEN:
        raise Conflict(
            f"A {invoice.status} invoice cannot be marked uncollectible", code="invoice_not_open"
        )
    invoice.status, invoice.next_attempt_at = InvoiceStatus.UNCOLLECTIBLE, None
    audit_invoice(
        ctx, principal, invoice, {"number": invoice.number, "status": InvoiceStatus.UNCOLLECTIBLE}
    )
    return invoice


def credit_note(
    ctx: Ctx, principal: Principal, invoice: Invoice, *, amount: Decimal | None, reason: str
) -> Invoice:
    """A credit note taking back `amount` (all that is left, by default) of a finalized invoice.
    On an open invoice it lowers what is due; on a paid one the credit waits, as a pending line,
    for the org's next invoice."""
    if invoice.kind == "credit_note" or invoice.status not in (
        InvoiceStatus.OPEN,
        InvoiceStatus.PAID,
        InvoiceStatus.UNCOLLECTIBLE,
    ):
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
    if invoice.status == InvoiceStatus.PAID:
        pending_line(
            ctx.session,
            invoice.org_id,
            Line(LineKind.CREDIT, f"Credit note {note.number}", Decimal(1), -value, -value, -value),
            now=now,
        )
    elif amount_due(ctx.session, invoice) == 0:
        invoice.status, invoice.paid_at, invoice.next_attempt_at = InvoiceStatus.PAID, now, None
    audit_invoice(
        ctx, principal, invoice, {"credit_note": note.id, "number": note.number, "amount": wanted}
    )
    return note


def to_minor_checked(amount: Decimal, currency: str) -> int:
    try:
        return to_minor(amount, currency)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_amount") from None


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

"""Tables of billing. Every tenant-owned table leads with `org_id`.

Money is an integer of minor units (cents) beside the currency; unrounded amounts and unit prices
are kept as exact decimal text. A finalized invoice is never changed (corrections are credit
notes); `(org_id, period_key)` is unique so a period is never invoiced twice, however often the
job runs; `(invoice_id, attempt)` is unique so a payment attempt is made once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, DecimalText, UTCDateTime


def _org_fk() -> ForeignKey:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class BillingAccount(Base):
    """An org's billing settings: its tax rate and its customer at the payment provider."""

    __tablename__ = "billing_accounts"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    tax_rate: Mapped[Decimal] = mapped_column(DecimalText(), default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    provider: Mapped[str] = mapped_column(String(16))
    provider_customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"  # nothing is billed until the trial ends
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a subscription invoice's payment failed; the plan stays meanwhile
    CANCELED = "canceled"  # ended: the org is on Free, the row is kept as history


class Subscription(Base):
    """An org's subscription to a plan; one per org (a canceled one is kept as history until the
    org subscribes again, which reuses the row)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk(), unique=True)
    plan: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[str] = mapped_column(String(8))  # monthly | yearly
    status: Mapped[str] = mapped_column(String(16))  # a SubscriptionStatus
    # The first period's start: later periods keep its day of the month.
    anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_subscription_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InvoiceNumber(Base):
    """The last invoice (or credit note) number given in an org and year: numbers are gapless
    per org, taken under this row's lock at finalization."""

    __tablename__ = "invoice_numbers"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)  # INV | CN
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class InvoiceStatus(StrEnum):
    DRAFT = "draft"  # no number yet; finalizing gives it one and freezes it
    OPEN = "open"  # finalized, with something to collect
    PAID = "paid"
    VOID = "void"  # nothing more will be collected
    UNCOLLECTIBLE = "uncollectible"  # given up on; paid when paid late
    ISSUED = "issued"  # a finalized credit note


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("org_id", "period_key"),
        UniqueConstraint("org_id", "number"),
        Index("ix_invoices_org_id_created_at", "org_id", "created_at"),
        Index("ix_invoices_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    # INV-2026-0001 (CN-… for a credit note), given at finalization; none while a draft.
    number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # subscription | manual | credit_note
    kind: Mapped[str] = mapped_column(String(16))
    # draft -> open -> paid | void | uncollectible (uncollectible -> paid when paid late)
    status: Mapped[str] = mapped_column(String(16))
    # What a subscription invoice is for ("sub_…:2026-03-01T00:00:00+00:00"); unique per org.
    period_key: Mapped[str | None] = mapped_column(String(96), nullable=True)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate: Mapped[Decimal] = mapped_column(DecimalText())
    subtotal: Mapped[int] = mapped_column(BigInteger)  # minor units
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    memo: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A credit note names the invoice it corrects.
    corrects_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Automatic collection: when the worker next tries to charge, and how often it has.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    provider_invoice_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class InvoiceLine(Base):
    """A line of an invoice, or a pending line (no invoice yet: a proration waiting for the
    next subscription invoice)."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_org_id_invoice_id", "org_id", "invoice_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    invoice_id: Mapped[str | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), nullable=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(String(300))
    meter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    quantity: Mapped[Decimal] = mapped_column(DecimalText())
    unit_price: Mapped[Decimal] = mapped_column(DecimalText())
    exact: Mapped[Decimal] = mapped_column(DecimalText())
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units, rounded once
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentMethod(Base):
    """How an org pays: the provider's token and what people may see (brand and last four
    digits, or the bank's name). A card number never reaches Tenantry."""

    __tablename__ = "payment_methods"
    __table_args__ = (Index("ix_payment_methods_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    kind: Mapped[str] = mapped_column(String(16))  # card | bank_account
    brand: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    exp_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exp_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bank_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_token: Mapped[str] = mapped_column(String(128))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PaymentAttempt(Base):
    """One try to collect an invoice. It is written (as `pending`) and committed before the
    provider is called, with the idempotency key it is sent under; an outcome the provider did
    not give (a timeout) stays `unknown` and is settled by asking again under the same key,
    never by charging anew."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt"),
        Index("ix_payment_attempts_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    payment_method_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending | succeeded | failed | unknown
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookEvent(Base):
    """A payment provider's webhook event, recorded once by its id: a replay finds it here and
    does nothing."""

    __tablename__ = "billing_webhook_events"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The object the event was about (a subscription or invoice id at the provider); the
    # payload itself is not kept: it may hold the customer's personal details.
    object_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(300))

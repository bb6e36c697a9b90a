"""Bodies of the billing endpoints. Money travels as decimal strings in the currency's major
unit ("29.00"), with the integer of minor units beside it where a program wants to add up."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from tenantry.kit.money import UNIT_PRICE_PLACES, round_money
from tenantry.kit.schemas import Input, Output, decimal_in

Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Last4 = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
MAX_MANUAL_LINES = 100
# A manual line's amount (quantity times unit price) is at most this, in the currency's major unit,
# and at least one cent either way: 100 lines of it, in minor units, fit the amount columns
# (64-bit integers) many times over.
MAX_LINE_AMOUNT = Decimal(1_000_000_000)
MIN_LINE_AMOUNT = Decimal("0.01")
MAX_LINE_QUANTITY = Decimal(1_000_000_000)


# ---- plans ----


class PlanPriceOut(BaseModel):
    key: str
    name: str
    currency: str
    monthly_price: str
    yearly_price: str
    quotas: dict[str, str | None]  # quota -> limit (None: unlimited)
    overage_rates: dict[str, str]


class PlansOut(BaseModel):
    plans: list[PlanPriceOut]
    overage_rates: dict[str, str]


# ---- subscriptions ----


class SubscribeIn(Input):
    plan: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    cycle: Literal["monthly", "yearly"] = "monthly"
    trial_days: int | None = Field(
        default=None, description="Start with a free trial (new subscriptions)"
    )


class SubscriptionOut(Output):
    id: str
    org_id: str
    plan: str
    cycle: str
    status: str
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    canceled_at: datetime | None
    trial_end: datetime | None
    provider: str
    provider_subscription_id: str | None
    created_at: datetime


class OrgSubscriptionOut(BaseModel):
    org_id: str
    plan: str  # the plan the org is on now (Free without a subscription)
    subscription: SubscriptionOut | None


class LineOut(BaseModel):
    kind: str
    description: str
    meter: str | None
    quantity: str
    unit_price: str
    amount: str
    amount_minor: int
    period_start: datetime | None
    period_end: datetime | None


class PaymentOut(Output):
    id: str
    invoice_id: str
    attempt: int
    payment_method_id: str | None
    amount: str
    amount_minor: int
    currency: str
    status: str
    provider: str
    provider_payment_id: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    completed_at: datetime | None


class InvoiceOut(BaseModel):
    id: str
    org_id: str
    number: str | None
    kind: str
    status: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    tax_rate: str
    subtotal: str
    tax: str
    total: str
    amount_paid: str
    amount_due: str
    total_minor: int
    memo: str | None
    corrects_id: str | None
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    next_attempt_at: datetime | None
    lines: list[LineOut] = Field(default_factory=list)
    payments: list[PaymentOut] = Field(default_factory=list)


class InvoiceSummaryOut(BaseModel):
    id: str
    number: str | None
    kind: str
    status: str
    currency: str
    total: str
    amount_due: str
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    due_at: datetime | None


class SubscriptionChangeOut(BaseModel):
    change: str
    subscription: SubscriptionOut
    invoice: InvoiceOut | None
    prorations: list[LineOut]


class PreviewOut(BaseModel):
    org_id: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[LineOut]
    tax_rate: str
    subtotal: str
    tax: str
    total: str


# ---- invoices ----


class ManualLineIn(Input):
    description: Text
    quantity: Annotated[
        Decimal, decimal_in(gt=0, le=MAX_LINE_QUANTITY, decimal_places=UNIT_PRICE_PLACES)
    ] = Decimal(1)
    unit_price: Annotated[
        Decimal,
        decimal_in(ge=-MAX_LINE_AMOUNT, le=MAX_LINE_AMOUNT, decimal_places=UNIT_PRICE_PLACES),
    ] = Field(
        description=f"At most {UNIT_PRICE_PLACES} decimal places; negative for a discount. The "
        f"line's amount, quantity * unit_price, is {MIN_LINE_AMOUNT} to {MAX_LINE_AMOUNT:,} "
        "either way"
    )

    @field_validator("unit_price")
    @classmethod
    def _amount_in_bounds(cls, unit_price: Decimal, info: ValidationInfo) -> Decimal:
        quantity = info.data.get("quantity")
        if quantity is None:  # refused already
            return unit_price
        amount = abs(round_money(quantity * unit_price))
        if amount > MAX_LINE_AMOUNT:
            raise ValueError(
                f"quantity * unit_price must be at most {MAX_LINE_AMOUNT:,} either way"
            )
        if amount < MIN_LINE_AMOUNT:
            raise ValueError(
                f"quantity * unit_price must be at least {MIN_LINE_AMOUNT} either way "
                "(it rounds to 0.00)"
            )
        return unit_price


class ManualInvoiceIn(Input):
    lines: list[ManualLineIn] = Field(min_length=1, max_length=MAX_MANUAL_LINES)
    memo: Annotated[str, StringConstraints(max_length=2000)] | None = None
    finalize: bool = Field(default=False, description="Finalize at once instead of a draft")


class CreditNoteIn(Input):
    reason: Text
    amount: Annotated[Decimal, decimal_in(gt=0, le=MAX_LINE_AMOUNT)] | None = Field(
        default=None,
        description="In the invoice's currency, to its minor unit (0.01); all that is left by "
        "default",
    )


class PayIn(Input):
    payment_method_id: Token | None = Field(
        default=None, description="The default method if left out"
    )


class PaymentResultOut(BaseModel):
    payment: PaymentOut
    invoice: InvoiceOut


# ---- account and payment methods ----


class BillingAccountIn(Input):
    tax_rate: Annotated[Decimal, decimal_in(ge=0, lt=1, max_digits=8)]


class BillingAccountOut(BaseModel):
    org_id: str
    tax_rate: str
    currency: str
    provider: str
    provider_customer_id: str | None


class PaymentMethodIn(Input):
    token: Token = Field(description="The payment provider's token for the method (pm_… on Stripe)")
    kind: Literal["card", "bank_account"] = "card"
    brand: Annotated[str, StringConstraints(max_length=32)] | None = None
    last4: Last4 | None = None
    exp_month: int | None = Field(default=None, ge=1, le=12)
    exp_year: int | None = Field(default=None, ge=2000, le=2100)
    bank_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    default: bool = False


class PaymentMethodOut(Output):
    id: str
    kind: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    bank_name: str | None
    provider: str
    is_default: bool
    created_at: datetime


class WebhookOut(BaseModel):
    received: bool
    duplicate: bool
    outcome: str

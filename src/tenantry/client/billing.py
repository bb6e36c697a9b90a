"""SDK calls of billing (mixed into `tenantry.client.api.Api`); see that module's conventions.

The price list (`list_plans`, no sign-in), an org's subscription (`get_subscription`,
`subscribe`, `cancel_subscription`), billing account (`get_billing_account`, `set_tax_rate`),
invoices (`list_invoices`, `upcoming_invoice`, `create_invoice`, `get_invoice`, `invoice_pdf`,
`download_invoice_pdf`, `invoice_html`, `finalize_invoice`, `void_invoice`,
`mark_invoice_uncollectible`, `credit_invoice`, `pay_invoice`), payment methods and payments.

Money travels as decimal strings in the currency's major unit ("29.00"), with integer minor units
beside it where a program adds up (`total_minor`, `amount_minor`). Amounts passed in may be
`Decimal`, `int` or decimal strings; they are sent as strings, so nothing passes through a float.
An invoice is named by its id alone (`in_…`); another org's invoice answers `NotFound`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import IO, Any, Literal

import httpx

from tenantry.client._calls import (
    API,
    Call,
    Download,
    download,
    endpoint,
    fields,
    model,
    nothing,
    page_query,
    paged,
    segment,
    text,
)
from tenantry.client.models import Page, Result

Amount = Decimal | int | str
BillingCycle = Literal["monthly", "yearly"]
InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible", "issued"]
PaymentMethodKind = Literal["card", "bank_account"]

# ---- results ----


class PlanPrice(Result):
    key: str
    name: str
    currency: str
    monthly_price: str
    yearly_price: str
    quotas: dict[str, str | None]  # quota -> limit; None: unlimited
    overage_rates: dict[str, str]  # meter -> price per unit; empty: quotas are hard


class PriceList(Result):
    plans: list[PlanPrice]
    overage_rates: dict[str, str]  # the standard rates, per unit of each meter


class Subscription(Result):
    id: str
    org_id: str
    plan: str
    cycle: str
    status: str
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    canceled_at: datetime | None = None
    trial_end: datetime | None = None
    provider: str
    provider_subscription_id: str | None = None
    created_at: datetime


class OrgSubscription(Result):
    org_id: str
    plan: str  # the plan the org is on now (Free without a subscription)
    subscription: Subscription | None = None


class InvoiceLine(Result):
    kind: str
    description: str
    meter: str | None = None
    quantity: str
    unit_price: str
    amount: str
    amount_minor: int
    period_start: datetime | None = None
    period_end: datetime | None = None


class Payment(Result):
    id: str
    invoice_id: str
    attempt: int
    payment_method_id: str | None = None
    amount: str
    amount_minor: int
    currency: str
    status: str  # pending | succeeded | failed | unknown
    provider: str
    provider_payment_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    created_at: datetime
    completed_at: datetime | None = None


class Invoice(Result):
    id: str
    org_id: str
    number: str | None = None  # given when finalized
    kind: str
    status: str
    currency: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    tax_rate: str
    subtotal: str
    tax: str
    total: str
    amount_paid: str
    amount_due: str
    total_minor: int
    memo: str | None = None
    corrects_id: str | None = None  # a credit note's invoice
    created_at: datetime
    finalized_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    next_attempt_at: datetime | None = None
    lines: list[InvoiceLine] = []
    payments: list[Payment] = []


class InvoiceSummary(Result):
    id: str
    number: str | None = None
    kind: str
    status: str
    currency: str
    total: str
    amount_due: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    created_at: datetime
    due_at: datetime | None = None


class SubscriptionChange(Result):
    change: str
    subscription: Subscription
    invoice: Invoice | None = None  # what the change charged or credited at once, if anything
    prorations: list[InvoiceLine] = []


class InvoicePreview(Result):
    org_id: str
    currency: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    lines: list[InvoiceLine]
    tax_rate: str
    subtotal: str
    tax: str
    total: str


class PaymentResult(Result):
    payment: Payment
    invoice: Invoice

    @property
    def succeeded(self) -> bool:
        return self.payment.status == "succeeded"


class BillingAccount(Result):
    org_id: str
    tax_rate: str
    currency: str
    provider: str
    provider_customer_id: str | None = None


class PaymentMethod(Result):
    id: str
    kind: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    bank_name: str | None = None
    provider: str
    is_default: bool
    created_at: datetime


def invoice_line(description: str, unit_price: Amount, quantity: Amount = 1) -> dict[str, str]:
    """One line of `create_invoice`: `quantity` x `unit_price` (a negative price is a discount)."""
    return {"description": description, "quantity": str(quantity), "unit_price": str(unit_price)}


def _content(response: httpx.Response) -> bytes:
    return response.content


class BillingCalls:
    """Routes of billing, described once for both clients."""

    # ---- the price list and the subscription ----

    @endpoint
    def list_plans(self) -> Call[PriceList]:
        """The plans, their monthly and yearly prices, quotas and overage rates (no sign-in)."""
        return Call("GET", f"{API}/billing/plans", model(PriceList), auth=False)

    @endpoint
    def get_subscription(self, org: str) -> Call[OrgSubscription]:
        """The org's plan and subscription (`subscription` is None on Free)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/subscription", model(OrgSubscription))

    @endpoint
    def subscribe(
        self,
        org: str,
        plan: str,
        *,
        cycle: BillingCycle = "monthly",
        trial_days: int | None = None,
    ) -> Call[SubscriptionChange]:
        """Subscribe to a plan, or change plan or cycle (prorated), or take back a cancellation
        at the period's end by subscribing to the same plan again."""
        body = fields(plan=plan, cycle=cycle, trial_days=trial_days)
        return Call(
            "PUT", f"{API}/orgs/{segment(org)}/subscription", model(SubscriptionChange), body=body
        )

    @endpoint
    def cancel_subscription(
        self, org: str, *, immediately: bool = False
    ) -> Call[SubscriptionChange]:
        """Cancel at the end of the paid period, or `immediately` (back to Free now)."""
        params = {"immediately": "true"} if immediately else {}
        return Call(
            "DELETE",
            f"{API}/orgs/{segment(org)}/subscription",
            model(SubscriptionChange),
            params=params,
        )

    # ---- billing account ----

    @endpoint
    def get_billing_account(self, org: str) -> Call[BillingAccount]:
        return Call("GET", f"{API}/orgs/{segment(org)}/billing/account", model(BillingAccount))

    @endpoint
    def set_tax_rate(self, org: str, tax_rate: Amount) -> Call[BillingAccount]:
        """A fraction (0.2 is 20%), used by invoices finalized from now on."""
        return Call(
            "PATCH",
            f"{API}/orgs/{segment(org)}/billing/account",
            model(BillingAccount),
            body={"tax_rate": str(tax_rate)},
        )

    # ---- invoices of an org ----

    @endpoint
    def list_invoices(
        self,
        org: str,
        *,
        status: InvoiceStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[InvoiceSummary]]:
        """The org's invoices and credit notes, oldest first."""
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/invoices",
            model(Page[InvoiceSummary]),
            params=page_query(limit, cursor, status=status),
        )

    iter_invoices = paged(list_invoices)

    @endpoint
    def upcoming_invoice(self, org: str) -> Call[InvoicePreview]:
        """What the current period's invoice would say if the period ended now (a preview:
        nothing is written)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/invoices/upcoming", model(InvoicePreview))

    @endpoint
    def create_invoice(
        self,
        org: str,
        lines: list[dict[str, str]],
        *,
        memo: str | None = None,
        finalize: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[Invoice]:
        """A manual invoice of `lines` (see `invoice_line`): a draft, or numbered and open at
        once with `finalize`."""
        body = fields(lines=lines, memo=memo, finalize=finalize)
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/invoices",
            model(Invoice),
            body=body,
            idempotency_key=idempotency_key,
        )

    # ---- one invoice ----

    @endpoint
    def get_invoice(self, invoice_id: str) -> Call[Invoice]:
        """An invoice (or credit note) with its lines and payment attempts."""
        return Call("GET", f"{API}/invoices/{segment(invoice_id)}", model(Invoice))

    @endpoint
    def invoice_pdf(self, invoice_id: str) -> Call[bytes]:
        """The invoice as PDF bytes."""
        return Call("GET", f"{API}/invoices/{segment(invoice_id)}/pdf", _content)

    @download
    def download_invoice_pdf(self, invoice_id: str, file: IO[bytes]) -> Download:
        """Write the invoice's PDF to a binary file; returns the number of bytes written."""
        call: Call[None] = Call("GET", f"{API}/invoices/{segment(invoice_id)}/pdf", nothing)
        return Download(call, file)

    @endpoint
    def invoice_html(self, invoice_id: str) -> Call[str]:
        """The invoice as a self-contained, printable HTML page."""
        return Call("GET", f"{API}/invoices/{segment(invoice_id)}/html", text)

    @endpoint
    def finalize_invoice(self, invoice_id: str) -> Call[Invoice]:
        """Give a draft its number and freeze it (it is open for payment from then on)."""
        return Call("POST", f"{API}/invoices/{segment(invoice_id)}/finalize", model(Invoice))

    @endpoint
    def void_invoice(self, invoice_id: str) -> Call[Invoice]:
        """Void a draft, or an open invoice with nothing paid on it."""
        return Call("POST", f"{API}/invoices/{segment(invoice_id)}/void", model(Invoice))

    @endpoint
    def mark_invoice_uncollectible(self, invoice_id: str) -> Call[Invoice]:
        """Stop collecting an open invoice (it can still be paid later)."""
        return Call(
            "POST", f"{API}/invoices/{segment(invoice_id)}/mark-uncollectible", model(Invoice)
        )

    @endpoint
    def credit_invoice(
        self,
        invoice_id: str,
        *,
        reason: str,
        amount: Amount | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Invoice]:
        """Issue a credit note against a finalized invoice: `amount`, or all that is left.
        Returns the credit note (its `corrects_id` is the invoice)."""
        body = fields(reason=reason, amount=None if amount is None else str(amount))
        return Call(
            "POST",
            f"{API}/invoices/{segment(invoice_id)}/credit-notes",
            model(Invoice),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def pay_invoice(
        self,
        invoice_id: str,
        *,
        payment_method_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[PaymentResult]:
        """Charge the amount due to a payment method (the org's default unless named). A
        declined charge is an answer, not an error: check `result.succeeded`, and
        `result.payment.status` (`failed`, or `unknown` when the provider gave no answer; paying
        again then asks the provider about that same attempt and never charges twice)."""
        body: dict[str, Any] = fields(payment_method_id=payment_method_id)
        return Call(
            "POST",
            f"{API}/invoices/{segment(invoice_id)}/pay",
            model(PaymentResult),
            body=body,
            idempotency_key=idempotency_key,
        )

    # ---- payment methods and payments ----

    @endpoint
    def list_payment_methods(self, org: str) -> Call[Page[PaymentMethod]]:
        """Every payment method of the org (one page: an org has few)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/payment-methods", model(Page[PaymentMethod]))

    @endpoint
    def add_payment_method(
        self,
        org: str,
        token: str,
        *,
        kind: PaymentMethodKind = "card",
        brand: str | None = None,
        last4: str | None = None,
        exp_month: int | None = None,
        exp_year: int | None = None,
        bank_name: str | None = None,
        default: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[PaymentMethod]:
        """Add a method by the payment provider's token (`pm_…` on Stripe). The description
        (brand, last4, expiry) is what the provider reports; the local provider takes it as
        given. The org's first method becomes its default, as does one added with `default`."""
        body = fields(
            token=token,
            kind=kind,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            bank_name=bank_name,
            default=default,
        )
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/payment-methods",
            model(PaymentMethod),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def remove_payment_method(self, org: str, method_id: str) -> Call[None]:
        return Call(
            "DELETE", f"{API}/orgs/{segment(org)}/payment-methods/{segment(method_id)}", nothing
        )

    @endpoint
    def list_payments(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Payment]]:
        """Every payment attempt of the org, oldest first: the payment history."""
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/payments",
            model(Page[Payment]),
            params=page_query(limit, cursor),
        )

    iter_payments = paged(list_payments)

"""Payment providers behind one interface: `local` (the default) and `stripe`.

Tenantry rates and issues every invoice itself; a provider keeps the customer and its payment
methods, mirrors the subscription, and collects invoices. Every call that could charge or create
something carries an idempotency key of the form `org:invoice:operation` (or `org:subscription:
operation`), so a call repeated after a timeout is answered, not done twice.

`local` records payments without moving money, for self-hosting without a processor and for
tests. It charges every payment method except one whose token is `local_declines`, which it
declines like a card that has no funds, so the retry path can be tried by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from tenantry.kit.errors import Problem

if TYPE_CHECKING:
    from tenantry.config import Settings

LOCAL_DECLINING_TOKEN = "local_declines"


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The provider gave no answer (timeout, connection lost): it may or may not have charged.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    provider_payment_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class CardDetails:
    """What may be shown of a payment method, as the provider describes it."""

    kind: str  # card | bank_account
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    bank_name: str | None = None


@dataclass(frozen=True)
class Charge:
    """One collection of one invoice."""

    org_id: str
    customer_id: str
    payment_method_token: str
    amount: int  # minor units
    currency: str
    idempotency_key: str
    description: str
    invoice_id: str


@dataclass(frozen=True)
class SubscriptionMirror:
    """What the provider's copy of a subscription carries."""

    org_id: str
    customer_id: str
    plan: str
    cycle: str
    cancel_at_period_end: bool
    provider_subscription_id: str | None


class ProviderError(Problem):
    """The provider refused a request (not a charge declined: that is a ChargeResult)."""

    status, code, title = 502, "payment_provider_error", "Payment provider error"


class PaymentProvider(Protocol):
    name: str

    def ensure_customer(self, *, org_id: str, name: str, email: str | None) -> str:
        """The provider's customer id for this org, made on first use."""
        ...

    def describe_payment_method(
        self, *, customer_id: str, token: str, offered: CardDetails
    ) -> CardDetails:
        """Attach the provider's payment-method token to the customer and say what it is.
        `offered` is what the caller said (trusted only by the local provider)."""
        ...

    def charge(self, charge: Charge) -> ChargeResult:
        """Collect `charge.amount`; an answer under an idempotency key already used repeats
        the first outcome."""
        ...

    def sync_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> str | None:
        """Create or update the provider's copy; returns its id (None: the provider keeps none)."""
        ...

    def cancel_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> None: ...


class LocalProvider:
    """Records payments without a processor: tokens are whatever the caller names them."""

    name = "local"

    def ensure_customer(self, *, org_id: str, name: str, email: str | None) -> str:
        return f"local_{org_id}"

    def describe_payment_method(
        self, *, customer_id: str, token: str, offered: CardDetails
    ) -> CardDetails:
        return offered

    def charge(self, charge: Charge) -> ChargeResult:
        if charge.payment_method_token == LOCAL_DECLINING_TOKEN:
            return ChargeResult(
                ChargeStatus.FAILED,
                failure_code="card_declined",
                failure_message="The card was declined (local provider test token)",
            )
        # The same key names the same payment, as a processor's idempotency would.
        digest = hashlib.sha256(charge.idempotency_key.encode()).hexdigest()[:24]
        return ChargeResult(ChargeStatus.SUCCEEDED, provider_payment_id=f"local_{digest}")

    def sync_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> str | None:
        return None

    def cancel_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> None:
        return None


def provider_from_settings(settings: Settings) -> PaymentProvider:
    """The provider `TENANTRY_PAYMENT_PROVIDER` names."""
    if settings.payment_provider == "stripe":
        from tenantry.billing.stripe import StripeProvider  # the stripe library loads on demand

        return StripeProvider.from_settings(settings)
    return LocalProvider()

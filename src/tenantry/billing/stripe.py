"""The Stripe payment provider, over the official `stripe` library (`stripe.StripeClient`).

What lives where (docs/billing.md, "Stripe"): Tenantry rates, numbers and issues every invoice
itself. Stripe holds the customer and its payment methods, a *mirror* of the subscription (one
zero-amount recurring price per plan and cycle, with the org, plan and cycle in its metadata, so
Stripe's customer portal and webhooks know the state while Stripe never bills the base fee a
second time), and collects each Tenantry invoice with a PaymentIntent confirmed off-session.

Every call that creates or charges carries the idempotency key the service chose
(`org:invoice:pay-N`, `org:subscription:...`): asked again under the same key after a timeout,
Stripe answers with the first outcome, so a payment is never taken twice.

Outcomes of a charge: paid -> SUCCEEDED; declined (a card error, or a PaymentIntent left
needing another payment method) -> FAILED with Stripe's code and message; no answer (timeout,
connection lost, rate limited, Stripe's 5xx) -> UNKNOWN, which the service settles by asking
again under the same key. Any other refusal is a `ProviderError`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import stripe

from tenantry.billing.providers import (
    CardDetails,
    Charge,
    ChargeResult,
    ChargeStatus,
    ProviderError,
    SubscriptionMirror,
)
from tenantry.kit.errors import Unprocessable

if TYPE_CHECKING:
    from tenantry.config import Settings

log = logging.getLogger("tenantry.billing.stripe")

# Long enough for a card network's answer, short enough that a worker is not held for the
# library's default 80 s; a timeout is an UNKNOWN outcome, settled under the same key later.
TIMEOUT_SECONDS = 30.0
# The library's own retries reuse the request's idempotency key, so they are safe for charges.
MAX_NETWORK_RETRIES = 2
# The mirror's prices are zero; their currency only has to be one Stripe accepts.
MIRROR_CURRENCY = "usd"
INTERVALS = {"monthly": "month", "yearly": "year"}
# A PaymentIntent in these states has been declined or needs the customer, who is not there.
DECLINED_STATES = frozenset(
    {"requires_payment_method", "requires_action", "requires_confirmation", "canceled"}
)


def price_lookup_key(plan: str, cycle: str) -> str:
    """The lookup key of the mirror's price for a plan and cycle (one per Stripe account)."""
    return f"tenantry_{plan}_{cycle}"


def product_id(plan: str) -> str:
    """The Stripe product of a plan: a fixed id, so it is made once however often we ask."""
    return f"tenantry_plan_{plan}"


def _no_answer(exc: stripe.StripeError) -> bool:
    """Stripe may or may not have done it: ask again later under the same key."""
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return True
    return exc.http_status is not None and exc.http_status >= 500


def _refused(exc: stripe.StripeError, what: str) -> ProviderError:
    code = exc.code or type(exc).__name__
    return ProviderError(
        f"Stripe refused to {what}: {exc.user_message or code}", extra={"provider_code": code}
    )


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = MAX_NETWORK_RETRIES,
    ) -> None:
        # httpx is already Tenantry's HTTP library; tests put a fake Stripe behind it at the
        # transport layer (`http_client`), so every request goes through the library as in use.
        client = http_client or stripe.HTTPXClient(timeout=TIMEOUT_SECONDS, allow_sync_methods=True)
        self._stripe = stripe.StripeClient(
            api_key, http_client=client, max_network_retries=max_network_retries
        )
        self._prices: dict[str, str] = {}  # lookup key -> price id, once found or made

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeProvider:
        if settings.stripe_api_key is None:
            raise ValueError(
                "TENANTRY_PAYMENT_PROVIDER=stripe needs TENANTRY_STRIPE_API_KEY (a secret key)"
            )
        return cls(settings.stripe_api_key.get_secret_value())

    # ---- customers and payment methods ----

    def ensure_customer(self, *, org_id: str, name: str, email: str | None) -> str:
        params: dict[str, Any] = {"name": name, "metadata": {"org_id": org_id}}
        if email:
            params["email"] = email
        try:
            customer = self._stripe.v1.customers.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"{org_id}:customer:create"},
            )
        except stripe.StripeError as exc:
            raise _refused(exc, "create the customer") from exc
        return customer.id

    def describe_payment_method(
        self, *, customer_id: str, token: str, offered: CardDetails
    ) -> CardDetails:
        # What the caller offered is not trusted: brand, last four and expiry come from Stripe.
        try:
            method = self._stripe.v1.payment_methods.attach(
                token,
                {"customer": customer_id},
                {"idempotency_key": f"{customer_id}:payment_method:attach-{token}"},
            )
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            # A bad, used or declined token is the caller's to fix, not a provider outage.
            raise Unprocessable(
                f"Stripe refused the payment method: {exc.user_message or exc.code}",
                code="payment_method_refused",
            ) from exc
        except stripe.StripeError as exc:
            raise _refused(exc, "attach the payment method") from exc
        if method.type == "card" and method.card is not None:
            card = method.card
            return CardDetails(
                kind="card",
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
            )
        if method.type == "us_bank_account" and method.us_bank_account is not None:
            bank = method.us_bank_account
            return CardDetails(kind="bank_account", bank_name=bank.bank_name, last4=bank.last4)
        if method.type == "sepa_debit" and method.sepa_debit is not None:
            return CardDetails(kind="bank_account", last4=method.sepa_debit.last4)
        raise Unprocessable(
            f"Payment methods of type {method.type} are not supported",
            code="payment_method_refused",
        )

    # ---- charges ----

    def charge(self, charge: Charge) -> ChargeResult:
        params: dict[str, Any] = {
            "amount": charge.amount,
            "currency": charge.currency,
            "customer": charge.customer_id,
            "payment_method": charge.payment_method_token,
            "confirm": True,
            "off_session": True,
            "description": charge.description,
            "metadata": {
                "org_id": charge.org_id,
                "invoice_id": charge.invoice_id,
                "idempotency_key": charge.idempotency_key,
            },
        }
        try:
            intent = self._stripe.v1.payment_intents.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": charge.idempotency_key},
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        except stripe.StripeError as exc:
            if _no_answer(exc):
                log.warning("no answer from Stripe for %s: %s", charge.idempotency_key, exc)
                return ChargeResult(ChargeStatus.UNKNOWN)
            raise _refused(exc, "take the payment") from exc
        if intent.status == "processing":
            # A replay under the key repeats the first answer, which may be stale for a payment
            # that takes days (bank debits): read its state now.
            intent = self._current(intent)
        return self._outcome(intent)

    def _current(self, intent: stripe.PaymentIntent) -> stripe.PaymentIntent:
        try:
            return self._stripe.v1.payment_intents.retrieve(intent.id)
        except stripe.StripeError:
            return intent  # still processing as far as we know

    def _outcome(self, intent: stripe.PaymentIntent) -> ChargeResult:
        if intent.status == "succeeded":
            return ChargeResult(ChargeStatus.SUCCEEDED, provider_payment_id=intent.id)
        if intent.status in DECLINED_STATES:
            error = intent.last_payment_error
            code = (error.decline_code or error.code) if error else None
            return ChargeResult(
                ChargeStatus.FAILED,
                provider_payment_id=intent.id,
                failure_code=code or intent.status,
                failure_message=(error.message if error else None)
                or f"The payment was not completed ({intent.status})",
            )
        # processing, requires_capture: not paid yet, not declined either.
        return ChargeResult(ChargeStatus.UNKNOWN, provider_payment_id=intent.id)

    @staticmethod
    def _declined(exc: stripe.CardError) -> ChargeResult:
        error = exc.error
        intent_id = None
        if error is not None and error.payment_intent is not None:
            intent_id = error.payment_intent.id
        decline = error.decline_code if error is not None else None
        return ChargeResult(
            ChargeStatus.FAILED,
            provider_payment_id=intent_id,
            failure_code=decline or exc.code or "card_declined",
            failure_message=(exc.user_message or "The card was declined")[:300],
        )

    # ---- the subscription mirror ----

    def sync_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> str | None:
        price = self._price(mirror.plan, mirror.cycle)
        metadata = {"org_id": mirror.org_id, "plan": mirror.plan, "cycle": mirror.cycle}
        try:
            current = None
            if mirror.provider_subscription_id is not None:
                current = self._stripe.v1.subscriptions.retrieve(mirror.provider_subscription_id)
            if current is None or current.status in ("canceled", "incomplete_expired"):
                # A canceled subscription cannot come back at Stripe: subscribing again after a
                # cancellation makes a new mirror.
                created = self._stripe.v1.subscriptions.create(
                    {
                        "customer": mirror.customer_id,
                        "items": [{"price": price}],
                        "metadata": metadata,
                        "cancel_at_period_end": mirror.cancel_at_period_end,
                    },
                    {"idempotency_key": idempotency_key},
                )
                return created.id
            item = current["items"].data[0]
            self._stripe.v1.subscriptions.update(
                current.id,
                {
                    "items": [{"id": item.id, "price": price}],
                    "metadata": metadata,
                    "cancel_at_period_end": mirror.cancel_at_period_end,
                    # The prices are zero: nothing to prorate (Tenantry prorates its own invoice).
                    "proration_behavior": "none",
                },
                {"idempotency_key": idempotency_key},
            )
            return current.id
        except stripe.StripeError as exc:
            raise _refused(exc, "update the subscription") from exc

    def cancel_subscription(self, mirror: SubscriptionMirror, *, idempotency_key: str) -> None:
        if mirror.provider_subscription_id is None:
            return
        try:
            self._stripe.v1.subscriptions.cancel(
                mirror.provider_subscription_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return  # gone already (canceled at Stripe, say from its dashboard)
            raise _refused(exc, "cancel the subscription") from exc
        except stripe.StripeError as exc:
            raise _refused(exc, "cancel the subscription") from exc

    def _price(self, plan: str, cycle: str) -> str:
        """The zero-amount recurring price of a plan and cycle, found by its lookup key or made."""
        key = price_lookup_key(plan, cycle)
        found = self._prices.get(key)
        if found is not None:
            return found
        try:
            listed = self._stripe.v1.prices.list({"lookup_keys": [key], "active": True, "limit": 1})
            if listed.data:
                found = listed.data[0].id
            else:
                self._ensure_product(plan)
                made = self._stripe.v1.prices.create(
                    {
                        "product": product_id(plan),
                        "currency": MIRROR_CURRENCY,
                        "unit_amount": 0,
                        "recurring": {"interval": INTERVALS[cycle]},
                        "lookup_key": key,
                        "metadata": {"plan": plan, "cycle": cycle},
                    },
                    {"idempotency_key": f"price:{key}"},
                )
                found = made.id
        except stripe.StripeError as exc:
            raise _refused(exc, "set up the plan's price") from exc
        self._prices[key] = found
        return found

    def _ensure_product(self, plan: str) -> None:
        try:
            self._stripe.v1.products.create(
                {"id": product_id(plan), "name": f"Tenantry {plan}", "metadata": {"plan": plan}},
                {"idempotency_key": f"product:{product_id(plan)}"},
            )
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_already_exists":
                raise

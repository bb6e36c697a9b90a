"""Stripe's webhooks: verified, recorded once by event id, and reflected on the org's billing.

Verification: the HMAC-SHA256 signature of the `Stripe-Signature` header (`t=...,v1=...`) is
checked by the official library (`stripe.WebhookSignature.verify_header`) against
`TENANTRY_STRIPE_WEBHOOK_SECRET`, whichever payment provider is active; without a secret the
endpoint answers 503. The timestamp's age is checked here, against the service's `Clock`, not
by the library: the library compares with the machine's time, which would make the tolerance
the one rule of billing that a moved (or frozen) clock cannot reach, and tests of a stale
signature would have to wait. In production the two clocks are the same.

Once: each event's row (`billing_webhook_events`, keyed by provider and event id) is inserted
first, in the request's transaction; a delivery whose id is there already does nothing. The
row is committed with the changes the event made, so an event whose handling failed is not
recorded and Stripe's next delivery handles it.

Events (any other is recorded as ignored):
- `customer.subscription.updated`: the mirror's `cancel_at_period_end`, a `past_due`/`unpaid`
  status (our subscription becomes past due) or `canceled` (ended, as below), and a plan or
  cycle changed at Stripe (its customer portal), applied with Tenantry's proration rules. An
  event older than our subscription's last change is ignored: Stripe does not deliver in order.
- `customer.subscription.deleted`: the subscription ends now and the org drops to Free at once
  (`subscriptions.end_subscription`).
- `invoice.paid`, `invoice.payment_failed`: a Stripe invoice that names one of ours (metadata
  `invoice_id`, or our `provider_invoice_id`) settles its payment. The mirror's own zero-amount
  invoices name none and are ignored.
- `payment_intent.succeeded`, `payment_intent.payment_failed`: the answer to one of our
  charges (metadata `idempotency_key`) whose outcome we did not learn (a timeout).

Each event that changes an org writes one audit event in that org: actor `system`, action
`billing_webhook.received` (the route's), the event's type and id in its summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import stripe
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.billing import invoices, payments, repository, subscriptions
from tenantry.billing.models import (
    Invoice,
    InvoiceStatus,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from tenantry.billing.providers import ChargeResult, ChargeStatus
from tenantry.billing.rating import Cycle
from tenantry.billing.stripe import price_lookup_key
from tenantry.kit.clock import Clock, as_utc
from tenantry.kit.context import Ctx, Origin
from tenantry.kit.errors import BadRequest, Problem
from tenantry.plans.catalog import DEFAULT_PLAN, PLANS
from tenantry.tenancy import repository as tenancy_repository

if TYPE_CHECKING:
    from tenantry.config import Settings

PROVIDER = "stripe"
ACTION = "billing_webhook.received"  # the route's name, as every audit action of a route is
MAX_OUTCOME = 300


class WebhooksNotConfigured(Problem):
    status, code, title = 503, "webhooks_not_configured", "Webhooks not configured"


class WebhookSignatureInvalid(BadRequest):
    code, title = "webhook_signature_invalid", "Invalid webhook signature"


class WebhookTimestampStale(BadRequest):
    code, title = "webhook_timestamp_stale", "Stale webhook"


class MalformedWebhook(BadRequest):
    code, title = "malformed_webhook", "Malformed webhook event"


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    type: str
    duplicate: bool
    outcome: str
    org_id: str | None = None


@dataclass(frozen=True)
class _Change:
    """What handling an event did: `target` and `summary` when it changed an org."""

    outcome: str
    org_id: str | None = None
    target: tuple[str, str] | None = None
    summary: dict[str, Any] | None = None


def _ignored(why: str, org_id: str | None = None) -> _Change:
    return _Change(f"ignored: {why}", org_id)


# ---- verification ----


def verify(
    payload: bytes, signature: str | None, *, secret: str, tolerance_seconds: int, now: datetime
) -> dict[str, Any]:
    """The event of a signed payload, or a 400: bad signature, stale timestamp, not an event."""
    try:
        # tolerance=None: the library would compare with the machine's time (see the docstring).
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=None)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise WebhookSignatureInvalid(
            "The Stripe-Signature header does not match the payload and the webhook secret"
        ) from None
    assert signature is not None  # verify_header refuses a missing header
    timestamp = _signed_at(signature)
    if timestamp < now.timestamp() - tolerance_seconds:
        raise WebhookTimestampStale(
            f"The signature is older than {tolerance_seconds} seconds (a replayed delivery?)"
        )
    try:
        event = json.loads(payload)
    except ValueError:
        raise MalformedWebhook("The payload is not JSON") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise MalformedWebhook("The payload is not a Stripe event (id, type, data.object)")
    return event


def _signed_at(signature: str) -> int:
    # The header verified already, so its `t=` is there and an integer.
    for part in signature.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "t":
            return int(value)
    raise WebhookSignatureInvalid("The Stripe-Signature header has no timestamp")


# ---- receiving ----


def receive_stripe(
    session: Session,
    *,
    payload: bytes,
    signature: str | None,
    settings: Settings,
    clock: Clock,
    request_id: str | None = None,
) -> WebhookResult:
    """Verify, record once and handle one delivery, in the caller's transaction (the caller
    commits). A replay of an event already recorded changes nothing."""
    secret = settings.stripe_webhook_secret
    if secret is None or not secret.get_secret_value().strip():
        raise WebhooksNotConfigured(
            "Set TENANTRY_STRIPE_WEBHOOK_SECRET to receive Stripe webhooks",
            headers={"Retry-After": "3600"},
        )
    now = clock.now()
    event = verify(
        payload,
        signature,
        secret=secret.get_secret_value(),
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        now=now,
    )
    event_id, kind = event["id"][:128], event["type"][:100]
    obj: dict[str, Any] = event["data"]["object"]
    row = WebhookEvent(
        provider=PROVIDER,
        event_id=event_id,
        type=kind,
        org_id=None,
        received_at=now,
        object_id=str(obj.get("id"))[:128] if obj.get("id") is not None else None,
        outcome="received",
    )
    if not repository.record_webhook_event(session, row):
        first = repository.webhook_event(session, provider=PROVIDER, event_id=event_id)
        outcome = first.outcome if first is not None else "received"
        return WebhookResult(event_id, kind, True, outcome, first.org_id if first else None)
    ctx = Ctx(
        session=session,
        clock=clock,
        settings=settings,
        origin=Origin(request_id=request_id, action=ACTION),
        write=True,
    )
    change = _handle(ctx, kind, obj, event)
    row.org_id, row.outcome = change.org_id, change.outcome[:MAX_OUTCOME]
    if change.target is not None and change.org_id is not None:
        audit.append(
            session,
            now=now,
            org_id=change.org_id,
            actor_type="system",
            actor_id=None,
            action=ACTION,
            result="success",
            subject_id=None,
            personal=audit.Personal(),
            target_type=change.target[0],
            target_id=change.target[1],
            request_id=request_id,
            summary={"event": kind, "event_id": event_id, **(change.summary or {})},
        )
    session.flush()
    return WebhookResult(event_id, kind, False, row.outcome, change.org_id)


def _handle(ctx: Ctx, kind: str, obj: dict[str, Any], event: dict[str, Any]) -> _Change:
    if kind == "customer.subscription.updated":
        return _subscription_updated(ctx, obj, event)
    if kind == "customer.subscription.deleted":
        return _subscription_deleted(ctx, obj)
    if kind in ("invoice.paid", "invoice.payment_failed"):
        return _invoice_event(ctx, obj, paid=kind == "invoice.paid", event_id=event["id"])
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return _payment_intent_event(ctx, obj, succeeded=kind == "payment_intent.succeeded")
    return _ignored(f"{kind} is not an event Tenantry acts on")


# ---- subscriptions ----


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    found = obj.get("metadata")
    return found if isinstance(found, dict) else {}


def _our_subscription(ctx: Ctx, obj: dict[str, Any]) -> Subscription | None:
    provider_id = obj.get("id")
    if not isinstance(provider_id, str):
        return None
    found = repository.unscoped_subscription_by_provider_id(ctx.session, provider_id)
    if found is None:
        return None
    claimed = _metadata(obj).get("org_id")
    if claimed is not None and claimed != found.org_id:
        return None  # the ids disagree: act on neither org
    # Read again under the row's lock, as every change of a subscription is made.
    return repository.subscription(ctx.session, org_id=found.org_id, lock=True)


def _plan_at_stripe(obj: dict[str, Any]) -> tuple[str, Cycle] | None:
    """The plan and cycle the mirror is on: its price's lookup key (a change made in Stripe's
    portal switches the price), else the metadata we set."""
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        price = data[0].get("price")
        key = price.get("lookup_key") if isinstance(price, dict) else None
        for plan in PLANS:
            for cycle in Cycle:
                if key == price_lookup_key(plan, cycle.value):
                    return plan, cycle
    meta = _metadata(obj)
    named, cycle_name = meta.get("plan"), meta.get("cycle")
    if named in PLANS and cycle_name in {c.value for c in Cycle}:
        return str(named), Cycle(cycle_name)
    return None


def _subscription_updated(ctx: Ctx, obj: dict[str, Any], event: dict[str, Any]) -> _Change:
    sub = _our_subscription(ctx, obj)
    if sub is None:
        return _ignored("not a Tenantry subscription")
    if sub.status not in subscriptions.LIVE:
        return _ignored(f"the subscription is {sub.status}", sub.org_id)
    created = event.get("created")
    if isinstance(created, int) and created < int(as_utc(sub.updated_at).timestamp()):
        return _ignored("older than the subscription's last change", sub.org_id)
    if obj.get("status") == "canceled":
        return _end(ctx, sub)
    org = tenancy_repository.unscoped_org_by_ref(ctx.session, sub.org_id)
    if org is None:
        return _ignored("the organization is gone")
    changed: dict[str, Any] = {}
    now = ctx.clock.now()
    wanted = _plan_at_stripe(obj)
    if wanted is not None and wanted[0] != DEFAULT_PLAN and wanted != (sub.plan, Cycle(sub.cycle)):
        before = f"{sub.plan}/{sub.cycle}"
        result = subscriptions.change_plan_from_provider(
            ctx, org, sub, plan_key=wanted[0], cycle=wanted[1]
        )
        changed["plan"] = {"before": before, "after": f"{sub.plan}/{sub.cycle}"}
        if result.invoice is not None:
            changed["invoice"] = result.invoice.id
    at_end = obj.get("cancel_at_period_end")
    if isinstance(at_end, bool) and at_end != sub.cancel_at_period_end:
        sub.cancel_at_period_end = at_end
        changed["cancel_at_period_end"] = at_end
    if obj.get("status") in ("past_due", "unpaid") and sub.status != SubscriptionStatus.PAST_DUE:
        # Only ever worse: whether an org is paid up is Tenantry's to say (its own invoices),
        # and the mirror's zero-amount invoices say nothing about that.
        changed["status"] = {"before": sub.status, "after": SubscriptionStatus.PAST_DUE}
        sub.status = SubscriptionStatus.PAST_DUE
    if not changed:
        return _Change("no change", sub.org_id)
    sub.updated_at = now
    ctx.session.flush()
    return _Change(
        "subscription updated: " + ", ".join(sorted(changed)),
        sub.org_id,
        ("subscription", sub.id),
        {"change": "updated", **changed},
    )


def _subscription_deleted(ctx: Ctx, obj: dict[str, Any]) -> _Change:
    sub = _our_subscription(ctx, obj)
    if sub is None:
        return _ignored("not a Tenantry subscription")
    if sub.status not in subscriptions.LIVE:
        return _ignored(f"the subscription is {sub.status} already", sub.org_id)
    return _end(ctx, sub)


def _end(ctx: Ctx, sub: Subscription) -> _Change:
    org = tenancy_repository.unscoped_org_by_ref(ctx.session, sub.org_id)
    if org is None:
        return _ignored("the organization is gone")
    plan = sub.plan
    invoice = subscriptions.end_subscription(
        ctx.session, org, sub, now=ctx.clock.now(), due_days=ctx.settings.billing_due_days
    )
    return _Change(
        f"subscription canceled: {org.id} is on {DEFAULT_PLAN} now",
        org.id,
        ("subscription", sub.id),
        {
            "change": "canceled",
            "plan": {"before": plan, "after": DEFAULT_PLAN},
            "invoice": invoice.id if invoice else None,
        },
    )


# ---- payments ----


def _our_invoice(ctx: Ctx, obj: dict[str, Any]) -> Invoice | None:
    meta = _metadata(obj)
    invoice_id = meta.get("invoice_id")
    found = None
    if isinstance(invoice_id, str):
        found = repository.unscoped_invoice(ctx.session, invoice_id)
    elif isinstance(obj.get("id"), str):
        found = repository.unscoped_invoice_by_provider_id(ctx.session, obj["id"])
    if found is None:
        return None
    claimed = meta.get("org_id")
    if claimed is not None and claimed != found.org_id:
        return None
    return invoices.find_invoice(ctx.session, found.org_id, found.id, lock=True)


def _invoice_event(ctx: Ctx, obj: dict[str, Any], *, paid: bool, event_id: str) -> _Change:
    invoice = _our_invoice(ctx, obj)
    if invoice is None:
        return _ignored("not a Tenantry invoice")
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        return _ignored(f"the invoice is {invoice.status}", invoice.org_id)
    currency = obj.get("currency")
    if isinstance(currency, str) and currency.lower() != invoice.currency.lower():
        return _ignored(f"paid in {currency}, the invoice is in {invoice.currency}", invoice.org_id)
    stated = obj.get("amount_paid" if paid else "amount_due")
    amount = (
        stated
        if isinstance(stated, int) and stated > 0
        else invoices.amount_due(ctx.session, invoice)
    )
    payment = obj.get("payment_intent")
    if paid:
        result = ChargeResult(
            ChargeStatus.SUCCEEDED,
            provider_payment_id=payment if isinstance(payment, str) else None,
        )
    else:
        result = ChargeResult(
            ChargeStatus.FAILED,
            provider_payment_id=payment if isinstance(payment, str) else None,
            failure_code="invoice_payment_failed",
            failure_message="Stripe reported that the payment of the invoice failed",
        )
    attempt, invoice = payments.settle_from_provider(
        ctx.session,
        invoice,
        result=result,
        amount=amount,
        idempotency_key=f"{invoice.org_id}:{invoice.id}:webhook-{event_id}"[:128],
        provider=PROVIDER,
        now=ctx.clock.now(),
        retry_days=ctx.settings.billing_retry_days,
    )
    return _payment_change(attempt.id, attempt.status, invoice)


def _payment_intent_event(ctx: Ctx, obj: dict[str, Any], *, succeeded: bool) -> _Change:
    meta = _metadata(obj)
    org_id, key = meta.get("org_id"), meta.get("idempotency_key")
    if not isinstance(org_id, str) or not isinstance(key, str):
        return _ignored("not a Tenantry payment")
    attempt = repository.attempt_by_key(ctx.session, org_id=org_id, idempotency_key=key)
    if attempt is None:
        return _ignored("no such payment attempt")
    if attempt.status not in ("pending", "unknown"):
        return _ignored(f"the payment is {attempt.status} already", org_id)
    if succeeded:
        result = ChargeResult(ChargeStatus.SUCCEEDED, provider_payment_id=obj.get("id"))
    else:
        error = obj.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        result = ChargeResult(
            ChargeStatus.FAILED,
            provider_payment_id=obj.get("id"),
            failure_code=error.get("decline_code") or error.get("code") or "payment_failed",
            failure_message=str(error.get("message") or "The payment failed")[:300],
        )
    attempt, invoice = payments.end_payment(
        ctx.session,
        org_id=org_id,
        attempt_id=attempt.id,
        result=result,
        now=ctx.clock.now(),
        retry_days=ctx.settings.billing_retry_days,
        automatic=True,
    )
    return _payment_change(attempt.id, attempt.status, invoice)


def _payment_change(attempt_id: str, status: str, invoice: Invoice) -> _Change:
    return _Change(
        f"payment {status}: invoice {invoice.number or invoice.id} is {invoice.status}",
        invoice.org_id,
        ("invoice", invoice.id),
        {"payment": attempt_id, "outcome": status, "invoice_status": invoice.status},
    )

"""The Stripe provider against a fake of Stripe's HTTP API (tests/support/stripe_fake.py: the
official library runs for real, only its transport is replaced), and the webhook endpoint through
the app with deliveries signed by a test secret. Nothing reaches the network."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from conftest import Factory, Tenant, assert_problem
from support.stripe_fake import API_KEY, CARDS, DECLINING, WEBHOOK_SECRET, FakeStripe, event, sign
from tenantry.api.billing import webhook_router
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.billing import webhooks
from tenantry.billing.models import Subscription, WebhookEvent
from tenantry.billing.providers import (
    CardDetails,
    Charge,
    ChargeStatus,
    ProviderError,
    SubscriptionMirror,
)
from tenantry.billing.stripe import StripeProvider
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.errors import Unprocessable

WEBHOOK = "/webhooks/stripe"


# ---- the provider against the fake API ----


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


def _charge(
    customer: str, *, token: str = "pm_card_visa", key: str = "org_1:inv_1:pay-1"
) -> Charge:
    return Charge(
        org_id="org_1",
        customer_id=customer,
        payment_method_token=token,
        amount=2900,
        currency="usd",
        idempotency_key=key,
        description="Invoice INV-2026-0001",
        invoice_id="inv_1",
    )


def test_requests_carry_the_key_the_secret_and_the_fields(fake: FakeStripe) -> None:
    provider = fake.provider()
    customer = provider.ensure_customer(org_id="org_1", name="Acme", email="billing@acme.test")
    result = provider.charge(_charge(customer))

    assert result.status is ChargeStatus.SUCCEEDED
    [made] = fake.seen("POST", "/v1/customers")
    assert made.headers["idempotency-key"] == "org_1:customer:create"
    assert made.headers["authorization"] == f"Bearer {API_KEY}"
    assert made.form == {"name": "Acme", "email": "billing@acme.test", "metadata[org_id]": "org_1"}
    [paid] = fake.seen("POST", "/v1/payment_intents")
    assert paid.headers["idempotency-key"] == "org_1:inv_1:pay-1"
    assert paid.form == {
        "amount": "2900",
        "currency": "usd",
        "customer": customer,
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "off_session": "true",
        "description": "Invoice INV-2026-0001",
        "metadata[org_id]": "org_1",
        "metadata[invoice_id]": "inv_1",
        "metadata[idempotency_key]": "org_1:inv_1:pay-1",
    }
    assert result.provider_payment_id == fake.charges()[0]["id"]


def test_a_payment_method_is_described_by_stripe_not_by_the_caller(fake: FakeStripe) -> None:
    provider = fake.provider()
    offered = CardDetails(kind="card", brand="amex", last4="0005", exp_month=1, exp_year=2040)
    found = provider.describe_payment_method(
        customer_id="cus_1", token="pm_card_mastercard", offered=offered
    )
    card = CARDS["pm_card_mastercard"]
    assert found == CardDetails(
        kind="card",
        brand=card["brand"],
        last4=card["last4"],
        exp_month=card["exp_month"],
        exp_year=card["exp_year"],
    )
    [attached] = fake.seen("POST", "/v1/payment_methods/pm_card_mastercard/attach")
    assert attached.form == {"customer": "cus_1"}
    assert attached.headers["idempotency-key"]


def test_an_unknown_payment_method_is_the_callers_to_fix(fake: FakeStripe) -> None:
    offered = CardDetails(kind="card")
    with pytest.raises(Unprocessable) as refused:
        fake.provider().describe_payment_method(customer_id="c", token="pm_nope", offered=offered)
    assert refused.value.code == "payment_method_refused"


def test_a_lost_answer_asked_again_under_the_same_key_charges_once(fake: FakeStripe) -> None:
    provider = fake.provider()
    fake.lose_next_answer = True  # Stripe charged, then the connection timed out

    first = provider.charge(_charge("cus_1"))
    again = provider.charge(_charge("cus_1"))

    assert first.status is ChargeStatus.UNKNOWN
    assert again.status is ChargeStatus.SUCCEEDED
    assert len(fake.charges()) == 1
    assert again.provider_payment_id == fake.charges()[0]["id"]
    keys = [r.headers["idempotency-key"] for r in fake.seen("POST", "/v1/payment_intents")]
    assert keys == ["org_1:inv_1:pay-1", "org_1:inv_1:pay-1"]


def test_a_server_error_is_unknown_and_the_next_ask_charges_once(fake: FakeStripe) -> None:
    provider = fake.provider()
    fake.fail_next_with = 500

    assert provider.charge(_charge("cus_1")).status is ChargeStatus.UNKNOWN
    assert fake.charges() == []
    assert provider.charge(_charge("cus_1")).status is ChargeStatus.SUCCEEDED
    assert len(fake.charges()) == 1


def test_a_decline_is_failed_with_stripes_code_and_message(fake: FakeStripe) -> None:
    result = fake.provider().charge(_charge("cus_1", token=DECLINING))

    assert result.status is ChargeStatus.FAILED
    assert result.failure_code == "insufficient_funds"
    assert result.failure_message == "Your card has insufficient funds."
    assert result.provider_payment_id is not None
    assert fake.charges() == []


def test_other_refusals_are_provider_errors(fake: FakeStripe) -> None:
    fake.fail_next_with = 401  # a revoked API key, say
    with pytest.raises(ProviderError):
        fake.provider().charge(_charge("cus_1"))


def test_the_mirror_is_a_zero_price_subscription_made_once_per_plan(fake: FakeStripe) -> None:
    provider = fake.provider()
    mirror = SubscriptionMirror(
        org_id="org_1",
        customer_id="cus_1",
        plan="starter",
        cycle="monthly",
        cancel_at_period_end=False,
        provider_subscription_id=None,
    )
    sub_id = provider.sync_subscription(mirror, idempotency_key="org_1:subscription:a")
    assert sub_id is not None
    [created] = fake.seen("POST", "/v1/subscriptions")
    assert created.headers["idempotency-key"] == "org_1:subscription:a"
    assert created.form["metadata[org_id]"] == "org_1"
    assert created.form["metadata[plan]"] == "starter"
    assert created.form["metadata[cycle]"] == "monthly"
    [price] = fake.prices.values()
    assert (price["unit_amount"], price["recurring"]["interval"]) == (0, "month")

    moved = dataclasses.replace(
        mirror, plan="professional", cycle="yearly", provider_subscription_id=sub_id
    )
    assert provider.sync_subscription(moved, idempotency_key="org_1:subscription:b") == sub_id
    [updated] = fake.seen("POST", f"/v1/subscriptions/{sub_id}")
    assert updated.headers["idempotency-key"] == "org_1:subscription:b"
    assert updated.form["metadata[plan]"] == "professional"
    assert fake.subscriptions[sub_id]["items"]["data"][0]["price"]["lookup_key"] == (
        "tenantry_professional_yearly"
    )
    # A second org on the same plan reuses the price; a new provider instance finds it by key.
    other = dataclasses.replace(moved, org_id="org_2", provider_subscription_id=None)
    fake.provider().sync_subscription(other, idempotency_key="org_2:subscription:a")
    assert len(fake.prices) == 2
    assert len(fake.products) == 2

    provider.cancel_subscription(moved, idempotency_key="org_1:subscription:cancel")
    [deleted] = fake.seen("DELETE", f"/v1/subscriptions/{sub_id}")
    assert deleted.headers["idempotency-key"] == "org_1:subscription:cancel"
    assert fake.subscriptions[sub_id]["status"] == "canceled"


def test_the_stripe_provider_needs_an_api_key(settings: Settings) -> None:
    with pytest.raises(ValueError, match="TENANTRY_STRIPE_API_KEY"):
        StripeProvider.from_settings(settings.model_copy(update={"payment_provider": "stripe"}))
    keyed = settings.model_copy(update={"stripe_api_key": SecretStr(API_KEY)})
    assert StripeProvider.from_settings(keyed).name == "stripe"


# ---- through the app ----


@pytest.fixture
def stripe_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"stripe_webhook_secret": SecretStr(WEBHOOK_SECRET)})


def _with_webhook(app: FastAPI) -> FastAPI:
    # The route is mounted by create_app once the generated route suites can sign deliveries
    # (tests/matrix/routes.py); until then the app of these tests mounts it itself.
    if not any(getattr(r, "path", None) == WEBHOOK for r in app.routes):
        app.include_router(webhook_router)
    return app


@pytest.fixture
def stripe_app(
    stripe_settings: Settings, clock: FrozenClock, database: Database, fake: FakeStripe
) -> FastAPI:
    app = _with_webhook(create_app(stripe_settings, clock=clock, database=database))
    app.state.payments = fake.provider()  # Stripe, over the fake transport
    return app


@pytest.fixture
def sclient(stripe_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(stripe_app, raise_server_exceptions=False) as c:
        yield c


def _deliver(
    client: TestClient,
    payload: bytes,
    *,
    at: int,
    secret: str = WEBHOOK_SECRET,
    signature: str | None = None,
) -> Any:
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature or sign(payload, timestamp=at, secret=secret)
    return client.post(WEBHOOK, content=payload, headers=headers)


def _now(clock: FrozenClock) -> int:
    return int(clock.now().timestamp())


def _system_events(database: Database, org_id: str) -> list[AuditEvent]:
    with database.session(write=False) as session:
        stmt = (
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.action == webhooks.ACTION)
            .order_by(AuditEvent.seq)
        )
        return list(session.scalars(stmt))


def _subscribed(client: TestClient, tenant: Tenant, *, card: str | None = None) -> dict[str, Any]:
    """The tenant on Starter (monthly) through the API: its mirror is at the fake Stripe."""
    if card is not None:
        added = client.post(
            f"/api/v1/orgs/{tenant.org_id}/payment-methods",
            headers=tenant.headers,
            json={"token": card},
        )
        assert added.status_code == 201, added.text
    resp = client.put(
        f"/api/v1/orgs/{tenant.org_id}/subscription",
        headers=tenant.headers,
        json={"plan": "starter", "cycle": "monthly"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["subscription"]["provider_subscription_id"], body
    return body


def _subscription(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/subscription", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _invoice(client: TestClient, tenant: Tenant, invoice_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/invoices/{invoice_id}", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_without_a_secret_the_webhook_answers_503(app: FastAPI, clock: FrozenClock) -> None:
    payload = event("invoice.paid", {"id": "in_1"}, event_id="evt_1", created=_now(clock))
    with TestClient(_with_webhook(app), raise_server_exceptions=False) as client:
        resp = _deliver(client, payload, at=_now(clock))
    assert_problem(resp, 503, "webhooks_not_configured")


def test_a_bad_signature_is_refused(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    payload = event("invoice.paid", {"id": "in_1"}, event_id="evt_bad", created=_now(clock))
    wrong_secret = _deliver(sclient, payload, at=_now(clock), secret="whsec_someone_else")
    assert_problem(wrong_secret, 400, "webhook_signature_invalid")
    signed = sign(payload, timestamp=_now(clock))
    tampered = _deliver(sclient, payload.replace(b"in_1", b"in_2"), at=0, signature=signed)
    assert_problem(tampered, 400, "webhook_signature_invalid")
    unsigned = sclient.post(WEBHOOK, content=payload)
    assert_problem(unsigned, 400, "webhook_signature_invalid")
    with database.session(write=False) as session:
        assert session.scalars(select(WebhookEvent)).all() == []


def test_a_stale_timestamp_is_refused_by_the_apps_clock(
    sclient: TestClient, clock: FrozenClock, stripe_settings: Settings
) -> None:
    tolerance = stripe_settings.stripe_webhook_tolerance_seconds
    payload = event("ping.test", {"id": "x"}, event_id="evt_stale", created=_now(clock))
    stale = _deliver(sclient, payload, at=_now(clock) - tolerance - 1)
    assert_problem(stale, 400, "webhook_timestamp_stale")
    # The same delivery signed within the tolerance (by the service's clock) is taken.
    fresh = _deliver(sclient, payload, at=_now(clock) - tolerance + 1)
    assert fresh.status_code == 200, fresh.text
    clock.advance(seconds=tolerance + 1)  # a captured delivery, replayed later
    assert_problem(
        _deliver(sclient, payload, at=_now(clock) - tolerance - 1), 400, "webhook_timestamp_stale"
    )


def test_an_event_is_handled_once_and_a_replay_does_nothing(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    sub = _subscribed(sclient, tenant)["subscription"]
    clock.advance(minutes=1)
    mirror = {
        "id": sub["provider_subscription_id"],
        "object": "subscription",
        "status": "active",
        "cancel_at_period_end": True,  # canceled in Stripe's customer portal
        "metadata": {"org_id": tenant.org_id, "plan": "starter", "cycle": "monthly"},
    }
    payload = event(
        "customer.subscription.updated", mirror, event_id="evt_upd", created=_now(clock)
    )

    first = _deliver(sclient, payload, at=_now(clock))
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    assert _subscription(sclient, tenant)["subscription"]["cancel_at_period_end"] is True
    [recorded] = _system_events(database, tenant.org_id)
    assert (recorded.actor_type, recorded.actor_id) == ("system", None)
    assert recorded.summary["event"] == "customer.subscription.updated"
    assert recorded.summary["cancel_at_period_end"] is True

    # The owner takes the cancellation back; the same event delivered again must not undo it.
    clock.advance(minutes=1)
    resumed = sclient.put(
        f"/api/v1/orgs/{tenant.org_id}/subscription",
        headers=tenant.headers,
        json={"plan": "starter", "cycle": "monthly"},
    )
    assert resumed.json()["change"] == "resumed", resumed.text
    replay = _deliver(sclient, payload, at=_now(clock))
    assert replay.status_code == 200, replay.text
    assert replay.json()["duplicate"] is True
    assert _subscription(sclient, tenant)["subscription"]["cancel_at_period_end"] is False
    assert len(_system_events(database, tenant.org_id)) == 1


def test_concurrent_deliveries_of_one_event_handle_it_once(
    sclient: TestClient, stripe_settings: Settings, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    sub = _subscribed(sclient, tenant)["subscription"]
    mirror = {"id": sub["provider_subscription_id"], "object": "subscription", "status": "canceled"}
    payload = event(
        "customer.subscription.deleted", mirror, event_id="evt_race", created=_now(clock)
    )
    signature = sign(payload, timestamp=_now(clock))
    start = threading.Barrier(2)
    results: list[webhooks.WebhookResult] = []

    def deliver() -> None:
        start.wait()
        with database.session(write=True) as session:
            results.append(
                webhooks.receive_stripe(
                    session,
                    payload=payload,
                    signature=signature,
                    settings=stripe_settings,
                    clock=clock,
                )
            )
            session.commit()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.duplicate for r in results) == [False, True]
    assert len(_system_events(database, tenant.org_id)) == 1


def test_a_deleted_subscription_drops_the_org_to_free_at_once(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    sub = _subscribed(sclient, tenant)["subscription"]
    assert _subscription(sclient, tenant)["plan"] == "starter"
    clock.advance(minutes=5)
    mirror = {
        "id": sub["provider_subscription_id"],
        "object": "subscription",
        "status": "canceled",
        "metadata": {"org_id": tenant.org_id},
    }
    payload = event(
        "customer.subscription.deleted", mirror, event_id="evt_del", created=_now(clock)
    )

    resp = _deliver(sclient, payload, at=_now(clock))

    assert resp.status_code == 200, resp.text
    now = _subscription(sclient, tenant)
    assert now["plan"] == "free"
    assert now["subscription"]["status"] == "canceled"
    [recorded] = _system_events(database, tenant.org_id)
    assert recorded.actor_type == "system"
    assert recorded.summary["plan"] == {"before": "starter", "after": "free"}


def test_invoice_paid_marks_our_invoice_paid(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    invoice = _subscribed(sclient, tenant)["invoice"]
    assert invoice["status"] == "open"
    stripe_invoice = {
        "id": "in_fake_1",
        "object": "invoice",
        "currency": "usd",
        "amount_paid": invoice["total_minor"],
        "metadata": {"org_id": tenant.org_id, "invoice_id": invoice["id"]},
    }
    payload = event("invoice.paid", stripe_invoice, event_id="evt_paid", created=_now(clock))

    resp = _deliver(sclient, payload, at=_now(clock))

    assert resp.status_code == 200, resp.text
    paid = _invoice(sclient, tenant, invoice["id"])
    assert paid["status"] == "paid"
    [payment] = paid["payments"]
    assert (payment["status"], payment["amount_minor"]) == ("succeeded", invoice["total_minor"])
    assert len(_system_events(database, tenant.org_id)) == 1


def test_invoice_payment_failed_records_a_failed_attempt(
    sclient: TestClient, clock: FrozenClock
) -> None:
    tenant = Factory(sclient).tenant()
    invoice = _subscribed(sclient, tenant)["invoice"]
    stripe_invoice = {
        "id": "in_fake_2",
        "object": "invoice",
        "currency": "usd",
        "amount_due": invoice["total_minor"],
        "metadata": {"org_id": tenant.org_id, "invoice_id": invoice["id"]},
    }
    payload = event("invoice.payment_failed", stripe_invoice, event_id="evt_f", created=_now(clock))

    assert _deliver(sclient, payload, at=_now(clock)).status_code == 200

    found = _invoice(sclient, tenant, invoice["id"])
    assert found["status"] == "open"
    [payment] = found["payments"]
    assert payment["status"] == "failed"
    assert payment["failure_code"] == "invoice_payment_failed"
    assert _subscription(sclient, tenant)["subscription"]["status"] == "past_due"


def test_a_mirror_invoice_or_an_unknown_event_changes_nothing(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    _subscribed(sclient, tenant)
    zero = {"id": "in_zero", "object": "invoice", "currency": "usd", "amount_paid": 0}
    for kind, obj, event_id in (
        ("invoice.paid", zero, "evt_zero"),
        ("charge.refunded", {"id": "ch_1"}, "evt_other"),
    ):
        resp = _deliver(
            sclient, event(kind, obj, event_id=event_id, created=_now(clock)), at=_now(clock)
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["outcome"].startswith("ignored"), resp.json()
    assert _system_events(database, tenant.org_id) == []


def test_paying_through_stripe_after_a_lost_answer_charges_once(
    sclient: TestClient, fake: FakeStripe, clock: FrozenClock
) -> None:
    tenant = Factory(sclient).tenant()
    invoice = _subscribed(sclient, tenant, card="pm_card_visa")["invoice"]
    [method] = sclient.get(
        f"/api/v1/orgs/{tenant.org_id}/payment-methods", headers=tenant.headers
    ).json()["items"]
    assert (method["brand"], method["last4"]) == ("visa", "4242")  # Stripe's word
    fake.lose_next_answer = True

    first = sclient.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert first.json()["payment"]["status"] == "unknown"
    assert len(fake.charges()) == 1  # Stripe did take it; we do not know yet

    again = sclient.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=tenant.headers)
    assert again.status_code == 200, again.text
    assert again.json()["payment"]["status"] == "succeeded"
    assert again.json()["invoice"]["status"] == "paid"
    assert len(fake.charges()) == 1
    keys = {r.headers["idempotency-key"] for r in fake.seen("POST", "/v1/payment_intents")}
    assert keys == {f"{tenant.org_id}:{invoice['id']}:pay-1"}


def test_a_payment_intent_event_settles_a_payment_whose_answer_was_lost(
    sclient: TestClient, fake: FakeStripe, clock: FrozenClock
) -> None:
    tenant = Factory(sclient).tenant()
    invoice = _subscribed(sclient, tenant, card="pm_card_visa")["invoice"]
    fake.lose_next_answer = True
    lost = sclient.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=tenant.headers)
    assert lost.json()["payment"]["status"] == "unknown", lost.text
    [intent] = fake.charges()

    payload = event("payment_intent.succeeded", intent, event_id="evt_pi", created=_now(clock))
    assert _deliver(sclient, payload, at=_now(clock)).status_code == 200

    found = _invoice(sclient, tenant, invoice["id"])
    assert found["status"] == "paid"
    assert [p["status"] for p in found["payments"]] == ["succeeded"]
    assert found["payments"][0]["provider_payment_id"] == intent["id"]


def test_a_stale_subscription_update_does_not_undo_a_later_change(
    sclient: TestClient, clock: FrozenClock, database: Database
) -> None:
    tenant = Factory(sclient).tenant()
    sub = _subscribed(sclient, tenant)["subscription"]
    written = _now(clock)  # Stripe's snapshot from before the owner's next change
    clock.advance(minutes=10)
    canceled = sclient.delete(f"/api/v1/orgs/{tenant.org_id}/subscription", headers=tenant.headers)
    assert canceled.status_code == 200, canceled.text
    old = {
        "id": sub["provider_subscription_id"],
        "object": "subscription",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"org_id": tenant.org_id, "plan": "starter", "cycle": "monthly"},
    }
    payload = event("customer.subscription.updated", old, event_id="evt_old", created=written)

    resp = _deliver(sclient, payload, at=_now(clock))

    assert resp.status_code == 200, resp.text
    assert "older" in resp.json()["outcome"]
    assert _subscription(sclient, tenant)["subscription"]["cancel_at_period_end"] is True
    with database.session(write=False) as session:
        stored = session.scalars(select(Subscription)).one()
        assert stored.cancel_at_period_end is True

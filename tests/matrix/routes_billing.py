"""Route-table entries of billing (see tests/matrix/routes.py for what an entry says).

Invoice routes need invoices in different states: a draft (to finalize), and open ones (to pay,
void, mark uncollectible or credit), each made on first use for the world that asks.
"""

from __future__ import annotations

import json
from typing import Any

from matrix.routes import PARAMS, WORLD_EXTRAS, P, RouteCase, World, WorldExtra, _case
from support.stripe_fake import sign
from tenantry.kit.clock import FrozenClock


def _invoice(world: World, *, finalize: bool) -> str:
    resp = world.client.post(
        f"/api/v1/orgs/{world.org_id}/invoices",
        headers=world.owner.headers,
        json={
            "lines": [{"description": "Setup", "quantity": "1", "unit_price": "40"}],
            "finalize": finalize,
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def draft_invoice(world: World) -> str:
    return str(world.once("draft_invoice", lambda w: _invoice(w, finalize=False)))


def open_invoice(world: World) -> str:
    return str(world.once("open_invoice", lambda w: _invoice(w, finalize=True)))


def _card(world: World) -> str:
    resp = world.client.post(
        f"/api/v1/orgs/{world.org_id}/payment-methods",
        headers=world.owner.headers,
        json={"token": "tok_test", "brand": "visa", "last4": "4242"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def payment_method(world: World) -> str:
    return str(world.once("payment_method", _card))


def payable_invoice(world: World) -> str:
    payment_method(world)
    return open_invoice(world)


def _payment(world: World) -> str:
    invoice = _invoice(world, finalize=True)
    resp = world.client.post(
        f"/api/v1/invoices/{invoice}/pay",
        headers=world.owner.headers,
        json={"payment_method_id": payment_method(world)},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["payment"]["status"] == "succeeded", resp.text
    return str(resp.json()["payment"]["id"])


def payment(world: World) -> str:
    return str(world.once("payment", _payment))


def _subscribe(world: World) -> str:
    resp = world.client.put(
        f"/api/v1/orgs/{world.org_id}/subscription",
        headers=world.owner.headers,
        json={"plan": "starter"},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["subscription"]["id"])


def subscription(world: World) -> str:
    return str(world.once("subscription", _subscribe))


def _seed(world: World) -> None:
    subscription(world)
    draft_invoice(world)
    payable_invoice(world)
    payment(world)


def _ids(world: World) -> set[str]:
    return {
        subscription(world),
        draft_invoice(world),
        open_invoice(world),
        payment_method(world),
        payment(world),
    }


PARAMS["invoice_id"] = open_invoice
PARAMS["method_id"] = payment_method
WORLD_EXTRAS.append(WorldExtra(seed=_seed, ids=_ids))


def _cancellable(world: World) -> dict[str, str]:
    subscription(world)
    return {"org": world.org_id}


def _pay_body(world: World) -> dict[str, Any]:
    return {"payment_method_id": payment_method(world)}


def signed_ping() -> tuple[bytes, dict[str, str]]:
    """A webhook event Tenantry does not act on, signed for the shared app's clock."""
    payload = json.dumps(
        {"id": "evt_route_table", "type": "ping", "data": {"object": {"id": "ping"}}}
    ).encode()
    now = int(FrozenClock().now().timestamp())
    return payload, {"Stripe-Signature": sign(payload, timestamp=now)}


CASES: list[RouteCase] = [
    RouteCase(
        "POST",
        "/webhooks/stripe",
        "public",
        raw=signed_ping,
        audit="an event that changes an org is audited with actor system; this one changes "
        "nothing (tests/billing/test_billing_stripe.py covers the audited events)",
    ),
    RouteCase("GET", "/api/v1/billing/plans", "public"),
    _case("GET", "/orgs/{org}/subscription", P.BILLING_VIEW, scope="org"),
    _case(
        "PUT",
        "/orgs/{org}/subscription",
        P.BILLING_MANAGE,
        scope="org",
        body=lambda w: {"plan": "professional"},
    ),
    _case(
        "DELETE",
        "/orgs/{org}/subscription",
        P.BILLING_MANAGE,
        scope="org",
        params={"org": lambda w: _cancellable(w)["org"]},
    ),
    _case("GET", "/orgs/{org}/billing/account", P.BILLING_VIEW, scope="org"),
    _case(
        "PATCH",
        "/orgs/{org}/billing/account",
        P.BILLING_MANAGE,
        scope="org",
        body=lambda w: {"tax_rate": "0.19"},
    ),
    _case("GET", "/orgs/{org}/invoices", P.BILLING_VIEW, scope="org", queries=("status=open",)),
    _case("GET", "/orgs/{org}/invoices/upcoming", P.BILLING_VIEW, scope="org"),
    _case(
        "POST",
        "/orgs/{org}/invoices",
        P.BILLING_MANAGE,
        scope="org",
        body=lambda w: {"lines": [{"description": "Workshop", "unit_price": "250"}]},
    ),
    _case("GET", "/invoices/{invoice_id}", P.BILLING_VIEW, scope="org"),
    _case("GET", "/invoices/{invoice_id}/pdf", P.BILLING_VIEW, scope="org"),
    _case("GET", "/invoices/{invoice_id}/html", P.BILLING_VIEW, scope="org"),
    _case(
        "POST",
        "/invoices/{invoice_id}/finalize",
        P.BILLING_MANAGE,
        scope="org",
        params={"invoice_id": draft_invoice},
    ),
    _case("POST", "/invoices/{invoice_id}/void", P.BILLING_MANAGE, scope="org"),
    _case("POST", "/invoices/{invoice_id}/mark-uncollectible", P.BILLING_MANAGE, scope="org"),
    _case(
        "POST",
        "/invoices/{invoice_id}/credit-notes",
        P.BILLING_MANAGE,
        scope="org",
        body=lambda w: {"reason": "goodwill", "amount": "5"},
    ),
    _case(
        "POST",
        "/invoices/{invoice_id}/pay",
        P.BILLING_MANAGE,
        scope="org",
        params={"invoice_id": payable_invoice},
        body=_pay_body,
    ),
    _case("GET", "/orgs/{org}/payment-methods", P.BILLING_VIEW, scope="org"),
    _case(
        "POST",
        "/orgs/{org}/payment-methods",
        P.BILLING_MANAGE,
        scope="org",
        body=lambda w: {"token": "tok_mastercard", "brand": "mastercard", "last4": "4444"},
    ),
    _case("DELETE", "/orgs/{org}/payment-methods/{method_id}", P.BILLING_MANAGE, scope="org"),
    _case("GET", "/orgs/{org}/payments", P.BILLING_VIEW, scope="org"),
]

"""A fake of Stripe's HTTP API, as far as `tenantry.billing.stripe` uses it, behind an httpx
transport: the official library does all its own work (encoding, headers, errors, retries) and
only the socket is replaced. Nothing reaches the network.

Like Stripe, it keeps the answer given under each `Idempotency-Key` and repeats it to a request
under the same key; `lose_next_answer` does the work and then times out before answering (the
charge happened, the caller does not know), `fail_next_with` answers an error without doing
anything. `sign` makes a `Stripe-Signature` header as Stripe documents it (HMAC-SHA256 of
`t.payload`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe

from tenantry.billing.stripe import StripeProvider

API_KEY = "sk_test_tenantry_fake"
WEBHOOK_SECRET = "whsec_tenantry_test_secret"

# Test payment methods, named like Stripe's test tokens, and what Stripe says each one is.
CARDS: dict[str, dict[str, Any]] = {
    "pm_card_visa": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    "pm_card_mastercard": {
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 3,
        "exp_year": 2031,
    },
    "pm_card_chargeDeclinedInsufficientFunds": {
        "brand": "visa",
        "last4": "9995",
        "exp_month": 1,
        "exp_year": 2029,
    },
}
DECLINING = "pm_card_chargeDeclinedInsufficientFunds"


def sign(payload: bytes, *, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: httpx.Headers
    form: dict[str, str]


def _error(status: int, kind: str, message: str, **more: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "message": message, **more}}


@dataclass
class FakeStripe:
    requests: list[Seen] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    lose_next_answer: bool = False
    fail_next_with: int | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- plumbing ----

    def provider(self) -> StripeProvider:
        # The library's own retries would sleep between tries: the tests ask again themselves.
        return StripeProvider(API_KEY, http_client=self.http_client(), max_network_retries=0)

    def http_client(self) -> stripe.HTTPXClient:
        """The library's own httpx client, with this fake as its transport. stripe 16's
        HTTPXClient takes no transport, but builds its clients from the module it is given
        (`_lib`, which the library keeps for testing): this one adds the transport."""
        transport = httpx.MockTransport(self.handle)
        shim = SimpleNamespace(
            Client=lambda **kw: httpx.Client(transport=transport, **kw),
            AsyncClient=lambda **kw: httpx.AsyncClient(transport=transport, **kw),
        )
        return stripe.HTTPXClient(allow_sync_methods=True, _lib=shim)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "api.stripe.com", request.url
        body = request.content.decode() if request.method == "POST" else request.url.query.decode()
        form = dict(parse_qsl(body, keep_blank_values=True))
        self.requests.append(Seen(request.method, request.url.path, request.headers, form))
        if self.fail_next_with is not None:
            status, self.fail_next_with = self.fail_next_with, None
            return httpx.Response(status, json={"error": {"type": "api_error", "message": "boom"}})
        key = request.headers.get("idempotency-key")
        if key is not None and key in self.answers:
            status, payload = self.answers[key]
            return httpx.Response(status, json=payload, headers={"Idempotent-Replayed": "true"})
        status, payload = self._route(request.method, request.url.path, form)
        if key is not None:
            self.answers[key] = (status, payload)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(status, json=payload)

    def seen(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ---- the API ----

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")[1:]  # without "v1"
        match method, parts:
            case "POST", ["customers"]:
                customer = {"id": self._id("cus"), "object": "customer", "name": form.get("name")}
                self.customers[customer["id"]] = customer
                return 200, customer
            case "POST", ["payment_methods", token, "attach"]:
                if token not in CARDS:
                    return _error(
                        404,
                        "invalid_request_error",
                        f"No such PaymentMethod: '{token}'",
                        code="resource_missing",
                    )
                card = CARDS[token]
                return 200, {
                    "id": token,
                    "object": "payment_method",
                    "type": "card",
                    "card": card,
                    "customer": form["customer"],
                }
            case "POST", ["payment_intents"]:
                return self._payment_intent(form)
            case "GET", ["payment_intents", intent_id]:
                return 200, self.intents[intent_id]
            case "GET", ["prices"]:
                wanted = {v for k, v in form.items() if k.startswith("lookup_keys")}
                found = [p for p in self.prices.values() if p["lookup_key"] in wanted]
                return 200, {
                    "object": "list",
                    "data": found,
                    "has_more": False,
                    "url": "/v1/prices",
                }
            case "POST", ["products"]:
                if form["id"] in self.products:
                    return _error(
                        400,
                        "invalid_request_error",
                        "Product already exists.",
                        code="resource_already_exists",
                    )
                self.products[form["id"]] = {
                    "id": form["id"],
                    "object": "product",
                    "name": form["name"],
                }
                return 200, self.products[form["id"]]
            case "POST", ["prices"]:
                price = {
                    "id": self._id("price"),
                    "object": "price",
                    "product": form["product"],
                    "unit_amount": int(form["unit_amount"]),
                    "currency": form["currency"],
                    "recurring": {"interval": form["recurring[interval]"]},
                    "lookup_key": form["lookup_key"],
                }
                self.prices[price["id"]] = price
                return 200, price
            case "POST", ["subscriptions"]:
                sub = {
                    "id": self._id("sub"),
                    "object": "subscription",
                    "customer": form["customer"],
                    "status": "active",
                    "cancel_at_period_end": form.get("cancel_at_period_end") == "true",
                    "items": {"object": "list", "data": [self._item(form["items[0][price]"])]},
                    "metadata": _metadata(form),
                }
                self.subscriptions[sub["id"]] = sub
                return 200, sub
            case "GET", ["subscriptions", sub_id]:
                if sub_id not in self.subscriptions:
                    return _error(
                        404,
                        "invalid_request_error",
                        "No such subscription",
                        code="resource_missing",
                    )
                return 200, self.subscriptions[sub_id]
            case "POST", ["subscriptions", sub_id]:
                sub = self.subscriptions[sub_id]
                if "items[0][price]" in form:
                    sub["items"]["data"] = [
                        self._item(form["items[0][price]"], form["items[0][id]"])
                    ]
                sub["metadata"] = _metadata(form) or sub["metadata"]
                sub["cancel_at_period_end"] = form.get("cancel_at_period_end") == "true"
                return 200, sub
            case "DELETE", ["subscriptions", sub_id]:
                sub = self.subscriptions[sub_id]
                sub["status"] = "canceled"
                return 200, sub
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _item(self, price_id: str, item_id: str | None = None) -> dict[str, Any]:
        return {
            "id": item_id or self._id("si"),
            "object": "subscription_item",
            "price": self.prices[price_id],
        }

    def _payment_intent(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent: dict[str, Any] = {
            "id": self._id("pi"),
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "customer": form["customer"],
            "payment_method": form["payment_method"],
            "metadata": _metadata(form),
            "status": "succeeded",
            "last_payment_error": None,
        }
        if form["payment_method"] == DECLINING:
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            }
            intent.update(status="requires_payment_method", last_payment_error=error)
            self.intents[intent["id"]] = intent
            return 402, {"error": {**error, "payment_intent": intent}}
        self.intents[intent["id"]] = intent
        return 200, intent

    def charges(self) -> list[dict[str, Any]]:
        """The payments actually taken."""
        return [i for i in self.intents.values() if i["status"] == "succeeded"]


def _metadata(form: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}


def event(kind: str, obj: dict[str, Any], *, event_id: str, created: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
    ).encode()

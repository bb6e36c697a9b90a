"""SDK calls of outbound webhooks (mixed into `tenantry.client.api.Api`); see that module's
conventions.

An org's endpoints (`create_webhook` and `rotate_webhook_secret` return the signing secret, the
only time it is shown), test events, the delivery log and redelivery. Verify what arrives with
the `standardwebhooks` library and that secret (docs/webhooks.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    model,
    nothing,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import Page, Result

DeliveryStatus = Literal["pending", "succeeded", "failed"]


class Webhook(Result):
    id: str
    org_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str


class Webhooks(Result):
    org_id: str
    webhooks: list[Webhook]


class WebhookDelivery(Result):
    id: str
    endpoint_id: str
    message_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response: str | None = None
    last_error: str | None = None
    last_duration_ms: int | None = None
    redelivery_of: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class WebhookEventType(Result):
    type: str
    description: str


class WebhookEventTypes(Result):
    event_types: list[WebhookEventType]


def _endpoint(org: str, webhook_id: str) -> str:
    return f"{API}/orgs/{segment(org)}/webhooks/{segment(webhook_id)}"


class WebhookCalls:
    @endpoint
    def webhook_event_types(self) -> Call[WebhookEventTypes]:
        """The event types an endpoint can subscribe to."""
        return Call("GET", f"{API}/webhook-event-types", model(WebhookEventTypes))

    @endpoint
    def list_webhooks(self, org: str) -> Call[Webhooks]:
        return Call("GET", f"{API}/orgs/{segment(org)}/webhooks", model(Webhooks))

    @endpoint
    def create_webhook(
        self,
        org: str,
        url: str,
        event_types: list[str],
        *,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Call[WebhookCreated]:
        """A new endpoint; the answer's `secret` is shown this once."""
        body = fields(url=url, event_types=event_types, description=description, enabled=enabled)
        return Call("POST", f"{API}/orgs/{segment(org)}/webhooks", model(WebhookCreated), body=body)

    @endpoint
    def get_webhook(self, org: str, webhook_id: str) -> Call[Webhook]:
        return Call("GET", _endpoint(org, webhook_id), model(Webhook))

    @endpoint
    def update_webhook(
        self,
        org: str,
        webhook_id: str,
        *,
        url: str | None = None,
        description: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
    ) -> Call[Webhook]:
        """Change what is given; `enabled=True` turns a disabled endpoint on again."""
        body = fields(url=url, description=description, event_types=event_types, enabled=enabled)
        return Call("PATCH", _endpoint(org, webhook_id), model(Webhook), body=body)

    @endpoint
    def delete_webhook(self, org: str, webhook_id: str) -> Call[None]:
        return Call("DELETE", _endpoint(org, webhook_id), nothing)

    @endpoint
    def rotate_webhook_secret(self, org: str, webhook_id: str) -> Call[WebhookCreated]:
        """A new signing secret for the endpoint (the answer's `secret`, shown this once); the
        old one signs nothing more."""
        return Call("POST", _endpoint(org, webhook_id) + "/rotate-secret", model(WebhookCreated))

    @endpoint
    def send_webhook_test(self, org: str, webhook_id: str) -> Call[WebhookDelivery]:
        """Queue a `webhook.test` event for the endpoint; the worker delivers it."""
        return Call("POST", _endpoint(org, webhook_id) + "/test", model(WebhookDelivery))

    @endpoint
    def list_webhook_deliveries(
        self,
        org: str,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[WebhookDelivery]]:
        """The endpoint's delivery log, oldest first."""
        return Call(
            "GET",
            _endpoint(org, webhook_id) + "/deliveries",
            model(Page[WebhookDelivery]),
            params=page_query(limit, cursor, status=status),
        )

    iter_webhook_deliveries = paged(list_webhook_deliveries)

    @endpoint
    def get_webhook_delivery(
        self, org: str, webhook_id: str, delivery_id: str
    ) -> Call[WebhookDelivery]:
        path = f"{_endpoint(org, webhook_id)}/deliveries/{segment(delivery_id)}"
        return Call("GET", path, model(WebhookDelivery))

    @endpoint
    def redeliver_webhook(
        self, org: str, webhook_id: str, delivery_id: str
    ) -> Call[WebhookDelivery]:
        """Send a delivery's message again, as a new delivery with the same `webhook-id`."""
        path = f"{_endpoint(org, webhook_id)}/deliveries/{segment(delivery_id)}/redeliver"
        return Call("POST", path, model(WebhookDelivery))

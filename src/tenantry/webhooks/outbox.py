"""Writing events to the outbox: one delivery row per enabled endpoint of the org subscribed to
the event's type, in the transaction that raised the event (it commits or rolls back with it).
Nothing is sent here: the worker delivers, so a receiver that is down never slows the request
that caused the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tenantry.kit.ids import new_id
from tenantry.webhooks import repository
from tenantry.webhooks.events import message_body
from tenantry.webhooks.models import DeliveryStatus, WebhookEndpoint


def delivery_row(
    endpoint: WebhookEndpoint,
    *,
    message_id: str,
    event_type: str,
    body: str,
    now: datetime,
    redelivery_of: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("whd"),
        "org_id": endpoint.org_id,
        "endpoint_id": endpoint.id,
        "message_id": message_id,
        "event_type": event_type,
        "body": body,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "redelivery_of": redelivery_of,
        "created_at": now,
    }


def enqueue(
    session: Session,
    *,
    org_id: str,
    event_type: str,
    event_id: str,
    occurred_at: datetime,
    data: dict[str, Any],
) -> int:
    """Record the event for every endpoint that wants it; how many deliveries were written."""
    subscribed = [
        e
        for e in repository.enabled_endpoints(session, org_id=org_id)
        if event_type in e.event_types
    ]
    if not subscribed:
        return 0
    body = message_body(event_type=event_type, org_id=org_id, occurred_at=occurred_at, data=data)
    rows = [
        delivery_row(e, message_id=event_id, event_type=event_type, body=body, now=occurred_at)
        for e in subscribed
    ]
    repository.add_deliveries(session, rows)
    return len(rows)

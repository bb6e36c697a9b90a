"""An org's endpoints (add, change, remove; the secret made or rotated, and shown once), a
test event, and redelivering a delivery. Each change is one audit event. Events themselves
enter through `outbox` and leave through `delivery` and `tasks`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.webhooks import guard, repository
from tenantry.webhooks.events import EVENT_TYPES, WEBHOOK_TEST, message_body
from tenantry.webhooks.models import WebhookDelivery, WebhookEndpoint
from tenantry.webhooks.outbox import delivery_row
from tenantry.webhooks.secrets import SecretBox, new_secret


def _event_types(requested: Sequence[str]) -> list[str]:
    unknown = sorted({t for t in requested if t not in EVENT_TYPES})
    if unknown:
        raise Unprocessable(
            f"Unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}",
            code="unknown_event_type",
        )
    return sorted(set(requested))


def _summary(endpoint: WebhookEndpoint) -> dict[str, Any]:
    # The URL's host only: a path or query may carry a receiver's token.
    return {
        "host": guard.parse(endpoint.url, allow_private=True).host,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
    }


def find_endpoint(ctx: Ctx, *, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    found = repository.endpoint(ctx.session, org_id=org_id, endpoint_id=endpoint_id)
    if found is None:
        raise NotFound("Webhook endpoint not found")
    return found


def find_delivery(ctx: Ctx, endpoint: WebhookEndpoint, delivery_id: str) -> WebhookDelivery:
    found = repository.delivery(
        ctx.session, org_id=endpoint.org_id, endpoint_id=endpoint.id, delivery_id=delivery_id
    )
    if found is None:
        raise NotFound("Webhook delivery not found")
    return found


def create_endpoint(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    url: str,
    description: str,
    event_types: Sequence[str],
    enabled: bool,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret leaves the server)."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=org_id)
    allow_private = ctx.settings.webhooks_allow_private_urls
    checked = guard.check_saved_url(url, allow_private=allow_private)
    now, secret = ctx.clock.now(), new_secret()
    endpoint = WebhookEndpoint(
        id=new_id("whk"),
        org_id=org_id,
        url=checked,
        description=description,
        event_types=_event_types(event_types),
        enabled=enabled,
        disabled_reason=None if enabled else "manual",
        disabled_at=None if enabled else now,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    box = SecretBox(ctx.settings.server_secret())
    endpoint.secret_sealed = box.seal(secret, bound_to=endpoint.id)
    ctx.session.add(endpoint)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary=_summary(endpoint),
    )
    return endpoint, secret


def update_endpoint(
    ctx: Ctx, principal: Principal, endpoint: WebhookEndpoint, changes: dict[str, Any]
) -> WebhookEndpoint:
    """Change the URL, description, event types, or turn it on or off. Turning it on again
    starts its failure count afresh; its pending deliveries resume."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=endpoint.org_id)
    now = ctx.clock.now()
    if "url" in changes:
        allow_private = ctx.settings.webhooks_allow_private_urls
        endpoint.url = guard.check_saved_url(changes["url"], allow_private=allow_private)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = _event_types(changes["event_types"])
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:
            endpoint.disabled_reason, endpoint.disabled_at = None, None
            endpoint.consecutive_failures = 0
        else:
            endpoint.disabled_reason, endpoint.disabled_at = "manual", now
    endpoint.updated_at = now
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=endpoint.org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary={**_summary(endpoint), "changed": sorted(changes)},
    )
    return endpoint


def rotate_secret(ctx: Ctx, principal: Principal, endpoint: WebhookEndpoint) -> str:
    """A new signing secret for the endpoint, returned this once; the old one signs nothing
    more, including the retries of deliveries already queued (they are signed at each attempt)."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=endpoint.org_id)
    secret = new_secret()
    box = SecretBox(ctx.settings.server_secret())
    endpoint.secret_sealed = box.seal(secret, bound_to=endpoint.id)
    endpoint.updated_at = ctx.clock.now()
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=endpoint.org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary=_summary(endpoint),
    )
    return secret


def delete_endpoint(ctx: Ctx, principal: Principal, endpoint: WebhookEndpoint) -> None:
    """Remove it with its deliveries (pending ones are not sent)."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=endpoint.org_id)
    summary = _summary(endpoint)
    ctx.session.delete(endpoint)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=endpoint.org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary=summary,
    )


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict(
            "The endpoint is disabled; enable it first (PATCH with enabled: true)",
            code="webhook_disabled",
        )


def send_test(ctx: Ctx, principal: Principal, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` event for this endpoint alone, whatever it subscribes to; the worker
    delivers it like any other."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=endpoint.org_id)
    _require_enabled(endpoint)
    now = ctx.clock.now()
    message_id = new_id("msg")
    body = message_body(
        event_type=WEBHOOK_TEST,
        org_id=endpoint.org_id,
        occurred_at=now,
        data={"endpoint_id": endpoint.id, "message": "A test event from Tenantry"},
    )
    row = WebhookDelivery(
        **delivery_row(endpoint, message_id=message_id, event_type=WEBHOOK_TEST, body=body, now=now)
    )
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=endpoint.org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary={"delivery": row.id, "message_id": message_id},
    )
    return row


def redeliver(
    ctx: Ctx, principal: Principal, endpoint: WebhookEndpoint, delivery: WebhookDelivery
) -> WebhookDelivery:
    """Send a delivery's message again, as a new delivery with the same `webhook-id` and body
    (the receiver can tell it already has it); the original's log stays as it was."""
    authorize(ctx.session, principal, Permission.WEBHOOK_MANAGE, org_id=endpoint.org_id)
    _require_enabled(endpoint)
    row = WebhookDelivery(
        **delivery_row(
            endpoint,
            message_id=delivery.message_id,
            event_type=delivery.event_type,
            body=delivery.body,
            now=ctx.clock.now(),
            redelivery_of=delivery.id,
        )
    )
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=endpoint.org_id,
        target_type="webhook",
        target_id=endpoint.id,
        summary={"delivery": row.id, "redelivery_of": delivery.id},
    )
    return row

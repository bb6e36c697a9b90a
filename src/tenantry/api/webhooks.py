"""HTTP routes of outbound webhooks: an org's endpoints (their secret rotated), their test
events, the delivery log and redelivery, and the catalog of event types. Every change writes
one audit event; another org's endpoint or delivery answers 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, PrincipalDep, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.kit.pagination import PageDep
from tenantry.webhooks import repository, service
from tenantry.webhooks.events import EVENT_TYPES
from tenantry.webhooks.models import DeliveryStatus
from tenantry.webhooks.schemas import (
    DeliveryOut,
    DeliveryPageOut,
    EventTypeOut,
    EventTypesOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhooksOut,
    WebhookUpdateIn,
)

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

WebhookRead = Annotated[OrgScope, Depends(org_scope(Permission.WEBHOOK_READ))]
WebhookManage = Annotated[OrgScope, Depends(org_scope(Permission.WEBHOOK_MANAGE))]
ENDPOINT = "/orgs/{org}/webhooks/{webhook_id}"


@router.get("/webhook-event-types", response_model=EventTypesOut, tags=["webhooks"])
def event_types(principal: PrincipalDep) -> EventTypesOut:
    """The event types an endpoint can subscribe to."""
    return EventTypesOut(
        event_types=[EventTypeOut(type=t, description=d) for t, d in EVENT_TYPES.items()]
    )


@router.get("/orgs/{org}/webhooks", response_model=WebhooksOut, tags=["webhooks"])
def list_webhooks(scope: WebhookRead) -> WebhooksOut:
    """The org's endpoints, oldest first (their secrets are never shown again)."""
    rows = repository.endpoints_of(scope.ctx.session, org_id=scope.org.id)
    return WebhooksOut(org_id=scope.org.id, webhooks=[WebhookOut.model_validate(r) for r in rows])


@router.post(
    "/orgs/{org}/webhooks",
    name="webhook.created",
    status_code=201,
    response_model=WebhookCreatedOut,
    tags=["webhooks"],
)
def create_webhook(body: WebhookIn, scope: WebhookManage) -> Response:
    """Add an endpoint. The answer holds its signing secret, shown this once. The URL must be
    https and resolve to public addresses (422 otherwise) unless the deployment allows private
    receivers."""
    endpoint, secret = service.create_endpoint(
        scope.ctx,
        scope.principal,
        org_id=scope.org.id,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        enabled=body.enabled,
    )
    out = WebhookCreatedOut.model_validate(
        {**WebhookOut.model_validate(endpoint).model_dump(), "secret": secret}
    )
    return scope.ctx.done(out, status=201)


@router.get(ENDPOINT, response_model=WebhookOut, tags=["webhooks"])
def show_webhook(webhook_id: str, scope: WebhookRead) -> WebhookOut:
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    return WebhookOut.model_validate(found)


@router.patch(ENDPOINT, name="webhook.updated", response_model=WebhookOut, tags=["webhooks"])
def update_webhook(webhook_id: str, body: WebhookUpdateIn, scope: WebhookManage) -> Response:
    """Change the URL, description or event types, or disable and enable it (enabling starts
    its failure count afresh and resumes its pending deliveries)."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    changed = service.update_endpoint(
        scope.ctx, scope.principal, found, body.model_dump(exclude_unset=True)
    )
    return scope.ctx.done(WebhookOut.model_validate(changed))


@router.delete(ENDPOINT, name="webhook.deleted", status_code=204, tags=["webhooks"])
def delete_webhook(webhook_id: str, scope: WebhookManage) -> Response:
    """Remove the endpoint with its delivery log; pending deliveries are not sent."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    service.delete_endpoint(scope.ctx, scope.principal, found)
    return scope.ctx.done(None, status=204)


@router.post(
    ENDPOINT + "/rotate-secret",
    name="webhook.secret_rotated",
    response_model=WebhookCreatedOut,
    tags=["webhooks"],
)
def rotate_webhook_secret(webhook_id: str, scope: WebhookManage) -> Response:
    """A new signing secret, in this answer only; the old one signs nothing more (retries of
    queued deliveries included), so the receiver needs the new one before its next delivery."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    secret = service.rotate_secret(scope.ctx, scope.principal, found)
    out = WebhookCreatedOut.model_validate(
        {**WebhookOut.model_validate(found).model_dump(), "secret": secret}
    )
    return scope.ctx.done(out)


@router.post(
    ENDPOINT + "/test",
    name="webhook.tested",
    status_code=202,
    response_model=DeliveryOut,
    tags=["webhooks"],
)
def test_webhook(webhook_id: str, scope: WebhookManage) -> Response:
    """Queue a `webhook.test` event for this endpoint (409 if it is disabled); the worker
    delivers it. Follow it in the delivery log."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    row = service.send_test(scope.ctx, scope.principal, found)
    return scope.ctx.done(DeliveryOut.model_validate(row), status=202)


@router.get(ENDPOINT + "/deliveries", response_model=DeliveryPageOut, tags=["webhooks"])
def list_deliveries(
    webhook_id: str,
    scope: WebhookRead,
    page: PageDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only these")] = None,
) -> DeliveryPageOut:
    """The endpoint's delivery log, oldest first: each delivery's status, attempts, and its last
    attempt's status code, answer and duration."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    rows = repository.deliveries(
        scope.ctx.session, org_id=found.org_id, endpoint_id=found.id, page=page, status=status
    )
    return DeliveryPageOut(
        items=[DeliveryOut.model_validate(r) for r in rows.items], next_cursor=rows.next_cursor
    )


@router.get(ENDPOINT + "/deliveries/{delivery_id}", response_model=DeliveryOut, tags=["webhooks"])
def show_delivery(webhook_id: str, delivery_id: str, scope: WebhookRead) -> DeliveryOut:
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    return DeliveryOut.model_validate(service.find_delivery(scope.ctx, found, delivery_id))


@router.post(
    ENDPOINT + "/deliveries/{delivery_id}/redeliver",
    name="webhook_delivery.redelivered",
    status_code=202,
    response_model=DeliveryOut,
    tags=["webhooks"],
)
def redeliver(webhook_id: str, delivery_id: str, scope: WebhookManage) -> Response:
    """Send a delivery's message again (same `webhook-id`, same body) as a new delivery; 409 if
    the endpoint is disabled."""
    found = service.find_endpoint(scope.ctx, org_id=scope.org.id, endpoint_id=webhook_id)
    original = service.find_delivery(scope.ctx, found, delivery_id)
    row = service.redeliver(scope.ctx, scope.principal, found, original)
    return scope.ctx.done(DeliveryOut.model_validate(row), status=202)

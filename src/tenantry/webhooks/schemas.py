"""Bodies of the webhook routes. An endpoint's secret appears in one answer only: its creation's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tenantry.kit.schemas import Input, left_out

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
EventType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
WebhookDescription = Annotated[str, StringConstraints(max_length=500)]


class WebhookIn(Input):
    """An endpoint: where to send the org's events, and which of them."""

    url: Url
    description: WebhookDescription = ""
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    enabled: bool = True


class WebhookUpdateIn(Input):
    url: Url = left_out()
    description: WebhookDescription = left_out()
    event_types: list[EventType] = left_out(min_length=1, max_length=50)
    enabled: bool = left_out()


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "failing"] | None = None
    disabled_at: datetime | None = None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_…`), shown only in this answer: keep it to "
        "verify deliveries"
    )


class WebhooksOut(BaseModel):
    org_id: str
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    endpoint_id: str
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response: str | None = Field(default=None, description="The answer's first 1,024 bytes")
    last_error: str | None = None
    last_duration_ms: int | None = None
    redelivery_of: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None


class EventTypeOut(BaseModel):
    type: str
    description: str


class EventTypesOut(BaseModel):
    event_types: list[EventTypeOut]

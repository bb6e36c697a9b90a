"""The events of other domains that endpoints can subscribe to, heard through the hooks those
domains expose (never their services), each in the transaction that raised it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tenantry.billing import events as billing_events
from tenantry.governance import events as governance_events
from tenantry.spend import events as spend_events
from tenantry.webhooks import outbox


def on_spend_event(session: Session, event: spend_events.SpendEvent) -> None:
    outbox.enqueue(
        session,
        org_id=event.org_id,
        event_type=event.type,
        event_id=f"msg_{event.id}",
        occurred_at=event.occurred_at,
        data={"team_id": event.team_id, **event.data},
    )


def on_billing_event(session: Session, event: billing_events.BillingEvent) -> None:
    outbox.enqueue(
        session,
        org_id=event.org_id,
        event_type=event.type,
        event_id=f"msg_{event.id}",
        occurred_at=event.occurred_at,
        data=event.data,
    )


def on_governance_event(session: Session, event: governance_events.GovernanceEvent) -> None:
    outbox.enqueue(
        session,
        org_id=event.org_id,
        event_type=event.type,
        event_id=f"msg_{event.id}",
        occurred_at=event.occurred_at,
        data={"team_id": event.team_id, **event.data},
    )


spend_events.subscribe(on_spend_event)
governance_events.subscribe(on_governance_event)
billing_events.subscribe(on_billing_event)

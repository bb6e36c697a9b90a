"""Billing's events, for the domains that deliver notifications (outbound webhooks).

`emit` is called in the transaction that changed the invoice or payment, after the change is
flushed; every subscriber registered with `subscribe` is called there too, so what it records
(an outbox row) commits or rolls back with the change. Nothing is sent from inside it.

Event types: `invoice.finalized` (numbered and due, or paid at zero), `invoice.paid` (paid in
full), `payment.succeeded`, `payment.failed`. Amounts are integer minor units with the currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from tenantry.kit.events import Channel

INVOICE_FINALIZED: Final = "invoice.finalized"
INVOICE_PAID: Final = "invoice.paid"
PAYMENT_SUCCEEDED: Final = "payment.succeeded"
PAYMENT_FAILED: Final = "payment.failed"


@dataclass(frozen=True)
class BillingEvent:
    id: str  # unique per event, so a subscriber can deduplicate on it
    type: str
    org_id: str
    occurred_at: datetime
    data: dict[str, Any]


Subscriber = Callable[[Session, BillingEvent], None]
_CHANNEL: Final = Channel[BillingEvent]()
# Hear every billing event, in the transaction that raises it.
subscribe = _CHANNEL.subscribe
unsubscribe = _CHANNEL.unsubscribe
emit = _CHANNEL.emit


def invoice_data(invoice: Any) -> dict[str, Any]:
    """An invoice as its events show it (an `Invoice` row; typed loosely to keep this module
    free of billing's tables)."""
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "kind": invoice.kind,
        "status": invoice.status,
        "currency": invoice.currency,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "due_at": invoice.due_at.isoformat() if invoice.due_at else None,
    }
